"""Reading processes, their steps and logs. (Running them is the engine's.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal
from flowql.models import Process, ProcessStatus
from flowql.services.common import apply_common_filters, get_visible, visible


@dataclass
class ProcessFilter:
    workspace_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    scenario_id: uuid.UUID | None = None
    statuses: list[ProcessStatus] = field(default_factory=list)
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def list_statement(principal: Principal, filters: ProcessFilter) -> SelectOfScalar[Process]:
    stmt = visible(principal, Process, "process:read", filters.workspace_id)
    if filters.workflow_id is not None:
        stmt = stmt.where(col(Process.workflow_id) == filters.workflow_id)
    if filters.scenario_id is not None:
        stmt = stmt.where(col(Process.scenario_id) == filters.scenario_id)
    if filters.statuses:
        stmt = stmt.where(col(Process.status).in_(filters.statuses))
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
    return await get_visible(session, principal, Process, ident, privilege, "Process")
