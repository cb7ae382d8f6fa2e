"""Process resolvers."""

from __future__ import annotations

import uuid
from typing import Any

from flowql.models import Process
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs, paginate_rows
from flowql.services import processes as service
from flowql.services.processes import ProcessFilter


async def list_processes(ctx: Context, filters: ProcessFilter, page: PageArgs) -> Page[Any]:
    stmt = service.list_statement(ctx.principal, filters)
    async with ctx.db.read() as session:
        return await paginate_rows(session, Process, stmt, page)


async def process(ctx: Context, ident: uuid.UUID | int) -> Process:
    async with ctx.db.read() as session:
        return await service.get_process(session, ctx.principal, ident)
