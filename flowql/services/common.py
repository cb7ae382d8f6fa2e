"""Helpers every service uses: load a row the caller may see, name checks, list filters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal
from flowql.errors import NotFound, ValidationFailed
from flowql.models import WorkspaceRow

W = TypeVar("W", bound=WorkspaceRow)


async def get_visible(
    session: AsyncSession,
    principal: Principal,
    model: type[W],
    ident: uuid.UUID | int,
    privilege: str,
    kind: str,
) -> W:
    """The row if the caller holds `privilege` in its workspace; NOT_FOUND if it cannot see it."""
    principal.ensure_authenticated()
    column = col(model.id) if isinstance(ident, uuid.UUID) else col(model.number)
    row = (await session.exec(select(model).where(column == ident))).first()
    if row is None or row.workspace_id not in principal.grants:
        raise NotFound(kind)
    principal.require(row.workspace_id, privilege, kind)
    return row


def visible(
    principal: Principal, model: type[W], privilege: str, workspace_id: uuid.UUID | None = None
) -> SelectOfScalar[W]:
    """SELECT of the rows in every workspace where the caller holds `privilege`."""
    allowed = principal.workspaces_with(privilege)
    if workspace_id is not None:
        allowed = [w for w in allowed if w == workspace_id]
    return select(model).where(col(model.workspace_id).in_(allowed))


def apply_common_filters(
    stmt: SelectOfScalar[W],
    model: type[W],
    *,
    search: str | None = None,
    search_column: str = "name",
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> SelectOfScalar[W]:
    if search:
        stmt = stmt.where(
            col(getattr(model, search_column)).ilike(f"%{escape_like(search)}%", escape="\\")
        )
    if created_after is not None:
        stmt = stmt.where(col(model.created_at) >= created_after)
    if created_before is not None:
        stmt = stmt.where(col(model.created_at) <= created_before)
    return stmt


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def require_name(value: str | None, field: str = "name", max_length: int = 200) -> str:
    if value is None or not value.strip():
        raise ValidationFailed.one(field, "must not be empty")
    value = value.strip()
    if len(value) > max_length:
        raise ValidationFailed.one(field, f"must be at most {max_length} characters")
    return value


def check_length(value: str | None, field: str, max_length: int) -> None:
    if value is not None and len(value) > max_length:
        raise ValidationFailed.one(field, f"must be at most {max_length} characters")


def updates(values: dict[str, Any]) -> dict[str, Any]:
    """The fields of a patch that were actually given (None means 'leave as is')."""
    return {k: v for k, v in values.items() if v is not None}
