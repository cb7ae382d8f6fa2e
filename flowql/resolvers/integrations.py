"""Integration resolvers."""

from __future__ import annotations

import uuid
from typing import Any

from flowql.auth.principal import PrincipalKind
from flowql.models import Integration
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs, paginate
from flowql.services import integrations as service
from flowql.services.integrations import IntegrationFilter
from flowql.services.uow import unit_of_work


async def list_integrations(
    ctx: Context, filters: IntegrationFilter, page: PageArgs
) -> Page[Integration]:
    stmt = service.list_statement(ctx.principal, filters)
    async with ctx.db.read() as session:
        return await paginate(session, Integration, stmt, page)


async def integration(ctx: Context, ident: uuid.UUID | int) -> Integration:
    async with ctx.db.read() as session:
        return await service.get_integration(session, ctx.principal, ident)


async def create_integration(ctx: Context, **fields: Any) -> Integration:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.create_integration(uow.session, ctx.principal, ctx.box, **fields)


async def update_integration(ctx: Context, ident: uuid.UUID | int, **fields: Any) -> Integration:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.update_integration(
            uow.session, ctx.principal, ctx.box, ident, **fields
        )


async def delete_integration(ctx: Context, ident: uuid.UUID | int) -> Integration:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.delete_integration(uow.session, ctx.principal, ident)


async def test_integration(ctx: Context, ident: uuid.UUID | int) -> Integration:
    """Three steps so no transaction stays open while the test waits on the network."""
    async with ctx.db.read() as session:
        row = await service.get_integration(session, ctx.principal, ident, "integration:write")
    result = await service.run_test(row, ctx.box, ctx.settings.allow_private_networks)
    async with unit_of_work(ctx.runtime) as uow:
        return await service.record_test(uow.session, ctx.principal, row.id, result)


async def credentials_for_process(ctx: Context, ident: uuid.UUID) -> dict[str, Any] | None:
    """Decrypted credentials for the caller's own running process; None for anyone else."""
    if ctx.principal.kind is not PrincipalKind.EXECUTION:
        return None
    async with ctx.db.read() as session:
        return await service.integration_credentials_for_process(
            session, ctx.principal, ctx.box, ident
        )
