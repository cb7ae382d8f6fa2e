"""Executing, cancelling and retrying processes; execution tokens."""

from __future__ import annotations

import uuid
from typing import Any

from flowql.models import AuditAction, Process
from flowql.resolvers.context import Context
from flowql.services import audit
from flowql.services import auth as auth_service
from flowql.services import processes as service
from flowql.services.auth import TokenPair
from flowql.services.uow import unit_of_work
from flowql.services.waiting import wait_for_process

MAX_WAIT = 300.0


async def execute_workflow(
    ctx: Context,
    workflow_id: uuid.UUID | int,
    input: dict[str, Any] | None,
    idempotency_key: str | None,
    wait: bool,
    wait_timeout: float,
    trigger_id: uuid.UUID | None = None,
) -> Process:
    async with unit_of_work(ctx.runtime) as uow:
        process, _ = await service.execute_workflow(
            uow, ctx.runtime, ctx.principal, workflow_id, input, idempotency_key, trigger_id
        )
    if wait:
        return await wait_for_process(
            ctx.runtime, process.id, timeout=max(0.0, min(wait_timeout, MAX_WAIT))
        )
    return process


async def cancel_process(ctx: Context, ident: uuid.UUID | int) -> Process:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.cancel_process(uow, ctx.runtime, ctx.principal, ident)


async def retry_process(ctx: Context, ident: uuid.UUID | int) -> Process:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.retry_process(uow, ctx.runtime, ctx.principal, ident)


async def issue_execution_token(ctx: Context, ident: uuid.UUID | int) -> TokenPair:
    async with unit_of_work(ctx.runtime) as uow:
        process = await service.get_process(uow.session, ctx.principal, ident, "process:read")
        ctx.principal.require(process.workspace_id, "process:run", "Process")
        audit.record(uow.session, ctx.principal, AuditAction.ISSUE, process, kind="execution")
        return await auth_service.issue_execution_tokens(
            uow.session,
            ctx.settings,
            process,
            issuer_privileges=ctx.principal.grants[process.workspace_id],
        )


async def respond_to_http_trigger(
    ctx: Context, ident: uuid.UUID | int, status: int, headers: dict[str, Any] | None, body: Any
) -> Process:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.respond_to_http_trigger(
            uow, ctx.principal, ident, status, headers, body
        )


async def refresh_execution_token(ctx: Context, refresh_token: str) -> TokenPair:
    return await auth_service.refresh_execution(ctx.db, ctx.settings, refresh_token)
