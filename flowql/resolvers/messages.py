"""Agent and message listings."""

from __future__ import annotations

import uuid
from typing import Any

from flowql.models import Agent, Message
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs, paginate_rows
from flowql.services import messages as service
from flowql.services.messages import AgentFilter, MessageFilter


async def list_agents(ctx: Context, filters: AgentFilter, page: PageArgs) -> Page[Any]:
    async with ctx.db.read() as session:
        return await paginate_rows(
            session, Agent, service.agents_statement(ctx.principal, filters), page
        )


async def list_messages(ctx: Context, filters: MessageFilter, page: PageArgs) -> Page[Any]:
    async with ctx.db.read() as session:
        return await paginate_rows(
            session, Message, service.messages_statement(ctx.principal, filters), page
        )


async def message(ctx: Context, ident: uuid.UUID | int) -> Message:
    async with ctx.db.read() as session:
        return await service.get_message(session, ctx.principal, ident)
