"""Triggers are trigger-type agents; these resolvers manage them by their Trigger row."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.errors import ValidationFailed
from flowql.models import Trigger, TriggerType
from flowql.resolvers.context import Context
from flowql.services import workflows as service
from flowql.services.common import get_visible
from flowql.services.uow import unit_of_work
from flowql.services.workflows import AgentSpec


async def _trigger_of_agent(session: AsyncSession, agent_id: uuid.UUID) -> Trigger:
    return (await session.exec(select(Trigger).where(Trigger.agent_id == agent_id))).one()


async def create_trigger(
    ctx: Context,
    workflow_id: uuid.UUID | int,
    type: TriggerType,
    name: str,
    options: dict[str, Any],
    active: bool,
) -> Trigger:
    spec = AgentSpec(name=name, type=type.value, options=options, disabled=not active)
    async with unit_of_work(ctx.runtime) as uow:
        agent = await service.create_agent(uow.session, ctx.principal, ctx.box, workflow_id, spec)
        return await _trigger_of_agent(uow.session, agent.id)


async def update_trigger(
    ctx: Context,
    ident: uuid.UUID | int,
    name: str | None,
    options: dict[str, Any] | None,
    active: bool | None,
) -> Trigger:
    async with unit_of_work(ctx.runtime) as uow:
        trigger = await get_visible(
            uow.session, ctx.principal, Trigger, ident, "workflow:write", "Trigger"
        )
        if trigger.agent_id is None:
            raise ValidationFailed.one("id", "this trigger has no agent to change")
        agent = await service.update_agent(
            uow.session,
            ctx.principal,
            ctx.box,
            trigger.agent_id,
            name=name,
            options=options,
            disabled=None if active is None else not active,
        )
        return await _trigger_of_agent(uow.session, agent.id)


async def delete_trigger(ctx: Context, ident: uuid.UUID | int) -> Trigger:
    async with unit_of_work(ctx.runtime) as uow:
        trigger = await get_visible(
            uow.session, ctx.principal, Trigger, ident, "workflow:write", "Trigger"
        )
        if trigger.agent_id is not None:
            await service.delete_agent(uow.session, ctx.principal, trigger.agent_id)
        else:
            await uow.session.delete(trigger)
        return trigger
