"""The development demo workspace and account, created on the first start."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from flowql.db import Database
from flowql.errors import Forbidden
from flowql.models import User
from flowql.services.auth import create_user, issuer_for
from flowql.services.workspaces import create_workspace
from flowql.settings import Settings

DEMO_EMAIL = "demo@flowql.local"
DEMO_PASSWORD = "flowql-demo"
DEMO_WORKSPACE = "Demo"


@dataclass(frozen=True)
class DemoAccount:
    email: str
    password: str
    workspace: str
    created: bool


# pg_advisory_xact_lock key: servers starting together create the demo account once.
DEMO_LOCK = 0x666C6F77_64656D6F & 0x7FFFFFFFFFFFFFFF


async def ensure_demo_account(db: Database) -> DemoAccount:
    """Idempotent and safe to race: replicas starting at once on one PostgreSQL database take
    turns under an advisory lock; anywhere else, whoever loses the race on the unique email
    finds the winner's account (`created` is False for all but one)."""
    try:
        async with db.transaction() as session:
            if not db.is_sqlite:
                await session.exec(
                    text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=DEMO_LOCK)
                )  # type: ignore[call-overload]
            existing = (await session.exec(select(User).where(User.email == DEMO_EMAIL))).first()
            if existing is None:
                user = await create_user(
                    session, DEMO_EMAIL, DEMO_PASSWORD, first_name="Demo", last_name="User"
                )
                await create_workspace(session, user, DEMO_WORKSPACE)
    except IntegrityError:
        # Another server created it between our read and our insert (its transaction won).
        return DemoAccount(DEMO_EMAIL, DEMO_PASSWORD, DEMO_WORKSPACE, created=False)
    return DemoAccount(DEMO_EMAIL, DEMO_PASSWORD, DEMO_WORKSPACE, created=existing is None)


@dataclass(frozen=True)
class DemoToken:
    user_id: uuid.UUID
    email: str
    name: str
    token: str
    expires_in: int


async def demo_tokens(db: Database, settings: Settings) -> list[DemoToken]:
    """Development only (demo accounts on, never in production): a fresh access token for each
    demo account, so a client can log in without a password (LetsFlow's `/demo-accounts`).
    The demo password is public anyway; elsewhere FORBIDDEN "Demo accounts are disabled"."""
    if settings.is_production or not settings.demo_accounts:
        raise Forbidden("Demo accounts are disabled")
    async with db.read() as session:
        user = (await session.exec(select(User).where(User.email == DEMO_EMAIL))).first()
    if user is None:
        await ensure_demo_account(db)
        async with db.read() as session:
            user = (await session.exec(select(User).where(User.email == DEMO_EMAIL))).one()
    if not user.is_active:
        return []
    ttl = settings.access_token_ttl
    token = issuer_for(settings).issue(str(user.id), ttl)
    name = f"{user.first_name} {user.last_name}".strip() or user.email
    return [DemoToken(user.id, user.email, name, token, ttl)]
