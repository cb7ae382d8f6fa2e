"""Outgoing webhook subscriptions and reading their deliveries. (Sending them is the engine's.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal
from flowql.auth.secrets_box import SecretBox
from flowql.errors import ValidationFailed
from flowql.models import AuditAction, DeliveryStatus, WebhookDelivery, WebhookSubscription
from flowql.services import audit
from flowql.services.common import apply_common_filters, check_length, get_visible, visible
from flowql.services.netguard import check_url_shape, is_public_address, parse_address

ALL_EVENTS = "*"
EVENTS = (
    "process.started",
    "process.completed",
    "process.failed",
    "workflow.executed",
    "form.submitted",
    "message.created",
)
MAX_SECRET_LENGTH = 500


@dataclass
class SubscriptionFilter:
    workspace_id: uuid.UUID | None = None
    active: bool | None = None
    search: str | None = field(default=None, metadata={"description": "Part of the URL."})


@dataclass
class DeliveryFilter:
    workspace_id: uuid.UUID | None = None
    subscription_id: uuid.UUID | None = None
    status: DeliveryStatus | None = None


def list_statement(
    principal: Principal, filters: SubscriptionFilter
) -> SelectOfScalar[WebhookSubscription]:
    stmt = visible(principal, WebhookSubscription, "webhook:read", filters.workspace_id)
    if filters.active is not None:
        stmt = stmt.where(col(WebhookSubscription.active) == filters.active)
    return apply_common_filters(
        stmt, WebhookSubscription, search=filters.search, search_column="url"
    )


def deliveries_statement(
    principal: Principal, filters: DeliveryFilter
) -> SelectOfScalar[WebhookDelivery]:
    stmt = visible(principal, WebhookDelivery, "webhook:read", filters.workspace_id)
    if filters.subscription_id is not None:
        stmt = stmt.where(col(WebhookDelivery.subscription_id) == filters.subscription_id)
    if filters.status is not None:
        stmt = stmt.where(col(WebhookDelivery.status) == filters.status)
    return stmt


async def get_subscription(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    privilege: str = "webhook:read",
) -> WebhookSubscription:
    return await get_visible(
        session, principal, WebhookSubscription, ident, privilege, "WebhookSubscription"
    )


def check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e != ALL_EVENTS and e not in EVENTS]
    if unknown:
        raise ValidationFailed.one(
            "events",
            f"unknown events: {', '.join(unknown)}; known: {', '.join(EVENTS)} or {ALL_EVENTS}",
        )
    if not events:
        raise ValidationFailed.one("events", "name at least one event")
    return [ALL_EVENTS] if ALL_EVENTS in events else list(dict.fromkeys(events))


def check_url(url: str, allow_private: bool) -> str:
    """http(s) with a host; a literal private address is refused now, names when delivering."""
    parts = check_url_shape(url, "url")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed.one("url", "must not carry credentials; sign with a secret instead")
    address = parse_address(parts.hostname or "")
    if not allow_private and address is not None and not is_public_address(address):
        raise ValidationFailed.one("url", "must not point at a private network address")
    return url.strip()


def _seal_secret(box: SecretBox, secret: str) -> str:
    if not secret:
        raise ValidationFailed.one("secret", "must not be empty (leave it out for no secret)")
    check_length(secret, "secret", MAX_SECRET_LENGTH)
    return box.encrypt(secret)


async def create_subscription(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    *,
    allow_private: bool,
    workspace_id: uuid.UUID | None,
    url: str,
    events: list[str],
    secret: str | None = None,
    active: bool = True,
    description: str = "",
) -> WebhookSubscription:
    workspace_id = workspace_id or principal.default_workspace("webhook:write")
    principal.require(workspace_id, "webhook:write", "Workspace")
    check_length(description, "description", 1000)
    subscription = WebhookSubscription(
        workspace_id=workspace_id,
        url=check_url(url, allow_private),
        events=check_events(events),
        secret_encrypted=None if secret is None else _seal_secret(box, secret),
        active=active,
        description=description or "",
    )
    session.add(subscription)
    await session.flush()
    # Not the URL: a receiver's URL may carry its own token.
    audit.record(session, principal, AuditAction.CREATE, subscription, events=subscription.events)
    return subscription


async def update_subscription(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    ident: uuid.UUID | int,
    *,
    allow_private: bool,
    url: str | None = None,
    events: list[str] | None = None,
    secret: str | None = None,
    clear_secret: bool = False,
    active: bool | None = None,
    description: str | None = None,
) -> WebhookSubscription:
    subscription = await get_subscription(session, principal, ident, "webhook:write")
    if secret is not None and clear_secret:
        raise ValidationFailed.one("clearSecret", "cannot both set and clear the secret")
    check_length(description, "description", 1000)
    new_url = None if url is None else check_url(url, allow_private)
    new_events = None if events is None else check_events(events)
    sealed = None if secret is None else _seal_secret(box, secret)
    if new_url is not None:
        subscription.url = new_url
    if new_events is not None:
        subscription.events = new_events
    if sealed is not None:
        subscription.secret_encrypted = sealed
    elif clear_secret:
        subscription.secret_encrypted = None
    if active is not None:
        subscription.active = active
    if description is not None:
        subscription.description = description
    session.add(subscription)
    await session.flush()
    fields = audit.given(url=url, events=events, secret=secret, clear_secret=clear_secret or None, active=active, description=description)  # fmt: skip
    audit.record(session, principal, AuditAction.UPDATE, subscription, fields=fields)
    return subscription


async def delete_subscription(
    session: AsyncSession, principal: Principal, ident: uuid.UUID | int
) -> WebhookSubscription:
    subscription = await get_subscription(session, principal, ident, "webhook:write")
    await session.delete(subscription)
    await session.flush()
    audit.record(session, principal, AuditAction.DELETE, subscription)
    return subscription
