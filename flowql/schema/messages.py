"""Messages agents emit, and listings of agents and messages across workflows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from flowql import models
from flowql.resolvers import messages as resolve
from flowql.schema import nodes
from flowql.schema.base import (
    JSON,
    Connection,
    FromRow,
    Info,
    ident,
    page_args,
    subtree_names,
    when_loaded,
)
from flowql.schema.documents import context_only
from flowql.schema.filters import FilterInput, filter_input
from flowql.services.messages import AgentFilter, MessageFilter

if TYPE_CHECKING:
    from flowql.schema.workflows import Agent

AgentRef = Annotated["Agent", strawberry.lazy("flowql.schema.workflows")]


@strawberry.type
class Message(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    agent_id: uuid.UUID
    workflow_id: uuid.UUID
    process_id: uuid.UUID | None
    payload: JSON
    created_at: datetime
    expires_at: datetime | None

    @strawberry.field
    @context_only
    def agent(self, info: Info) -> AgentRef | None:
        loader = info.context.loaders.by_id(models.Agent, rows=True)
        return when_loaded(loader.load(self.agent_id), nodes.agent().maybe)


@filter_input(AgentFilter)
class AgentFilterInput(FilterInput[AgentFilter]):
    pass


@filter_input(MessageFilter)
class MessageFilterInput(FilterInput[MessageFilter]):
    pass


@strawberry.type
class Query:
    @strawberry.field(description="Agents of every workflow the caller can read.")
    async def agents(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
        filter: AgentFilterInput | None = None,
        descending: bool = False,
    ) -> Connection[AgentRef]:
        filters = (filter or AgentFilterInput()).to_filter()
        args = page_args(first, after, offset, descending, info=info)
        page = await resolve.list_agents(info.context, filters, args)
        return Connection.of(page, nodes.agent().from_row)

    @strawberry.field(description="Messages, newest first.")
    async def messages(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
        filter: MessageFilterInput | None = None,
    ) -> Connection[Message]:
        filters = (filter or MessageFilterInput()).to_filter()
        args = page_args(
            first, after, offset, info=info, model=models.Message, needs={"agent": ("agent_id",)}
        )
        page = await resolve.list_messages(info.context, filters, args)
        if page.rows and "agent" in subtree_names(info):
            agent_ids = list({row.agent_id for row in page.rows})
            await info.context.loaders.by_id(models.Agent, rows=True).load_many(agent_ids)
        return Connection.of(page, Message.from_row)

    @strawberry.field
    async def message(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Message:
        return Message.from_row(await resolve.message(info.context, ident(id, number)))
