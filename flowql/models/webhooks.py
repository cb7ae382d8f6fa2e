"""Outgoing webhook subscriptions and their deliveries (the transactional outbox)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Field

from flowql.models.base import WorkspaceRow, json_field, time_field


class WebhookSubscription(WorkspaceRow, table=True):
    __tablename__ = "webhook_subscriptions"
    __table_args__ = {"sqlite_autoincrement": True}

    url: str = Field(max_length=2000)
    events: list[str] = json_field(list)
    secret_encrypted: str | None = Field(default=None)
    active: bool = True
    description: str = Field(default="", max_length=1000)


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    DEAD = "DEAD"


class WebhookDelivery(WorkspaceRow, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = {"sqlite_autoincrement": True}

    subscription_id: uuid.UUID = Field(
        foreign_key="webhook_subscriptions.id", index=True, ondelete="CASCADE"
    )
    event_type: str = Field(max_length=100)
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, index=True)
    payload: dict[str, Any] = json_field()
    status: DeliveryStatus = Field(default=DeliveryStatus.PENDING, max_length=20, index=True)
    attempts: int = 0
    next_attempt_at: datetime | None = time_field(index=True)
    last_status_code: int | None = None
    last_response: str | None = Field(default=None, max_length=2000)
    last_error: str | None = Field(default=None, max_length=2000)
    delivered_at: datetime | None = time_field()
