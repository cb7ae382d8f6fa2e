"""Form and submission resolvers."""

from __future__ import annotations

import uuid
from typing import Any

from flowql.models import Form, FormSubmission
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs, paginate
from flowql.services import forms as service
from flowql.services.forms import FormFilter
from flowql.services.uow import unit_of_work


async def list_forms(ctx: Context, filters: FormFilter, page: PageArgs) -> Page[Form]:
    stmt = service.list_statement(ctx.principal, filters)
    async with ctx.db.read() as session:
        return await paginate(session, Form, stmt, page)


async def form(ctx: Context, ident: uuid.UUID | int) -> Form:
    async with ctx.db.read() as session:
        return await service.get_form(session, ctx.principal, ident)


async def list_submissions(
    ctx: Context, form_id: uuid.UUID, page: PageArgs
) -> Page[FormSubmission]:
    stmt = service.submissions_statement(ctx.principal, form_id)
    async with ctx.db.read() as session:
        return await paginate(session, FormSubmission, stmt, page)


async def create_form(ctx: Context, **fields: Any) -> Form:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.create_form(uow.session, ctx.principal, **fields)


async def update_form(ctx: Context, ident: uuid.UUID | int, **fields: Any) -> Form:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.update_form(uow.session, ctx.principal, ident, **fields)


async def delete_form(ctx: Context, ident: uuid.UUID | int) -> Form:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.delete_form(uow.session, ctx.principal, ident)


async def submit_form(ctx: Context, form_id: uuid.UUID | int, data: Any) -> FormSubmission:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.submit_form(uow, ctx.runtime, ctx.principal, form_id, data)
