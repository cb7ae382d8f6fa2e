"""Workflow and agent resolvers: arguments in, service call, rows out."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam
from sqlmodel import col, select

from flowql.auth.principal import PrincipalKind
from flowql.errors import NotFound
from flowql.models import Agent, Workflow
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs, paginate_rows
from flowql.services import workflow_export
from flowql.services import workflows as service
from flowql.services.uow import unit_of_work
from flowql.services.workflows import AgentSpec, WorkflowFilter


async def list_workflows(ctx: Context, filters: WorkflowFilter, page: PageArgs) -> Page[Any]:
    stmt = service.list_statement(ctx.principal, filters)
    async with ctx.db.read() as session:
        return await paginate_rows(session, Workflow, stmt, page)


# One workflow by id or number: built once, bound per request.
_BY_ID = select(Workflow).where(col(Workflow.id) == bindparam("ident"))
_BY_NUMBER = select(Workflow).where(col(Workflow.number) == bindparam("ident"))


async def workflow(ctx: Context, ident: uuid.UUID | int) -> Workflow:
    """`service.get_workflow` (read) in one hop of `Database.lookup`. An execution token is
    confined to its own workflow: the service says how; any other caller sees the workflows of
    the workspaces it may read (scopes of an API key narrow processes only), so the rules of
    `get_visible` for a workflow come down to the two checks below."""
    principal = ctx.principal
    if principal.kind is PrincipalKind.EXECUTION:
        async with ctx.db.read() as session:
            return await service.get_workflow(session, principal, ident)
    principal.ensure_authenticated()
    stmt = _BY_ID if isinstance(ident, uuid.UUID) else _BY_NUMBER
    row: Workflow | None = await ctx.db.lookup(
        lambda session: session.execute(stmt, {"ident": ident}).scalars().first()
    )
    if row is None or row.workspace_id not in principal.grants:
        raise NotFound("Workflow")
    principal.require(row.workspace_id, "workflow:read", "Workflow")
    return row


async def agent(ctx: Context, ident: uuid.UUID | int) -> Agent:
    async with ctx.db.read() as session:
        return await service.get_agent(session, ctx.principal, ident)


async def create_workflow(ctx: Context, agents: list[AgentSpec] | None, **fields: Any) -> Workflow:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.create_workflow(
            uow.session, ctx.principal, ctx.box, agents=agents, **fields
        )


async def update_workflow(
    ctx: Context, ident: uuid.UUID | int, agents: list[AgentSpec] | None, **fields: Any
) -> Workflow:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.update_workflow(
            uow.session, ctx.principal, ctx.box, ident, agents=agents, **fields
        )


async def delete_workflow(ctx: Context, ident: uuid.UUID | int) -> Workflow:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.delete_workflow(uow.session, ctx.principal, ident)


async def create_agent(
    ctx: Context, workflow_id: uuid.UUID | int, spec: AgentSpec, source_ids: list[uuid.UUID] | None
) -> Agent:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.create_agent(
            uow.session, ctx.principal, ctx.box, workflow_id, spec, source_ids
        )


async def update_agent(ctx: Context, ident: uuid.UUID | int, **fields: Any) -> Agent:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.update_agent(uow.session, ctx.principal, ctx.box, ident, **fields)


async def delete_agent(ctx: Context, ident: uuid.UUID | int) -> Agent:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.delete_agent(uow.session, ctx.principal, ident)


async def export_workflow(ctx: Context, workflow_id: uuid.UUID) -> dict[str, Any]:
    async with ctx.db.read() as session:
        workflow = await service.get_workflow(session, ctx.principal, workflow_id)
        return await workflow_export.export_workflow(session, workflow)


async def import_workflow(
    ctx: Context, workspace_id: uuid.UUID | None, definition: Any, publish: bool = False
) -> Workflow:
    async with unit_of_work(ctx.runtime) as uow:
        return await workflow_export.import_workflow(
            uow.session, ctx.principal, ctx.box, workspace_id, definition, publish=publish
        )
