"""Outgoing webhook subscription and delivery resolvers."""

from __future__ import annotations

import uuid
from typing import Any

from flowql.models import WebhookDelivery, WebhookSubscription
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs, paginate
from flowql.services import webhooks as service
from flowql.services.uow import unit_of_work
from flowql.services.webhooks import DeliveryFilter, SubscriptionFilter


async def list_subscriptions(
    ctx: Context, filters: SubscriptionFilter, page: PageArgs
) -> Page[WebhookSubscription]:
    stmt = service.list_statement(ctx.principal, filters)
    async with ctx.db.read() as session:
        return await paginate(session, WebhookSubscription, stmt, page)


async def subscription(ctx: Context, ident: uuid.UUID | int) -> WebhookSubscription:
    async with ctx.db.read() as session:
        return await service.get_subscription(session, ctx.principal, ident)


async def list_deliveries(
    ctx: Context, filters: DeliveryFilter, page: PageArgs
) -> Page[WebhookDelivery]:
    stmt = service.deliveries_statement(ctx.principal, filters)
    async with ctx.db.read() as session:
        return await paginate(session, WebhookDelivery, stmt, page)


async def create_subscription(ctx: Context, **fields: Any) -> WebhookSubscription:
    allow_private = ctx.settings.allow_private_networks
    async with unit_of_work(ctx.runtime) as uow:
        return await service.create_subscription(
            uow.session, ctx.principal, ctx.box, allow_private=allow_private, **fields
        )


async def update_subscription(
    ctx: Context, ident: uuid.UUID | int, **fields: Any
) -> WebhookSubscription:
    allow_private = ctx.settings.allow_private_networks
    async with unit_of_work(ctx.runtime) as uow:
        return await service.update_subscription(
            uow.session, ctx.principal, ctx.box, ident, allow_private=allow_private, **fields
        )


async def delete_subscription(ctx: Context, ident: uuid.UUID | int) -> WebhookSubscription:
    async with unit_of_work(ctx.runtime) as uow:
        return await service.delete_subscription(uow.session, ctx.principal, ident)
