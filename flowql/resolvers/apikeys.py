"""API key resolvers: arguments in, service call, rows out."""

from __future__ import annotations

import uuid

from flowql.models import ApiKey
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs, paginate
from flowql.services import apikeys as service
from flowql.services.apikeys import ApiKeyFilter, ApiKeySpec
from flowql.services.auth import IssuedApiKey
from flowql.services.uow import unit_of_work


async def list_api_keys(ctx: Context, filters: ApiKeyFilter, page: PageArgs) -> Page[ApiKey]:
    stmt = service.list_statement(ctx.principal, filters)
    async with ctx.db.read() as session:
        return await paginate(session, ApiKey, stmt, page)


async def api_key(ctx: Context, ident: uuid.UUID | int) -> ApiKey:
    async with ctx.db.read() as session:
        return await service.get_api_key(session, ctx.principal, ident)


async def create_api_key(ctx: Context, spec: ApiKeySpec) -> IssuedApiKey:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.issue_api_key(uow.session, ctx.principal, spec)


async def revoke_api_key(ctx: Context, ident: uuid.UUID | int) -> ApiKey:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.revoke_api_key(uow.session, ctx.principal, ident)
