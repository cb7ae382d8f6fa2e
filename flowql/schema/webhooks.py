"""Outgoing webhook subscriptions and their deliveries. The signing secret is write-only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry

from flowql import models
from flowql.resolvers import webhooks as resolve
from flowql.schema.base import JSON, Connection, FromRow, Info, ident, page_args
from flowql.schema.filters import FilterInput, filter_input
from flowql.services.webhooks import ALL_EVENTS, EVENTS, DeliveryFilter, SubscriptionFilter

strawberry.enum(models.DeliveryStatus, name="DeliveryStatus")
DeliveryStatus = models.DeliveryStatus

EVENTS_HELP = f"Any of: {', '.join(EVENTS)}; or {ALL_EVENTS} for all."


@strawberry.type
class WebhookDelivery(FromRow):
    id: uuid.UUID
    number: int
    subscription_id: uuid.UUID
    event_type: str
    event_id: uuid.UUID
    payload: JSON
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_response: str | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


@strawberry.type(description="An outgoing webhook. Its signing secret is write-only.")
class WebhookSubscription(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    url: str
    events: list[str]
    active: bool
    description: str
    created_at: datetime
    has_secret: bool

    @classmethod
    def from_row(cls, row: Any) -> WebhookSubscription:
        return cls(
            id=row.id,
            number=row.number or 0,
            workspace_id=row.workspace_id,
            url=row.url,
            events=list(row.events),
            active=row.active,
            description=row.description,
            created_at=row.created_at,
            has_secret=row.secret_encrypted is not None,
        )

    @strawberry.field(description="Deliveries to this subscription, newest first.")
    async def deliveries(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[WebhookDelivery]:
        filters = DeliveryFilter(workspace_id=self.workspace_id, subscription_id=self.id)
        page = await resolve.list_deliveries(info.context, filters, page_args(first, after))
        return Connection.of(page, WebhookDelivery.from_row)


# -- inputs ------------------------------------------------------------------------------------


@filter_input(SubscriptionFilter)
class WebhookSubscriptionFilterInput(FilterInput[SubscriptionFilter]):
    pass


@filter_input(DeliveryFilter)
class WebhookDeliveryFilterInput(FilterInput[DeliveryFilter]):
    pass


@strawberry.input
class CreateWebhookSubscriptionInput:
    url: str
    events: list[str] = strawberry.field(description=EVENTS_HELP)
    workspace_id: uuid.UUID | None = None
    secret: str | None = strawberry.field(
        default=None, description="Signs each delivery; write-only, stored encrypted."
    )
    active: bool = True
    description: str = ""


@strawberry.input
class UpdateWebhookSubscriptionInput:
    url: str | None = None
    events: list[str] | None = strawberry.field(default=None, description=EVENTS_HELP)
    secret: str | None = strawberry.field(default=None, description="Replaces the secret.")
    clear_secret: bool = False
    active: bool | None = None
    description: str | None = None


@strawberry.type
class Query:
    @strawberry.field
    async def webhook_subscriptions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
        filter: WebhookSubscriptionFilterInput | None = None,
    ) -> Connection[WebhookSubscription]:
        filters = (filter or WebhookSubscriptionFilterInput()).to_filter()
        page = await resolve.list_subscriptions(
            info.context, filters, page_args(first, after, offset)
        )
        return Connection.of(page, WebhookSubscription.from_row)

    @strawberry.field
    async def webhook_subscription(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> WebhookSubscription:
        row = await resolve.subscription(info.context, ident(id, number))
        return WebhookSubscription.from_row(row)

    @strawberry.field
    async def webhook_deliveries(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
        filter: WebhookDeliveryFilterInput | None = None,
    ) -> Connection[WebhookDelivery]:
        filters = (filter or WebhookDeliveryFilterInput()).to_filter()
        page = await resolve.list_deliveries(info.context, filters, page_args(first, after, offset))
        return Connection.of(page, WebhookDelivery.from_row)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_webhook_subscription(
        self, info: Info, input: CreateWebhookSubscriptionInput
    ) -> WebhookSubscription:
        row = await resolve.create_subscription(
            info.context,
            workspace_id=input.workspace_id,
            url=input.url,
            events=list(input.events),
            secret=input.secret,
            active=input.active,
            description=input.description,
        )
        return WebhookSubscription.from_row(row)

    @strawberry.mutation
    async def update_webhook_subscription(
        self,
        info: Info,
        id: uuid.UUID | None = None,
        number: int | None = None,
        *,
        input: UpdateWebhookSubscriptionInput,
    ) -> WebhookSubscription:
        row = await resolve.update_subscription(
            info.context,
            ident(id, number),
            url=input.url,
            events=None if input.events is None else list(input.events),
            secret=input.secret,
            clear_secret=input.clear_secret,
            active=input.active,
            description=input.description,
        )
        return WebhookSubscription.from_row(row)

    @strawberry.mutation
    async def delete_webhook_subscription(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> WebhookSubscription:
        return WebhookSubscription.from_row(
            await resolve.delete_subscription(info.context, ident(id, number))
        )
