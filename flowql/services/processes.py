"""Reading processes, their steps and logs. (Running them is the engine's.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import String, cast
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal
from flowql.models import Process, ProcessStatus, Workflow
from flowql.services.common import apply_common_filters, get_visible, visible


@dataclass
class ProcessFilter:
    workspace_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    # The workflow by its number (REST routes address objects by number).
    workflow_number: int | None = None
    scenario_id: uuid.UUID | None = None
    statuses: list[ProcessStatus] = field(default_factory=list)
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    scenario_processes: bool | None = field(
        default=None,
        metadata={"description": "true: only scenario processes; false: only workflow ones."},
    )
    # LetsFlow's GET /processes.
    involving_me: bool = field(
        default=False,
        metadata={
            "description": "Only scenario processes where your user is an actor (an actor "
            "record's `id` or `userId`); a scope-limited API key sees its scenarios' processes."
        },
    )


def _actor_user(principal: Principal) -> uuid.UUID | None:
    """Whose actor records `involving_me` looks for: the caller's user, except for a
    scope-limited key, which acts as its scoped actors (its scenarios limit it instead)."""
    if principal.is_scope_limited:
        return None
    return principal.user_id


def list_statement(principal: Principal, filters: ProcessFilter) -> SelectOfScalar[Process]:
    stmt = visible(principal, Process, "process:read", filters.workspace_id)
    if filters.workflow_id is not None:
        stmt = stmt.where(col(Process.workflow_id) == filters.workflow_id)
    if filters.workflow_number is not None:
        by_number = select(Workflow.id).where(col(Workflow.number) == filters.workflow_number)
        stmt = stmt.where(col(Process.workflow_id).in_(by_number))
    if filters.scenario_id is not None:
        stmt = stmt.where(col(Process.scenario_id) == filters.scenario_id)
    if filters.statuses:
        stmt = stmt.where(col(Process.status).in_(filters.statuses))
    if filters.scenario_processes is not None or filters.involving_me:
        column = col(Process.scenario_id)
        only_scenarios = filters.involving_me or bool(filters.scenario_processes)
        stmt = stmt.where(column.is_not(None) if only_scenarios else column.is_(None))
    user_id = _actor_user(principal) if filters.involving_me else None
    if user_id is not None:
        # An actor record names its user by `id` or `userId` (services.scenarios.access).
        actors = cast(col(Process.actors), String)
        stmt = stmt.where(actors.contains(f'"{user_id}"', autoescape=True))
    return apply_common_filters(
        stmt,
        Process,
        search=filters.search,
        search_column="title",
        created_after=filters.created_after,
        created_before=filters.created_before,
    )


async def get_process(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    privilege: str = "process:read",
) -> Process:
    """A scope-limited key gets FORBIDDEN for a process of its workspace outside its scopes
    (services/common.py confines every read of processes and what belongs to them)."""
    return await get_visible(session, principal, Process, ident, privilege, "Process")
