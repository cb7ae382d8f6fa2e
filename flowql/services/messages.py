"""Reading agents and their messages across workflows (ActiveWorkflow's agent and message views)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal
from flowql.models import Agent, Message
from flowql.services.common import apply_common_filters, get_visible, visible


@dataclass
class AgentFilter:
    workspace_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    type: str | None = None
    search: str | None = None


@dataclass
class MessageFilter:
    workspace_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    process_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    # The agent by its number (REST routes address objects by number).
    agent_number: int | None = None


def agents_statement(principal: Principal, filters: AgentFilter) -> SelectOfScalar[Agent]:
    stmt = visible(principal, Agent, "workflow:read", filters.workspace_id)
    if filters.workflow_id is not None:
        stmt = stmt.where(col(Agent.workflow_id) == filters.workflow_id)
    if filters.type is not None:
        stmt = stmt.where(col(Agent.type) == filters.type)
    return apply_common_filters(stmt, Agent, search=filters.search)


def messages_statement(principal: Principal, filters: MessageFilter) -> SelectOfScalar[Message]:
    stmt = visible(principal, Message, "workflow:read", filters.workspace_id)
    for column, value in (
        (Message.agent_id, filters.agent_id),
        (Message.workflow_id, filters.workflow_id),
        (Message.process_id, filters.process_id),
    ):
        if value is not None:
            stmt = stmt.where(col(column) == value)
    if filters.agent_number is not None:
        by_number = select(Agent.id).where(col(Agent.number) == filters.agent_number)
        stmt = stmt.where(col(Message.agent_id).in_(by_number))
    if filters.created_after is not None:
        stmt = stmt.where(col(Message.created_at) > filters.created_after)
    if filters.created_before is not None:
        stmt = stmt.where(col(Message.created_at) <= filters.created_before)
    return stmt


async def get_message(
    session: AsyncSession, principal: Principal, ident: uuid.UUID | int
) -> Message:
    return await get_visible(session, principal, Message, ident, "workflow:read", "Message")
