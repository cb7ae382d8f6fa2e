"""Event bus interface and the in-memory implementation (the embedded default).

Events are published after their transaction commits. Every event names its workspace, so a
subscriber is handed only events of workspaces it may read (filtering happens server-side).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from flowql.models import utcnow

logger = logging.getLogger("flowql.events")


@dataclass(frozen=True)
class BusEvent:
    topic: str  # e.g. "process.updated", "process.log", "message.created"
    workspace_id: uuid.UUID
    data: dict[str, Any]
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    at: str = field(default_factory=lambda: utcnow().isoformat())


class SubscriberDropped(Exception):
    """The subscriber fell too far behind and was dropped."""


class Subscription:
    def __init__(self, accept: Callable[[BusEvent], bool], maxsize: int) -> None:
        self.accept = accept
        self.queue: asyncio.Queue[BusEvent | None] = asyncio.Queue(maxsize=maxsize)
        self.dropped = False
        self._drop_callbacks: list[Callable[[], None]] = []

    def on_drop(self, callback: Callable[[], None]) -> None:
        """Call `callback` (synchronously, from the publisher) when this subscriber is dropped.

        A reader stuck downstream (a client that stopped reading its socket) never comes back to
        the queue to see the drop; this lets its owner act on it (close the connection) at once.
        """
        self._drop_callbacks.append(callback)

    def offer(self, event: BusEvent) -> None:
        if self.dropped or not self.accept(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            # Make room for the end-of-feed marker so the reader wakes up and sees the drop.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            for callback in self._drop_callbacks:
                try:
                    callback()
                except Exception:  # one subscriber's hook must not break publishing
                    logger.exception("subscriber drop callback failed")

    async def __aiter__(self) -> AsyncIterator[BusEvent]:
        while True:
            event = await self.queue.get()
            if event is None:
                if self.dropped:
                    raise SubscriberDropped("subscriber fell too far behind and was dropped")
                return
            yield event


class Bus(Protocol):
    async def publish(self, events: list[BusEvent]) -> None: ...

    def subscribe(
        self, accept: Callable[[BusEvent], bool], maxsize: int = 1000
    ) -> Any: ...  # an async context manager yielding a Subscription


class MemoryBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()

    async def publish(self, events: list[BusEvent]) -> None:
        for event in events:
            for subscription in list(self._subscriptions):
                subscription.offer(event)

    @asynccontextmanager
    async def subscribe(
        self, accept: Callable[[BusEvent], bool], maxsize: int = 1000
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(accept, maxsize)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)
