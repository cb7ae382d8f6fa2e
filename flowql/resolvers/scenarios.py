"""Scenario and scenario-process resolvers: arguments in, service call, rows out."""

from __future__ import annotations

import uuid
from typing import Any

from flowql.models import Scenario
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs, paginate
from flowql.services import processes
from flowql.services import scenarios as service
from flowql.services.scenarios.history import Verification
from flowql.services.uow import unit_of_work


async def list_scenarios(
    ctx: Context, filters: service.ScenarioFilter, page: PageArgs
) -> Page[Scenario]:
    stmt = service.list_statement(ctx.principal, filters)
    async with ctx.db.read() as session:
        return await paginate(session, Scenario, stmt, page)


async def scenario(ctx: Context, ident: uuid.UUID | int) -> Scenario:
    async with ctx.db.read() as session:
        return await service.get_scenario(session, ctx.principal, ident)


async def store_scenario(
    ctx: Context, workspace_id: uuid.UUID | None, definition: Any, yaml_text: str | None
) -> Scenario:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.store_scenario(
            uow.session,
            ctx.principal,
            workspace_id=workspace_id,
            definition=definition,
            yaml_text=yaml_text,
        )


async def disable_scenario(ctx: Context, ident: uuid.UUID | int) -> Scenario:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.disable_scenario(uow.session, ctx.principal, ident)


async def start_process(
    ctx: Context, scenario_id: uuid.UUID, **fields: Any
) -> service.ActionOutcome:
    async with unit_of_work(ctx.runtime) as uow:
        start = processes.ScenarioStart(ctx.principal, scenario_id, **fields)
        return await processes.start_process(uow, ctx.runtime, start)


async def perform_action(
    ctx: Context, process_id: uuid.UUID, action: str, actor: str | None, response: Any
) -> service.ActionOutcome:
    # The service owns its transaction: a refused action is committed (as a skipped event)
    # before the VALIDATION_ERROR is raised.
    return await service.perform_action(
        ctx.runtime, ctx.principal, process_id, action, actor=actor, response=response
    )


async def verify_process(ctx: Context, ident: uuid.UUID | int) -> Verification:
    async with ctx.db.read() as session:
        return await service.verify_process(session, ctx.principal, ident)
