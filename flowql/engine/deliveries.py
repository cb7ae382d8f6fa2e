"""Sends the outbox: signed POSTs to webhook subscribers, retried with backoff, DEAD after N tries.

Signature: `X-Flowql-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
Receivers dedupe on `X-Flowql-Delivery` (delivery is at-least-once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

import httpx
from sqlmodel import col, select, update

from flowql.errors import ValidationFailed
from flowql.models import DeliveryStatus, WebhookDelivery, WebhookSubscription, utcnow
from flowql.services.netguard import check_public_url
from flowql.services.runtime import Runtime

logger = logging.getLogger("flowql.deliveries")
LEASE = timedelta(seconds=60)
BATCH = 50


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """What a receiver does: recompute the HMAC and check the timestamp is fresh."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


async def deliver_due(runtime: Runtime, http: httpx.AsyncClient) -> int:
    """Claim due deliveries (a lease, so several workers never send the same one at once), send."""
    now = utcnow()
    async with runtime.db.transaction() as session:
        due = (
            await session.exec(
                select(WebhookDelivery)
                .where(
                    col(WebhookDelivery.status).in_([DeliveryStatus.PENDING, DeliveryStatus.FAILED])
                )
                .where(col(WebhookDelivery.next_attempt_at) <= now)
                .order_by(col(WebhookDelivery.number))
                .limit(BATCH)
            )
        ).all()
        claimed = []
        for delivery in due:
            result = await session.exec(
                update(WebhookDelivery)
                .where(col(WebhookDelivery.id) == delivery.id)
                .where(col(WebhookDelivery.next_attempt_at) == delivery.next_attempt_at)
                .values(next_attempt_at=now + LEASE)
            )
            if result.rowcount == 1:
                claimed.append(delivery)
    for delivery in claimed:
        await _send(runtime, http, delivery)
    return len(claimed)


async def _send(runtime: Runtime, http: httpx.AsyncClient, delivery: WebhookDelivery) -> None:
    async with runtime.db.read() as session:
        subscription = (
            await session.exec(
                select(WebhookSubscription).where(
                    WebhookSubscription.id == delivery.subscription_id
                )
            )
        ).first()
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    status_code: int | None = None
    response_text: str | None = None
    error: str | None = None
    if subscription is None or not subscription.active:
        error = "subscription deleted or inactive"
    else:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "flowql-webhooks/1",
            "X-Flowql-Event": delivery.event_type,
            "X-Flowql-Delivery": str(delivery.id),
        }
        if subscription.secret_encrypted:
            secret = runtime.box.decrypt(subscription.secret_encrypted)
            headers["X-Flowql-Signature"] = sign(secret, int(time.time()), body)
        try:
            await check_public_url(subscription.url, runtime.settings.allow_private_networks)
            response = await http.post(subscription.url, content=body, headers=headers, timeout=15)
            status_code = response.status_code
            response_text = response.text[:2000]
            if not 200 <= status_code < 300:
                error = f"answered {status_code}"
        except ValidationFailed as exc:
            error = exc.message
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
    attempts = delivery.attempts + 1
    values: dict[str, object] = {
        "attempts": attempts,
        "last_status_code": status_code,
        "last_response": response_text,
        "last_error": error,
    }
    if error is None:
        values.update(status=DeliveryStatus.DELIVERED, delivered_at=utcnow(), next_attempt_at=None)
    elif attempts >= runtime.settings.webhook_max_attempts:
        values.update(status=DeliveryStatus.DEAD, next_attempt_at=None)
    else:
        backoff = runtime.settings.webhook_backoff_seconds * 2 ** (attempts - 1)
        values.update(
            status=DeliveryStatus.FAILED,
            next_attempt_at=utcnow() + timedelta(seconds=min(backoff, 3600)),
        )
    async with runtime.db.transaction() as session:
        await session.exec(
            update(WebhookDelivery).where(col(WebhookDelivery.id) == delivery.id).values(**values)
        )
