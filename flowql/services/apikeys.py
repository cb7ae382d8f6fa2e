"""API keys as workspace objects: issue (the token is shown once), list, revoke.

Hashing, the token format and authentication of a presented key live in `services/auth.py`;
this module adds the rules a caller meets: who may issue a key, which privileges and LetsFlow
process scopes it may carry, and who sees which keys.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal
from flowql.errors import Forbidden, ValidationFailed
from flowql.models import ApiKey, AuditAction, utcnow
from flowql.services import audit
from flowql.services.auth import IssuedApiKey, create_api_key, validate_privileges
from flowql.services.common import check_length, get_visible, require_name, visible

MAX_EXPIRATION_DAYS = 3650
SCOPE_KEYS = frozenset({"scenario", "actors", "actions"})


@dataclass
class ApiKeyFilter:
    workspace_id: uuid.UUID | None = None
    include_revoked: bool = False


@dataclass
class ApiKeySpec:
    """What a caller asks for; `privileges=None` means every privilege the caller holds."""

    name: str
    workspace_id: uuid.UUID | None = None
    description: str = ""
    privileges: list[str] | None = None
    process_scopes: list[dict[str, Any]] | None = None
    expires_at: datetime | None = None
    expiration_days: int | None = None


def list_statement(principal: Principal, filters: ApiKeyFilter) -> SelectOfScalar[ApiKey]:
    stmt = visible(principal, ApiKey, "apikey:read", filters.workspace_id)
    if not filters.include_revoked:
        stmt = stmt.where(col(ApiKey.revoked_at).is_(None))
    return stmt


async def get_api_key(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    privilege: str = "apikey:read",
) -> ApiKey:
    return await get_visible(session, principal, ApiKey, ident, privilege, "ApiKey")


def validate_process_scopes(scopes: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """LetsFlow process scopes: `[{scenario: uuid | null, actors: [str], actions: [str]}]`."""
    if scopes is None:
        return []
    if not isinstance(scopes, list):
        raise ValidationFailed.one("processScopes", "must be a list")
    problems: dict[str, str] = {}
    normalised: list[dict[str, Any]] = []
    for i, scope in enumerate(scopes):
        path = f"processScopes.{i}"
        if not isinstance(scope, dict):
            problems[path] = "must be an object with scenario, actors and actions"
            continue
        for extra in sorted(set(scope) - SCOPE_KEYS):
            problems[f"{path}.{extra}"] = "unknown field"
        scenario = scope.get("scenario")
        if scenario is not None:
            try:
                scenario = str(uuid.UUID(str(scenario)))
            except ValueError:
                problems[f"{path}.scenario"] = "must be a UUID or null"
        entry: dict[str, Any] = {"scenario": scenario}
        for field in ("actors", "actions"):
            values = scope.get(field) or []
            if not isinstance(values, list) or not all(
                isinstance(v, str) and v.strip() for v in values
            ):
                problems[f"{path}.{field}"] = "must be a list of non-empty strings"
                continue
            entry[field] = sorted({v.strip() for v in values})
        normalised.append(entry)
    if problems:
        raise ValidationFailed(problems)
    return normalised


def _expiry(spec: ApiKeySpec) -> datetime | None:
    if spec.expires_at is not None and spec.expiration_days is not None:
        raise ValidationFailed.one("expirationDays", "give either expiresAt or expirationDays")
    if spec.expiration_days is None:
        return spec.expires_at
    if not 1 <= spec.expiration_days <= MAX_EXPIRATION_DAYS:
        raise ValidationFailed.one("expirationDays", f"must be between 1 and {MAX_EXPIRATION_DAYS}")
    return utcnow() + timedelta(days=spec.expiration_days)


def _granted_privileges(
    principal: Principal, workspace_id: uuid.UUID, requested: list[str] | None
) -> list[str]:
    """A key never carries a privilege its creator does not hold in that workspace."""
    held = principal.grants.get(workspace_id, frozenset())
    if requested is None:
        return sorted(held)
    validate_privileges(requested)
    excess = sorted(set(requested) - held)
    if excess:
        raise Forbidden(
            f"cannot grant privileges you do not hold: {', '.join(excess)}",
            field="privileges",
            privileges=excess,
        )
    return sorted(set(requested))


def _covers(parent: dict[str, Any], child: dict[str, Any]) -> bool:
    """Whether `child` allows nothing that `parent` does not (an empty list allows all)."""
    if parent.get("scenario") is not None and parent["scenario"] != child.get("scenario"):
        return False
    for field in ("actors", "actions"):
        allowed = parent.get(field) or []
        wanted = child.get(field) or []
        if allowed and (not wanted or not set(wanted) <= set(allowed)):
            return False
    return True


def _scopes_cover(held: list[dict[str, Any]], scopes: list[dict[str, Any]]) -> bool:
    """Whether process scopes `scopes` allow nothing `held` does not (no scopes: anything)."""
    if not held:
        return True
    return bool(scopes) and all(any(_covers(p, scope) for p in held) for scope in scopes)


def _scopes_within(
    principal: Principal, requested: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """A scope-limited key issues keys inside its own scopes (none given: the same scopes)."""
    held = [dict(scope) for scope in principal.process_scopes]
    scopes = validate_process_scopes(requested)
    if not held:
        return scopes
    if requested is None:
        return held
    if not _scopes_cover(held, scopes):
        raise Forbidden("cannot grant process scopes wider than your own", field="processScopes")
    return scopes


def _no_wider(principal: Principal, key: ApiKey) -> None:
    """A caller manages only keys that allow nothing it may not do itself: privileges it holds
    there, process scopes inside its own (a scope-limited caller never touches an unscoped key)."""
    held = principal.grants.get(key.workspace_id, frozenset())
    wider = sorted(set(key.privileges) - held)
    if wider:
        raise Forbidden(
            f"the key holds privileges you do not: {', '.join(wider)}", privileges=wider
        )
    if not _scopes_cover(list(principal.process_scopes), list(key.process_scopes)):
        raise Forbidden("the key's process scopes are wider than your own")


async def _expiry_within(
    session: AsyncSession, principal: Principal, expires_at: datetime | None
) -> datetime | None:
    """A key issued by a key expires no later than its parent."""
    if principal.api_key_id is None:
        return expires_at
    parent = (await session.exec(select(ApiKey).where(ApiKey.id == principal.api_key_id))).one()
    if parent.expires_at is None:
        return expires_at
    if expires_at is not None and expires_at > parent.expires_at:
        raise Forbidden("cannot outlive the key that issues it", field="expiresAt")
    return expires_at or parent.expires_at


async def issue_api_key(
    session: AsyncSession, principal: Principal, spec: ApiKeySpec
) -> IssuedApiKey:
    """A new key never allows more than its issuer: privileges, process scopes, lifetime."""
    workspace_id = spec.workspace_id or principal.default_workspace("apikey:write")
    principal.require(workspace_id, "apikey:write", "Workspace")
    name = require_name(spec.name)
    check_length(spec.description, "description", 2000)
    privileges = _granted_privileges(principal, workspace_id, spec.privileges)
    scopes = _scopes_within(principal, spec.process_scopes)
    expires_at = await _expiry_within(session, principal, _expiry(spec))
    issued = await create_api_key(
        session,
        workspace_id,
        name,
        user_id=principal.user_id,
        description=spec.description or "",
        privileges=privileges,
        process_scopes=scopes,
        expires_at=expires_at,
    )
    audit.record(session, principal, AuditAction.CREATE, issued.api_key, privileges=privileges)
    return issued


async def revoke_api_key(
    session: AsyncSession, principal: Principal, ident: uuid.UUID | int
) -> ApiKey:
    """Revoking twice keeps the first revocation time."""
    key = await get_api_key(session, principal, ident, "apikey:write")
    _no_wider(principal, key)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        await session.flush()
        audit.record(session, principal, AuditAction.REVOKE, key, name=key.name)
    return key


async def revoke_user_keys(
    session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """A member leaving a workspace takes the keys they issued there with them."""
    await session.exec(
        update(ApiKey)
        .where(col(ApiKey.workspace_id) == workspace_id)
        .where(col(ApiKey.user_id) == user_id)
        .where(col(ApiKey.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
