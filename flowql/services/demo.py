"""The development demo workspace and account, created on the first start."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from flowql.db import Database
from flowql.models import User
from flowql.services.auth import create_user
from flowql.services.workspaces import create_workspace

DEMO_EMAIL = "demo@flowql.local"
DEMO_PASSWORD = "flowql-demo"
DEMO_WORKSPACE = "Demo"


@dataclass(frozen=True)
class DemoAccount:
    email: str
    password: str
    workspace: str
    created: bool


async def ensure_demo_account(db: Database) -> DemoAccount:
    async with db.transaction() as session:
        existing = (await session.exec(select(User).where(User.email == DEMO_EMAIL))).first()
        if existing is None:
            user = await create_user(
                session, DEMO_EMAIL, DEMO_PASSWORD, first_name="Demo", last_name="User"
            )
            await create_workspace(session, user, DEMO_WORKSPACE)
    return DemoAccount(DEMO_EMAIL, DEMO_PASSWORD, DEMO_WORKSPACE, created=existing is None)
