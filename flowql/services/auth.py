"""Login, refresh rotation, API keys, execution tokens, and bearer -> Principal."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, false
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.auth.cache import cache_for
from flowql.auth.passwords import hash_password, verify_password
from flowql.auth.principal import ANONYMOUS, Principal, PrincipalKind
from flowql.auth.privileges import (
    ALL_PRIVILEGES,
    EXECUTION_CEILING,
    ROLE_PRIVILEGES,
    unknown_privileges,
)
from flowql.auth.tokens import TokenIssuer, hash_token, looks_like_jwt, new_opaque_token
from flowql.db import Database
from flowql.errors import Unauthorized, ValidationFailed
from flowql.models import (
    ApiKey,
    Membership,
    Plan,
    Process,
    RefreshToken,
    Role,
    User,
    Workspace,
    utcnow,
)
from flowql.settings import Settings

API_KEY_PREFIX = "fql"
REFRESH_PREFIX = "fqr"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    token: str


IssueFn = Callable[[AsyncSession, RefreshToken], Awaitable[TokenPair]]


def issuer_for(settings: Settings) -> TokenIssuer:
    assert settings.secret_key, "settings.with_generated_keys() must run before issuing tokens"
    return TokenIssuer(settings.secret_key, settings.jwt_issuer, settings.jwt_audience)


# -- users and login ---------------------------------------------------------------------------


def validate_password(password: str) -> None:
    if len(password) < 8:
        raise ValidationFailed.one("password", "must be at least 8 characters")


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@") or len(email) > 320:
        raise ValidationFailed.one("email", "not a valid email address")
    return email


async def create_user(session: AsyncSession, email: str, password: str, **profile: Any) -> User:
    email = normalise_email(email)
    validate_password(password)
    existing = await session.exec(select(User).where(User.email == email))
    if existing.first() is not None:
        raise ValidationFailed.one("email", "already registered")
    user = User(email=email, password_hash=hash_password(password), **profile)
    session.add(user)
    await session.flush()
    return user


async def login(session: AsyncSession, settings: Settings, email: str, password: str) -> TokenPair:
    result = await session.exec(select(User).where(User.email == email.strip().lower()))
    user = result.first()
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthorized("invalid email or password")
    if not user.is_active:
        raise Unauthorized("account disabled")
    user.last_login = utcnow()
    session.add(user)
    return await _issue_pair(session, settings, user, family_id=uuid.uuid4())


async def _issue_pair(
    session: AsyncSession, settings: Settings, user: User, family_id: uuid.UUID
) -> TokenPair:
    # `fam` ties the access token to its login: revoking the family refuses it at once.
    access = issuer_for(settings).issue(str(user.id), settings.access_token_ttl, fam=str(family_id))
    refresh = new_opaque_token(REFRESH_PREFIX)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=hash_token(refresh),
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl),
        )
    )
    await session.flush()
    return TokenPair(access, refresh, settings.access_token_ttl)


class _TokenReuse(Exception):
    def __init__(self, family_id: uuid.UUID) -> None:
        self.family_id = family_id


async def _rotate(session: AsyncSession, token: str) -> RefreshToken:
    """Marks the presented refresh token used; a used or revoked one raises _TokenReuse."""
    result = await session.exec(
        select(RefreshToken).where(RefreshToken.token_hash == hash_token(token))
    )
    row = result.first()
    if row is None:
        raise Unauthorized("invalid refresh token")
    now = utcnow()
    if row.rotated_at is not None or row.revoked_at is not None:
        raise _TokenReuse(row.family_id)
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized("refresh token expired")
    claimed = await session.exec(
        update(RefreshToken)
        .where(col(RefreshToken.number) == row.number)
        .where(col(RefreshToken.rotated_at).is_(None))
        .values(rotated_at=now)
    )
    if claimed.rowcount != 1:  # a concurrent refresh with the same token won the race
        raise _TokenReuse(row.family_id)
    return row


async def _rotating(db: Database, token: str, issue: IssueFn) -> TokenPair:
    """Rotate in one transaction; on reuse, revoke the family in a transaction of its own."""
    try:
        async with db.transaction() as session:
            row = await _rotate(session, token)
            return await issue(session, row)
    except _TokenReuse as reuse:
        async with db.transaction() as session:
            await session.exec(
                update(RefreshToken)
                .where(col(RefreshToken.family_id) == reuse.family_id)
                .where(col(RefreshToken.revoked_at).is_(None))
                .values(revoked_at=utcnow())
            )
        raise Unauthorized(
            "refresh token reuse detected; every token of this login is revoked"
        ) from None


async def refresh(db: Database, settings: Settings, token: str) -> TokenPair:
    async def issue(session: AsyncSession, row: RefreshToken) -> TokenPair:
        if row.user_id is None or row.process_id is not None:
            raise Unauthorized("invalid refresh token")
        user = (await session.exec(select(User).where(User.id == row.user_id))).first()
        if user is None or not user.is_active:
            raise Unauthorized("account disabled")
        return await _issue_pair(session, settings, user, family_id=row.family_id)

    return await _rotating(db, token, issue)


# -- execution tokens (a running process's own credentials) ------------------------------------


async def issue_execution_tokens(
    session: AsyncSession,
    settings: Settings,
    process: Process,
    family_id: uuid.UUID | None = None,
    *,
    issuer_privileges: frozenset[str] | list[str] | None = None,
) -> TokenPair:
    """An execution token for `process`, never wider than whoever asked for it
    (`issuer_privileges`: what they hold in the process's workspace; None only for the engine
    itself). The token then holds `execution_privileges` of that."""
    family_id = family_id or uuid.uuid4()
    limit = None if issuer_privileges is None else sorted(issuer_privileges)
    access = issuer_for(settings).issue(
        str(process.id),
        settings.execution_token_ttl,
        typ="execution",
        ws=str(process.workspace_id),
        usr=str(process.user_id) if process.user_id else None,
        fam=str(family_id),
        prv=limit,
    )
    refresh_token = new_opaque_token(REFRESH_PREFIX)
    session.add(
        RefreshToken(
            process_id=process.id,
            workspace_id=process.workspace_id,
            family_id=family_id,
            token_hash=hash_token(refresh_token),
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl),
            privileges=limit,
        )
    )
    await session.flush()
    return TokenPair(access, refresh_token, settings.execution_token_ttl)


def execution_privileges(process: Process, limit: list[str] | None) -> frozenset[str]:
    """What an execution token of `process` may do: the ceiling of any execution token, within
    the process's own privileges (services/delegation.py) and the issuer's `limit`. A process
    hands out its integrations' decrypted credentials (WayScript), so reading integrations
    through it needs what managing them takes."""
    # A process started before its privileges were recorded (or built without them) gets the
    # bare ceiling, which never includes its integrations' credentials.
    held = EXECUTION_CEILING if process.privileges is None else frozenset(process.privileges)
    if limit is not None:
        held = held & frozenset(limit)
    granted = EXECUTION_CEILING & held
    if "integration:write" not in held:
        granted = granted - {"integration:read"}
    return granted


async def refresh_execution(db: Database, settings: Settings, token: str) -> TokenPair:
    async def issue(session: AsyncSession, row: RefreshToken) -> TokenPair:
        if row.process_id is None:
            raise Unauthorized("invalid refresh token")
        process = (await session.exec(select(Process).where(Process.id == row.process_id))).first()
        if process is None:
            raise Unauthorized("invalid refresh token")
        return await issue_execution_tokens(
            session, settings, process, family_id=row.family_id, issuer_privileges=row.privileges
        )

    return await _rotating(db, token, issue)


# -- API keys ----------------------------------------------------------------------------------


def validate_privileges(privileges: list[str], field: str = "privileges") -> None:
    unknown = unknown_privileges(privileges)
    if unknown:
        raise ValidationFailed.one(field, f"unknown privileges: {', '.join(sorted(unknown))}")


async def create_api_key(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    name: str,
    *,
    user_id: uuid.UUID | None = None,
    description: str = "",
    privileges: list[str] | None = None,
    process_scopes: list[dict[str, Any]] | None = None,
    expires_at: datetime | None = None,
) -> IssuedApiKey:
    if not name.strip():
        raise ValidationFailed.one("name", "must not be empty")
    privileges = sorted(ALL_PRIVILEGES) if privileges is None else sorted(set(privileges))
    validate_privileges(privileges)
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed.one("expiresAt", "must be in the future")
    prefix = new_opaque_token("")[1:13].replace("-", "x").replace("_", "y")
    token = f"{API_KEY_PREFIX}_{prefix}_{new_opaque_token('')[1:]}"
    key = ApiKey(
        workspace_id=workspace_id,
        user_id=user_id,
        name=name.strip(),
        description=description,
        prefix=prefix,
        key_hash=hash_token(token),
        privileges=privileges,
        process_scopes=process_scopes or [],
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return IssuedApiKey(key, token)


def _api_key_prefix(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


# -- bearer -> principal -----------------------------------------------------------------------
#
# Each credential resolves in one statement (its subject, revocation, memberships and plans
# together), and the result is kept for a few seconds per credential (flowql.auth.cache: any
# write that could change it, in this process, ends it at once; in another, when the PostgreSQL
# bus announces it or within the TTL).


async def user_principal(session: AsyncSession, user: User) -> Principal:
    rows = await session.exec(select(Membership).where(Membership.user_id == user.id))
    memberships = list(rows.all())
    return Principal(
        kind=PrincipalKind.USER,
        user_id=user.id,
        grants={m.workspace_id: ROLE_PRIVILEGES[Role(m.role)] for m in memberships},
        roles={m.workspace_id: str(m.role) for m in memberships},
    )


async def authenticate(session: AsyncSession, settings: Settings, bearer: str | None) -> Principal:
    """The caller behind `Authorization: Bearer …`: a user JWT, an execution JWT or an API key
    (read afresh: no cache)."""
    if not bearer:
        return ANONYMOUS
    token = bearer.strip()
    if looks_like_jwt(token):
        return await _claims_principal(session, verified_claims(settings, token))
    principal, _ = await _api_key_principal(session, token, _api_key_prefix_of(token))
    return principal


async def authenticate_cached(db: Database, settings: Settings, bearer: str | None) -> Principal:
    """`authenticate`, answered from the per-credential cache when it can be. A JWT is verified
    (signature, expiry, audience, issuer) before the cache is asked, every time."""
    if not bearer:
        return ANONYMOUS
    token = bearer.strip()
    cache = cache_for(db.engine, db.plan_clock)
    if looks_like_jwt(token):
        claims = verified_claims(settings, token)
        principal = cache.get(token)
        if principal is None:
            generation = db.plan_clock.generation  # before the read: a change during it is not kept
            async with db.read() as session:
                principal = await _claims_principal(session, claims)
            cache.put(token, principal, generation)
        return principal
    prefix = _api_key_prefix_of(token)
    principal = cache.get(token)
    if principal is None:
        generation = db.plan_clock.generation
        async with db.read() as session:
            principal, not_after = await _api_key_principal(session, token, prefix)
        cache.put(token, principal, generation, not_after)
    return principal


PLAN_ORDER = [Plan.FREE, Plan.STARTER, Plan.PRO, Plan.BUSINESS, Plan.UNLIMITED]


def _best_plan(plans: list[Any]) -> str:
    """The most generous plan among the caller's workspaces sets its rate limits."""
    return max((Plan(p) for p in plans), key=PLAN_ORDER.index, default=Plan.FREE).value


def verified_claims(settings: Settings, token: str) -> dict[str, Any]:
    """A JWT's claims, strictly verified as the type it says it is (access or execution)."""
    return issuer_for(settings).verify_bearer(token)


async def _claims_principal(session: AsyncSession, claims: dict[str, Any]) -> Principal:
    if claims.get("typ") == "execution":
        return await _execution_principal(session, claims)
    user_id = _claim_uuid(claims, "sub")
    rows = (
        await session.exec(
            select(  # type: ignore[call-overload]
                col(User.is_active),
                _family_revoked(claims),
                col(Membership.workspace_id),
                col(Membership.role),
                col(Workspace.plan),
            )
            .select_from(User)
            .outerjoin(Membership, col(Membership.user_id) == col(User.id))
            .outerjoin(Workspace, col(Workspace.id) == col(Membership.workspace_id))
            .where(col(User.id) == user_id)
        )
    ).all()
    if not rows or not rows[0][0]:
        raise Unauthorized("account disabled")
    if rows[0][1]:
        raise Unauthorized("token revoked: sign in again")
    memberships = [(ws, role, plan) for _, _, ws, role, plan in rows if ws is not None]
    return Principal(
        kind=PrincipalKind.USER,
        user_id=user_id,
        grants={ws: ROLE_PRIVILEGES[Role(role)] for ws, role, _ in memberships},
        roles={ws: str(role) for ws, role, _ in memberships},
        plan=_best_plan([plan for _, _, plan in memberships]) if memberships else "free",
    )


def _claim_uuid(claims: dict[str, Any], name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(claims[name]))
    except (KeyError, ValueError) as exc:
        raise Unauthorized(f"invalid token claim {name!r}") from exc


def _family_revoked(claims: dict[str, Any]) -> ColumnElement[bool]:
    """Whether the token's login (refresh family) was revoked, asked in the same statement
    that loads the token's subject: no extra round trip, and true on every replica at once."""
    if claims.get("fam") is None:
        return false()
    family = _claim_uuid(claims, "fam")
    return (
        exists()
        .where(col(RefreshToken.family_id) == family)
        .where(col(RefreshToken.revoked_at).is_not(None))
    )


async def _execution_principal(session: AsyncSession, claims: dict[str, Any]) -> Principal:
    process_id = _claim_uuid(claims, "sub")
    workspace_id = _claim_uuid(claims, "ws")
    limit = claims.get("prv")
    if limit is not None and not (
        isinstance(limit, list) and all(isinstance(p, str) for p in limit)
    ):
        raise Unauthorized("invalid token claim 'prv'")
    found = (
        await session.exec(
            select(Process, _family_revoked(claims), col(Workspace.plan))
            .outerjoin(Workspace, col(Workspace.id) == col(Process.workspace_id))
            .where(col(Process.id) == process_id)
        )
    ).first()
    if found is None or found[0].workspace_id != workspace_id:
        raise Unauthorized("process no longer exists")
    process, revoked, plan = found
    if revoked:
        raise Unauthorized("token revoked")
    return Principal(
        kind=PrincipalKind.EXECUTION,
        user_id=process.user_id,
        process_id=process.id,
        workflow_id=process.workflow_id,
        grants={workspace_id: execution_privileges(process, limit)},
        plan=_best_plan([plan] if plan is not None else []),
    )


def _api_key_prefix_of(token: str) -> str:
    prefix = _api_key_prefix(token)
    if prefix is None:
        raise Unauthorized("invalid credentials")
    return prefix


async def _api_key_principal(
    session: AsyncSession, token: str, prefix: str
) -> tuple[Principal, float | None]:
    """The key's principal and, when the key expires, when (a Unix time)."""
    found = (
        await session.exec(
            select(ApiKey, col(User.is_active), col(Membership.role), col(Workspace.plan))
            .select_from(ApiKey)
            .outerjoin(User, col(User.id) == col(ApiKey.user_id))
            .outerjoin(
                Membership,
                (col(Membership.user_id) == col(ApiKey.user_id))
                & (col(Membership.workspace_id) == col(ApiKey.workspace_id)),
            )
            .outerjoin(Workspace, col(Workspace.id) == col(ApiKey.workspace_id))
            .where(col(ApiKey.prefix) == prefix)
        )
    ).first()
    if found is None or not hmac.compare_digest(found[0].key_hash, hash_token(token)):
        raise Unauthorized("invalid API key")
    key, owner_active, role, plan = found
    now = utcnow()
    if key.revoked_at is not None:
        raise Unauthorized("API key revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("API key expired")
    privileges = frozenset(key.privileges)
    if key.user_id is not None:
        # A key never grants more than its creator still holds in that workspace, and dies
        # with the creator's account or membership.
        if not owner_active or role is None:
            raise Unauthorized("API key owner is no longer a member of the workspace")
        privileges = privileges & ROLE_PRIVILEGES[Role(role)]
    # Recorded when the key is read from the database: at most once per cache lifetime.
    await session.exec(
        update(ApiKey).where(col(ApiKey.number) == key.number).values(last_used_at=now)
    )
    await session.commit()
    principal = Principal(
        kind=PrincipalKind.API_KEY,
        user_id=key.user_id,
        api_key_id=key.id,
        grants={key.workspace_id: privileges},
        process_scopes=tuple(key.process_scopes),
        plan=_best_plan([plan] if plan is not None else []),
    )
    return principal, key.expires_at.timestamp() if key.expires_at is not None else None
