"""The PostgreSQL event bus (FLOWQL_BUS=postgres): NOTIFY to publish, one LISTEN per process.

`publish` sends each event with `pg_notify` after its transaction committed (the same moment the
memory bus hands it out). Every server process keeps one dedicated autocommit connection
listening on the channel and fans what arrives out to its own subscribers through the same
`FanOut` as the memory bus (a subscriber that falls behind is dropped).
A process's own events reach its subscribers the same way, through the database.

Payloads stay small: topic, workspace id and the event's data, which are ids and statuses. An
event whose JSON would exceed NOTIFY_LIMIT bytes (PostgreSQL refuses 8000) is sent with its large
fields dropped and `data["truncated"] = True`; subscribers load rows by the ids it keeps.

Gaps: when the LISTEN connection is lost (database restart, network), it reconnects with
exponential backoff. Events published meanwhile are not replayed. Once listening again, every
subscription receives, whatever its `accept` filter, one
`BusEvent(topic="bus.gap", workspace_id=GAP_WORKSPACE, data={"since": …, "until": …})`:
its feed may have missed events between those times, so a subscriber should re-read what it
shows (or end its operation with an error the client reconnects on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import text

from flowql.db import Database
from flowql.events.bus import Bus, BusEvent, FanOut, MemoryBus
from flowql.models import utcnow
from flowql.settings import Bus as BusKind
from flowql.settings import Settings, libpq_database_url

logger = logging.getLogger("flowql.events.postgres")

CHANNEL = "flowql_events"
# A process that committed a write to a table behind a cached read (db.PlanClock: hook plans,
# definitions, principals) says so here; every other listening process moves its clock, so its
# caches are fresh within a notification's delay instead of the cache's TTL.
CACHE_CHANNEL = "flowql_cached_reads"
NOTIFY_LIMIT = 7900  # bytes of one payload
GAP_TOPIC = "bus.gap"
GAP_WORKSPACE = uuid.UUID(int=0)
# Data values kept when an event is too large: ids, statuses and other short scalars.
SHORT_VALUE = 200
HEALTH_CHECK_SECONDS = 5.0  # an idle LISTEN connection is probed this often
BACKOFF_START = 0.2
BACKOFF_MAX = 10.0

PUBLISH = text(
    "SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[]))"
    " WITH ORDINALITY AS queued(payload, n) ORDER BY n"
)


def encode(event: BusEvent) -> str:
    body: dict[str, Any] = {
        "i": str(event.id),
        "t": event.topic,
        "w": str(event.workspace_id),
        "a": event.at,
        "d": event.data,
    }
    payload = json.dumps(body, separators=(",", ":"), default=str)
    if len(payload.encode()) <= NOTIFY_LIMIT:
        return payload
    body["d"] = {key: value for key, value in event.data.items() if _short(value)}
    body["d"]["truncated"] = True
    payload = json.dumps(body, separators=(",", ":"), default=str)
    if len(payload.encode()) > NOTIFY_LIMIT:  # many short fields: keep the ids and status only
        body["d"] = {
            key: value
            for key, value in body["d"].items()
            if key.endswith("_id") or key in ("status", "truncated")
        }
        payload = json.dumps(body, separators=(",", ":"), default=str)
    return payload


def _short(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= SHORT_VALUE
    return value is None or isinstance(value, bool | int | float)


def decode(payload: str) -> BusEvent:
    body = json.loads(payload)
    return BusEvent(
        topic=body["t"],
        workspace_id=uuid.UUID(body["w"]),
        data=body["d"],
        id=uuid.UUID(body["i"]),
        at=body["a"],
    )


class PostgresBus(FanOut):
    def __init__(self, conninfo: str, db: Database, channel: str = CHANNEL) -> None:
        super().__init__()
        self.conninfo = conninfo
        self.db = db
        self.channel = channel
        self.connected = False
        self.listening = False  # start() was called: this process serves subscribers
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.instance = uuid.uuid4().hex  # this process, to ignore its own cache notices
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notice: asyncio.Task[None] | None = None
        self._notice_again = False

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, events: list[BusEvent]) -> None:
        """NOTIFY every event, in order, in one statement. Best effort like the memory bus: the
        data is committed already, so a failure is logged rather than failing the caller."""
        if not events:
            return
        try:
            async with self.db.engine.connect() as conn:
                await conn.execute(
                    PUBLISH, {"channel": self.channel, "payloads": [encode(e) for e in events]}
                )
                await conn.commit()
        except Exception:
            logger.warning("could not publish %d bus event(s)", len(events), exc_info=True)

    def _cached_reads_changed(self) -> None:
        """db.PlanClock's commit listener (any thread): one NOTIFY at a time, coalesced."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._send_notice)

    def _send_notice(self) -> None:
        if self._notice is not None and not self._notice.done():
            self._notice_again = True  # one more after the one in flight
            return
        self._notice = asyncio.create_task(self._notify_cached_reads())

    async def _notify_cached_reads(self) -> None:
        while True:
            self._notice_again = False
            try:
                async with self.db.engine.connect() as conn:
                    await conn.execute(
                        text("SELECT pg_notify(:channel, :me)"),
                        {"channel": CACHE_CHANNEL, "me": self.instance},
                    )
                    await conn.commit()
            except Exception:  # the other processes still see the change within the TTL
                logger.warning("could not announce a cached-read change", exc_info=True)
            if not self._notice_again:
                return

    def _announce_gap(self, since: str, until: str) -> None:
        event = BusEvent(
            topic=GAP_TOPIC, workspace_id=GAP_WORKSPACE, data={"since": since, "until": until}
        )
        self.deliver_to_all(event)

    # -- the LISTEN connection ----------------------------------------------------------------

    async def start(self, wait: float = 10.0) -> None:
        """Listen from now on; waits up to `wait` seconds for the first connection (a database
        that is down at start is retried in the background, /readyz says so meanwhile)."""
        if self._task is not None:
            return
        self.listening = True
        self._loop = asyncio.get_running_loop()
        self.db.plan_clock.on_commit.append(self._cached_reads_changed)
        self._task = asyncio.create_task(self._listen(), name="flowql-bus-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), wait)

    async def stop(self) -> None:
        task, self._task = self._task, None
        with contextlib.suppress(ValueError):
            self.db.plan_clock.on_commit.remove(self._cached_reads_changed)
        notice, self._notice = self._notice, None
        if notice is not None and not notice.done():
            notice.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await notice
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False
        self.listening = False

    async def _listen(self) -> None:
        delay = BACKOFF_START
        lost_at: str | None = None
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name="flowql-bus"
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CACHE_CHANNEL)))
                    self.connected = True
                    self.db.plan_clock.tick()  # notices may have been missed while not listening
                    self._ready.set()
                    delay = BACKOFF_START
                    if lost_at is not None:
                        logger.warning(
                            "bus: listening again (events since %s may be lost)", lost_at
                        )
                        self._announce_gap(lost_at, utcnow().isoformat())
                        lost_at = None
                    while True:
                        async for notify in conn.notifies(timeout=HEALTH_CHECK_SECONDS):
                            if notify.channel == CACHE_CHANNEL:
                                if notify.payload != self.instance:
                                    self.db.plan_clock.tick()
                            else:
                                self._dispatch(notify.payload)
                        await conn.execute("SELECT 1")  # raises once the server is gone
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected or lost_at is None:
                    lost_at = utcnow().isoformat()
                    logger.warning("bus: LISTEN connection lost or refused: %s", exc)
            self.connected = False
            await asyncio.sleep(delay * (1 + random.random() / 2))
            delay = min(delay * 2, BACKOFF_MAX)

    def _dispatch(self, payload: str) -> None:
        try:
            event = decode(payload)
        except (ValueError, KeyError, TypeError):
            logger.warning("bus: ignoring a malformed notification: %.200s", payload)
            return
        self.deliver(event)


def make_bus(settings: Settings, db: Database) -> Bus:
    if settings.bus is BusKind.POSTGRES:
        return PostgresBus(libpq_database_url(settings.resolved_database_url()), db)
    return MemoryBus()
