"""The audit log: who created, changed, ran, revoked or deleted what, with which credential.

A service calls `record(session, principal, action, target)` next to the change it makes, so
the entry is one more row of the same transaction: written with the change or not at all. It
costs one INSERT in that transaction and nothing per process step (a process is audited when
it is started, cancelled or retried by a caller, not as it runs; processes started by inbound
webhooks, schedules or forms have no credential to record and are their own record).

Entries hold names, never values: `details` keeps only short strings, numbers, booleans and
lists of names, and drops any key that names a secret, so no credential value, key secret,
token or password can reach the table even when a caller passes one by mistake.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal
from flowql.models import AuditAction, AuditEntry, Row, Workspace
from flowql.services.common import visible

# Details keys that could carry a secret are dropped, whatever their value.
SECRET_WORDS = ("secret", "token", "password", "value", "credential", "hash", "key")
MAX_TEXT = 200
MAX_ITEMS = 50
# The name a row is listed under (`targetType`): its GraphQL type's name.
TARGET_TYPES = {"Membership": "Member"}


def target_type(row: Row) -> str:
    name = type(row).__name__
    return TARGET_TYPES.get(name, name)


def _safe(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        return [_safe(v) for v in items[:MAX_ITEMS] if isinstance(v, str | int | uuid.UUID)]
    return None


def clean_details(details: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _safe(v)
        for k, v in details.items()
        if not any(word in k.lower() for word in SECRET_WORDS) and _safe(v) is not None
    }


def record(
    session: AsyncSession,
    principal: Principal,
    action: AuditAction,
    target: Row,
    **details: Any,
) -> AuditEntry:
    """Adds an entry about `target` to the caller's transaction (written at its commit)."""
    workspace_id = target.id if isinstance(target, Workspace) else target.workspace_id  # type: ignore[attr-defined]
    entry = AuditEntry(
        workspace_id=workspace_id,
        action=action,
        target_type=target_type(target),
        target_id=target.id,
        actor_kind=principal.kind.value,
        actor_user_id=principal.user_id,
        actor_api_key_id=principal.api_key_id,
        actor_process_id=principal.process_id,
        details=clean_details(details),
    )
    session.add(entry)
    return entry


def given(**values: Any) -> list[str]:
    """The names of the arguments of a patch that were given (not None); never their values."""
    return sorted(k for k, v in values.items() if v is not None)


def changed(before: dict[str, Any], row: Row) -> list[str]:
    """The names of the fields of `row` whose values differ from `before` (values not kept)."""
    return sorted(k for k, v in before.items() if getattr(row, k, v) != v)


# -- reading -----------------------------------------------------------------------------------


@dataclass
class AuditFilter:
    workspace_id: uuid.UUID | None = None
    actions: list[AuditAction] = field(default_factory=list)
    target_types: list[str] = field(default_factory=list)
    target_id: uuid.UUID | None = None
    actor_user_id: uuid.UUID | None = None
    actor_api_key_id: uuid.UUID | None = None
    actor_process_id: uuid.UUID | None = None
    since: datetime | None = field(default=None, metadata={"description": "Inclusive."})
    until: datetime | None = field(default=None, metadata={"description": "Exclusive."})


def list_statement(principal: Principal, filters: AuditFilter) -> SelectOfScalar[AuditEntry]:
    """Entries of the workspaces where the caller holds `audit:read` (owners and admins)."""
    if filters.workspace_id is not None:
        principal.require(filters.workspace_id, "audit:read", "Workspace")
    stmt = visible(principal, AuditEntry, "audit:read", filters.workspace_id)
    if filters.actions:
        stmt = stmt.where(col(AuditEntry.action).in_(filters.actions))
    if filters.target_types:
        stmt = stmt.where(col(AuditEntry.target_type).in_(filters.target_types))
    exact = [
        (AuditEntry.target_id, filters.target_id),
        (AuditEntry.actor_user_id, filters.actor_user_id),
        (AuditEntry.actor_api_key_id, filters.actor_api_key_id),
        (AuditEntry.actor_process_id, filters.actor_process_id),
    ]
    for column, wanted in exact:
        if wanted is not None:
            stmt = stmt.where(col(column) == wanted)
    if filters.since is not None:
        stmt = stmt.where(col(AuditEntry.created_at) >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(col(AuditEntry.created_at) < filters.until)
    return stmt
