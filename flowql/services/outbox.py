"""The transactional outbox of outgoing webhooks: a delivery row per subscriber, written in the
same transaction as the event it announces; engine/deliveries.py sends them."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select
from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.models import WebhookDelivery, WebhookSubscription, utcnow
from flowql.services.webhooks import ALL_EVENTS


def deliveries(
    subscriptions: list[tuple[uuid.UUID, list[str]]],
    workspace_id: uuid.UUID,
    event_type: str,
    data: dict[str, Any],
) -> list[WebhookDelivery]:
    """The delivery rows of one event for the workspace's active (id, events) subscriptions."""
    now = utcnow()
    rows = []
    for subscription_id, events in subscriptions:
        if event_type not in events and ALL_EVENTS not in events:
            continue
        event_id = uuid.uuid4()
        rows.append(
            WebhookDelivery(
                workspace_id=workspace_id,
                subscription_id=subscription_id,
                event_type=event_type,
                event_id=event_id,
                payload={
                    "id": str(event_id),
                    "type": event_type,
                    "created_at": now.isoformat(),
                    "workspace_id": str(workspace_id),
                    "data": data,
                },
                next_attempt_at=now,
            )
        )
    return rows


def subscriptions_query(workspace_id: uuid.UUID) -> Select[uuid.UUID, list[str]]:
    """(id, events) of the workspace's active subscriptions."""
    return (
        sa_select(col(WebhookSubscription.id), col(WebhookSubscription.events))
        .where(col(WebhookSubscription.workspace_id) == workspace_id)
        .where(col(WebhookSubscription.active).is_(True))
    )


async def enqueue(
    session: AsyncSession, workspace_id: uuid.UUID, event_type: str, data: dict[str, Any]
) -> int:
    """Queue `event_type` for every active subscription of the workspace that wants it."""
    found = (await session.execute(subscriptions_query(workspace_id))).all()
    subscriptions = [(row[0], list(row[1])) for row in found]
    queued = deliveries(subscriptions, workspace_id, event_type, data)
    session.add_all(queued)
    return len(queued)
