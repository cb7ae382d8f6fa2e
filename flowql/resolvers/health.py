"""Health and activity resolvers: arguments in, service call, rows out."""

from __future__ import annotations

import uuid

from flowql.resolvers.context import Context
from flowql.services import health as service
from flowql.services.runtime import NullDispatcher


async def health(ctx: Context, workspace_id: uuid.UUID) -> service.Health:
    inline_running = not isinstance(ctx.runtime.dispatcher, NullDispatcher)
    async with ctx.db.read() as session:
        return await service.health(
            session, ctx.principal, ctx.settings, workspace_id, inline_running
        )


async def workflow_activity(
    ctx: Context, workflow_id: uuid.UUID, hours: int
) -> list[service.HourCount]:
    async with ctx.db.read() as session:
        return await service.workflow_activity(session, ctx.principal, workflow_id, hours)
