"""Event bus interface and the in-memory implementation (the embedded default).

Events are published after their transaction commits. Every event names its workspace, so a
subscriber is handed only events of workspaces it may read (filtering happens server-side).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from flowql.models import utcnow

logger = logging.getLogger("flowql.events")

T = TypeVar("T")


@dataclass(frozen=True)
class BusEvent:
    topic: str  # e.g. "process.updated", "process.log", "message.created"
    workspace_id: uuid.UUID
    data: dict[str, Any]
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    at: str = field(default_factory=lambda: utcnow().isoformat())


class SubscriberDropped(Exception):
    """The subscriber fell too far behind and was dropped."""


# How often a subscriber over its bound is checked for progress (see Subscription).
STALL_CHECK_SECONDS = 1.0


class Backlog(Generic[T]):
    """A subscriber's queue, bounded by what it cannot keep up with.

    One commit may publish many events at once (a process's local steps run back to back and
    publish after one commit), so the bound `maxsize` is not a cap on a single burst: a burst
    is queued whole. A subscriber whose backlog is above `maxsize` is checked every
    STALL_CHECK_SECONDS and dropped if, since the last check, it took no item (it is stuck), or
    if its backlog grew over two checks in a row (it is slower than what is published). One that
    drains the burst is kept.

    This one holds the frames a feed group writes to one of its members
    (flowql.schema.subscriptions): a deque and one waiter, and `put(..., wake=False)` lets the
    group queue a burst's frames before waking the member once for all of them. `Subscription`
    (a feed's bus events) keeps an asyncio.Queue, which its other readers await directly.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: deque[T | None] = deque()
        self.dropped = False
        self._waiter: asyncio.Future[None] | None = None
        self._drop_callbacks: list[Callable[[], None]] = []
        self._offered = 0  # items queued so far; taken = offered - backlog
        self._check: asyncio.TimerHandle | None = None
        self._last: tuple[int, int] = (0, 0)  # (taken, backlog) at the last check
        self._grew = False  # the backlog grew between the last two checks

    # Storage (Subscription keeps its own).
    def _size(self) -> int:
        return len(self.items)

    def _append(self, item: T | None) -> None:
        self.items.append(item)

    def _clear(self) -> None:
        self.items.clear()

    def wake(self) -> None:
        """Wake the reader if it waits for items."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    @property
    def offered(self) -> int:
        """Items queued so far."""
        return self._offered

    @property
    def taken(self) -> int:
        """Items the reader has taken so far (the number of the one it is handling)."""
        return self._offered - self._size()

    def on_drop(self, callback: Callable[[], None]) -> None:
        """Call `callback` (synchronously, from the publisher) when this subscriber is dropped.

        A reader stuck downstream (a client that stopped reading its socket) never comes back to
        the queue to see the drop; this lets its owner act on it (close the connection) at once.
        """
        self._drop_callbacks.append(callback)

    def put(self, item: T, wake: bool = True) -> None:
        if self.dropped:
            return
        self._append(item)
        self._offered += 1
        if wake:
            self.wake()
        if self._check is None and self._size() > self.maxsize:
            self._last = (self._offered - self._size(), self._size())
            self._grew = False
            self._check = asyncio.get_running_loop().call_later(STALL_CHECK_SECONDS, self._review)

    def _review(self) -> None:
        self._check = None
        if self.dropped:
            return
        backlog = self._size()
        if backlog <= self.maxsize:
            return
        taken = self._offered - backlog
        last_taken, last_backlog = self._last
        grew = backlog > last_backlog
        # Stuck (took nothing), or slower than what is published: its backlog grew over two
        # checks in a row (one growth is a second burst arriving while it drains the first).
        if taken == last_taken or (grew and self._grew):
            self.drop()
            return
        self._grew = grew
        self._last = (taken, backlog)
        self._check = asyncio.get_running_loop().call_later(STALL_CHECK_SECONDS, self._review)

    def drop(self) -> None:
        if self.dropped:
            return
        self.dropped = True
        # Empty the queue, then add the end-of-feed marker so the reader wakes up and sees
        # the drop.
        self._clear()
        self._append(None)
        self.wake()
        for callback in self._drop_callbacks:
            try:
                callback()
            except Exception:  # one subscriber's hook must not break publishing
                logger.exception("subscriber drop callback failed")

    def end(self) -> None:
        """No more items: the reader stops once it has taken those queued."""
        if not self.dropped:
            self._append(None)
            self.wake()

    def close(self) -> None:
        """The subscriber left: no more checks."""
        if self._check is not None:
            self._check.cancel()
            self._check = None

    async def __aiter__(self) -> AsyncIterator[T]:
        items = self.items
        while True:
            while not items:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
            item = items.popleft()
            if item is None:
                if self.dropped:
                    raise SubscriberDropped("subscriber fell too far behind and was dropped")
                return
            yield item


class Subscription(Backlog[BusEvent]):
    """A feed's queue of the bus events its `accept` filter lets through (see Backlog), an
    asyncio.Queue (flowql.services.waiting awaits it directly).

    `counted`: whether `FanOut.subscriber_count` counts it (a feed group's subscription is not:
    its members are, see `FanOut.member`)."""

    def __init__(self, accept: Callable[[BusEvent], bool], maxsize: int) -> None:
        super().__init__(maxsize)
        self.accept = accept
        self.counted = True
        self.queue: asyncio.Queue[BusEvent | None] = asyncio.Queue()

    def _size(self) -> int:
        return self.queue.qsize()

    def _append(self, item: BusEvent | None) -> None:
        self.queue.put_nowait(item)

    def _clear(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    def wake(self) -> None:
        pass  # the queue wakes its reader

    def offer(self, event: BusEvent) -> None:
        if not self.dropped and self.accept(event):
            self.put(event)

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

    def member(self, backlog: Backlog[Any]) -> None: ...

    def leave(self, backlog: Backlog[Any]) -> None: ...


class FanOut:
    """This process's subscribers and the one way events reach them: each event is offered to
    every subscription (its `accept` filter and bounded queue decide). The memory bus hands its
    published events straight to it; the PostgreSQL bus hands it what its LISTEN receives."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._members: set[Backlog[Any]] = set()

    def deliver(self, event: BusEvent) -> None:
        for subscription in list(self._subscriptions):
            subscription.offer(event)

    def deliver_to_all(self, event: BusEvent) -> None:
        """Past every subscriber's filter (which knows nothing of bus-level events such as
        gaps), with the same bounded-queue behaviour as any event: a full queue drops it."""
        for subscription in list(self._subscriptions):
            accept = subscription.accept
            subscription.accept = lambda _event: True
            try:
                subscription.offer(event)
            finally:
                subscription.accept = accept

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
            subscription.close()

    def member(self, backlog: Backlog[Any]) -> None:
        """Count `backlog` as a subscriber: a member of a feed group, which shares one
        (uncounted) subscription with the group's other members (flowql.schema.subscriptions).
        Counted until `leave`."""
        self._members.add(backlog)

    def leave(self, backlog: Backlog[Any]) -> None:
        self._members.discard(backlog)

    @property
    def subscriber_count(self) -> int:
        """Feeds receiving this process's events: one per feed subscription, one per member of
        a feed group."""
        return sum(1 for s in self._subscriptions if s.counted) + len(self._members)

    @property
    def dropped_count(self) -> int:
        """Subscribers dropped for falling behind whose feeds have not ended yet."""
        subscriptions = sum(1 for s in self._subscriptions if s.dropped and s.counted)
        return subscriptions + sum(1 for m in self._members if m.dropped)


class MemoryBus(FanOut):
    """The embedded bus: published events go to this process's subscribers."""

    async def publish(self, events: list[BusEvent]) -> None:
        for event in events:
            self.deliver(event)
