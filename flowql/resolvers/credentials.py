"""Credential resolvers."""

from __future__ import annotations

import uuid
from typing import Any

from flowql.models import Credential
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs, paginate
from flowql.services import credentials as service
from flowql.services.credentials import CredentialFilter
from flowql.services.uow import unit_of_work


async def list_credentials(
    ctx: Context, filters: CredentialFilter, page: PageArgs
) -> Page[Credential]:
    stmt = service.list_statement(ctx.principal, filters)
    async with ctx.db.read() as session:
        return await paginate(session, Credential, stmt, page)


async def credential(ctx: Context, ident: uuid.UUID | int) -> Credential:
    async with ctx.db.read() as session:
        return await service.get_credential(session, ctx.principal, ident)


async def create_credential(ctx: Context, **fields: Any) -> Credential:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.create_credential(uow.session, ctx.principal, ctx.box, **fields)


async def update_credential(ctx: Context, ident: uuid.UUID | int, **fields: Any) -> Credential:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.update_credential(uow.session, ctx.principal, ctx.box, ident, **fields)


async def delete_credential(ctx: Context, ident: uuid.UUID | int) -> Credential:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.delete_credential(uow.session, ctx.principal, ident)


async def set_workflow_secret(
    ctx: Context, workflow_id: uuid.UUID | int, key: str, value: str
) -> Credential:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.set_workflow_secret(
            uow.session, ctx.principal, ctx.box, workflow_id, key, value
        )
