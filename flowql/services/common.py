"""Helpers every service uses: load a row the caller may see, name checks, list filters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, or_, true
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal, PrincipalKind
from flowql.errors import Forbidden, NotFound, ValidationFailed
from flowql.models import Process, Workflow, WorkspaceRow
from flowql.services.delegation import record_edit

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
    stmt = select(model).where(column == ident)
    if principal.kind is PrincipalKind.EXECUTION:
        stmt = stmt.where(confinement(principal, model))
    row = (await session.exec(stmt)).first()
    if row is None or row.workspace_id not in principal.grants:
        raise NotFound(kind)
    principal.require(row.workspace_id, privilege, kind)
    if principal.is_scope_limited and not await _within_scopes(session, principal, row):
        raise Forbidden("the API key's process scopes do not include this process")
    if privilege == "workflow:write":
        await record_edit(session, principal, row)
    return row


def visible(
    principal: Principal, model: type[W], privilege: str, workspace_id: uuid.UUID | None = None
) -> SelectOfScalar[W]:
    """SELECT of the rows in every workspace where the caller holds `privilege`."""
    allowed = principal.workspaces_with(privilege)
    if workspace_id is not None:
        allowed = [w for w in allowed if w == workspace_id]
    stmt = select(model).where(col(model.workspace_id).in_(allowed))
    return stmt.where(confinement(principal, model))


# -- confinement: credentials that see part of a workspace ------------------------------------


def scope_scenarios(principal: Principal) -> list[uuid.UUID] | None:
    """The scenarios a scope-limited API key's processes belong to; None: any scenario (but
    still only scenario processes). Not meaningful for a key without scopes."""
    named = [scope.get("scenario") for scope in principal.process_scopes]
    if any(name in (None, "*") for name in named):
        return None
    return [uuid.UUID(str(name)) for name in named]


def scoped_process_clause(principal: Principal) -> ColumnElement[bool]:
    """The processes a scope-limited key may see: those of the scenarios its scopes name."""
    scenarios = scope_scenarios(principal)
    column = col(Process.scenario_id)
    return column.is_not(None) if scenarios is None else column.in_(scenarios)


def confinement(principal: Principal, model: type[W]) -> ColumnElement[bool]:
    """Which rows of `model` a confined credential may see within its workspaces: an execution
    token its own process and workflow (and what belongs to them); a key with process scopes
    only the processes (and what belongs to them) of its scenarios. Everyone else: no limit."""
    process_column = getattr(model, "process_id", None)
    workflow_column = getattr(model, "workflow_id", None)
    if principal.kind is PrincipalKind.EXECUTION:
        if model is Process:
            return col(Process.id) == principal.process_id
        if model is Workflow:
            return col(Workflow.id) == principal.workflow_id
        clauses: list[ColumnElement[bool]] = []
        if process_column is not None:
            clauses.append(col(process_column) == principal.process_id)
        if workflow_column is not None:
            column = col(workflow_column)
            clauses.append(or_(column.is_(None), column == principal.workflow_id))
        return and_(true(), *clauses)
    if principal.is_scope_limited:
        if model is Process:
            return scoped_process_clause(principal)
        if process_column is not None:
            inside = select(Process.id).where(scoped_process_clause(principal))
            return col(process_column).in_(inside)
    return true()


async def _within_scopes(session: AsyncSession, principal: Principal, row: WorkspaceRow) -> bool:
    if isinstance(row, Process):
        return sees_process(principal, row)
    process_id = getattr(row, "process_id", None)
    if not hasattr(type(row), "process_id"):
        return True
    process = None
    if process_id is not None:
        process = (await session.exec(select(Process).where(Process.id == process_id))).first()
    return process is not None and sees_process(principal, process)


def sees_process(principal: Principal, process: Process) -> bool:
    """The Python twin of `confinement` for a process row already loaded (e.g. from the bus)."""
    if principal.kind is PrincipalKind.EXECUTION:
        return process.id == principal.process_id
    if principal.is_scope_limited:
        scenarios = scope_scenarios(principal)
        if process.scenario_id is None:
            return False
        return scenarios is None or process.scenario_id in scenarios
    return True


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


def sees_row(principal: Principal, row: WorkspaceRow) -> bool:
    """Whether a confined credential may see a row already loaded (a live feed's event): the
    Python twin of `confinement`. A scope-limited key is refused anything of a process it
    cannot check here (its processes are scenario processes, which emit no messages)."""
    if isinstance(row, Process):
        return sees_process(principal, row)
    process_id = getattr(row, "process_id", None)
    workflow_id = getattr(row, "workflow_id", None)
    if principal.kind is PrincipalKind.EXECUTION:
        return (not hasattr(row, "process_id") or process_id == principal.process_id) and (
            workflow_id is None or workflow_id == principal.workflow_id
        )
    if principal.is_scope_limited:
        return not hasattr(row, "process_id")
    return True
