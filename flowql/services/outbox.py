"""The transactional outbox of outgoing webhooks: a delivery row per subscriber, written in the
same transaction as the event it announces; engine/deliveries.py sends them."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.models import WebhookDelivery, WebhookSubscription, utcnow
from flowql.services.webhooks import ALL_EVENTS


async def enqueue(
    session: AsyncSession, workspace_id: uuid.UUID, event_type: str, data: dict[str, Any]
) -> int:
    """Queue `event_type` for every active subscription of the workspace that wants it."""
    stmt = (
        select(WebhookSubscription)
        .where(WebhookSubscription.workspace_id == workspace_id)
        .where(col(WebhookSubscription.active).is_(True))
    )
    subscriptions = [
        s
        for s in (await session.exec(stmt)).all()
        if event_type in s.events or ALL_EVENTS in s.events
    ]
    now = utcnow()
    for subscription in subscriptions:
        event_id = uuid.uuid4()
        session.add(
            WebhookDelivery(
                workspace_id=workspace_id,
                subscription_id=subscription.id,
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
    return len(subscriptions)
