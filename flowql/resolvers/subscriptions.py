"""Subscription resolvers: bus events (which carry ids) in, rows the caller may read out.

Every feed subscribes to the bus *before* it reads the database, so nothing committed between
the read and the subscription is missed. Events are filtered in the bus's `accept` callback by
the caller's grants, so another workspace's events never reach a subscriber's queue. Rows are
loaded by id per event; the subscribers woken by one event share one load (`shared_load`).
Items are tagged with (event id, `audience(principal)`) so that subscribers who received the same
event and see it alike share one GraphQL execution (flowql.schema.subscriptions).

A subscriber more than `settings.subscription_queue_size` events behind that stops draining (see
flowql.events.bus.Subscription) is dropped by the bus: its operation ends with a
SUBSCRIBER_DROPPED error and the transport is told (`Context.on_drop`: over a WebSocket,
flowql.transport closes the connection with code 4008). Feeds yield data only; they never touch
a connection. When the PostgreSQL bus reports a gap (its LISTEN
connection was lost for a while), feeds that can re-read their state do so (processUpdated,
processLogs); the others end with an EVENTS_MISSED error, for the client to subscribe again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import uuid
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, cast

from graphql import GraphQLError
from sqlalchemy import func
from sqlmodel import col, select

from flowql.auth.principal import Principal
from flowql.errors import DomainError
from flowql.events.bus import BusEvent, SubscriberDropped, Subscription
from flowql.events.postgres import GAP_TOPIC
from flowql.models import (
    TERMINAL_STATUSES,
    Message,
    Process,
    ProcessLog,
    ProcessStatus,
    Row,
    WorkspaceRow,
)
from flowql.resolvers.context import Context
from flowql.services.common import sees_row
from flowql.services.processes import get_process

logger = logging.getLogger("flowql.subscriptions")

PROCESS_UPDATED = "process.updated"
PROCESS_LOG = "process.log"
MESSAGE_CREATED = "message.created"

SLOW_SUBSCRIBER_REASON = "subscriber too slow: dropped"
DROPPED_CODE = "SUBSCRIBER_DROPPED"
MISSED_CODE = "EVENTS_MISSED"
# How long a row loaded for one event stays shared with the other subscribers of that event.
SHARED_LOAD_SECONDS = 5.0
BACKLOG_CHUNK = 500
TERMINAL_VALUES = frozenset(s.value for s in TERMINAL_STATUSES)

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R", bound=Row)
W = TypeVar("W", bound=WorkspaceRow)


@dataclass(frozen=True)
class ProcessChange:
    """A process as of one change: status and state are the event's (what was committed then);
    the other columns are as loaded when the event was handled."""

    row: Process
    status: ProcessStatus
    state: str | None
    # Who else receives exactly this change: equal keys mean the same event seen by the same
    # audience (see `audience`), so one GraphQL execution can serve them all. None: not shared.
    share: Hashable | None = None


@dataclass(frozen=True)
class Shared(Generic[T]):
    """A feed's item with its sharing key (see ProcessChange.share)."""

    item: T
    share: Hashable | None = None


def audience(principal: Principal) -> Hashable:
    """Everything about the caller that can change what a feed's item looks like to them: the
    identity and every grant, role and scope. Subscribers with equal audiences that received
    the same event (each through its own `accept` filter and row check) see the same result,
    so they may share one execution of the same document with the same variables; a subscriber
    of another workspace, user or key never shares one."""
    return (
        principal.kind,
        principal.user_id,
        principal.api_key_id,
        principal.process_id,
        principal.workflow_id,
        tuple(sorted((str(ws), tuple(sorted(p))) for ws, p in principal.grants.items())),
        tuple(sorted((str(ws), role) for ws, role in principal.roles.items())),
        repr(principal.process_scopes),
    )


class EventsMissed(Exception):
    """The bus lost events this feed cannot recover by reading the database."""


# -- plumbing -----------------------------------------------------------------------------------


def coded(fn: Callable[P, AsyncGenerator[T, None]]) -> Callable[P, AsyncGenerator[T, None]]:
    """Errors of a feed leave with `extensions.code`, like those of queries and mutations."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[T, None]:
        try:
            async with contextlib.aclosing(fn(*args, **kwargs)) as inner:
                async for item in inner:
                    yield item
        except SubscriberDropped as exc:
            raise GraphQLError(
                f"{SLOW_SUBSCRIBER_REASON}: more than the allowed undelivered events queued",
                extensions={"code": DROPPED_CODE},
            ) from exc
        except EventsMissed as exc:
            raise GraphQLError(str(exc), extensions={"code": MISSED_CODE}) from exc
        except DomainError as exc:
            raise GraphQLError(
                exc.message, extensions=exc.extensions(), original_error=exc
            ) from exc

    return wrapper


def _on_drop(ctx: Context, operation: asyncio.Task[Any] | None) -> Callable[[], None]:
    def dropped() -> None:
        logger.warning("subscriber dropped: it fell too far behind")
        if ctx.on_drop is not None:
            ctx.on_drop(operation)

    return dropped


# Told each bus subscription a feed makes in this context (a feed group's task sets it, to learn
# which events its results come from: flowql.schema.subscriptions.FeedGroup).
feed_listener: contextvars.ContextVar[Callable[[Subscription], None] | None] = (
    contextvars.ContextVar("feed_listener", default=None)
)


@contextlib.asynccontextmanager
async def feed(ctx: Context, accept: Callable[[BusEvent], bool]) -> AsyncIterator[Subscription]:
    maxsize = ctx.settings.subscription_queue_size
    async with ctx.runtime.bus.subscribe(accept, maxsize=maxsize) as subscription:
        subscription.on_drop(_on_drop(ctx, asyncio.current_task()))
        listener = feed_listener.get()
        if listener is not None:
            listener(subscription)
        yield subscription


class SharedLoads:
    """One load per key however many subscribers ask: the first starts it, the others await the
    same task. Results are kept SHARED_LOAD_SECONDS, then forgotten."""

    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Task[Any]] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._tasks[key] = task
            asyncio.get_running_loop().call_later(SHARED_LOAD_SECONDS, self._tasks.pop, key, None)
        elif task.done():  # the usual case for all but the first subscriber: no wrapper future
            return cast(T, task.result())
        return cast(T, await asyncio.shield(task))


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedLoads] = (
    weakref.WeakKeyDictionary()
)


async def shared_load(ctx: Context, model: type[R], id: uuid.UUID, event: BusEvent) -> R | None:
    """The row `id` as committed when `event` was published (loaded once per event), if the caller
    may read its workspace."""
    loads = _shared.setdefault(asyncio.get_running_loop(), SharedLoads())

    async def load() -> R | None:
        async with ctx.db.read() as session:
            return (await session.exec(select(model).where(col(model.id) == id))).first()

    row = await loads.get((event.id, model.__name__, id), load)
    if row is None or getattr(row, "workspace_id", None) not in ctx.principal.grants:
        return None
    return row


def _uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, str):
        return _parsed_uuid(value)  # every subscriber of an event parses the same id
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _parsed_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _readable(principal: Principal, privilege: str) -> Callable[[BusEvent], bool]:
    return lambda event: principal.can(event.workspace_id, privilege)


def _missed(event: BusEvent) -> EventsMissed:
    since, until = event.data.get("since"), event.data.get("until")
    return EventsMissed(f"events between {since} and {until} may be missing: subscribe again")


def _matches(data: dict[str, Any], key: str, wanted: str | None) -> bool:
    """An event that names `key` must name `wanted`; one that does not is checked on its row."""
    return wanted is None or key not in data or data[key] == wanted


def _str(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


async def _rows(
    ctx: Context, subscription: Subscription, model: type[W], id_key: str
) -> AsyncGenerator[tuple[BusEvent, W], None]:
    """The loop of the feeds that follow many rows: each event's row (`data[id_key]`, loaded
    once per event) that the caller may see. A gap ends the feed with EVENTS_MISSED."""
    async for event in subscription:
        if event.topic == GAP_TOPIC:
            raise _missed(event)
        row_id = _uuid(event.data.get(id_key))
        if row_id is None:
            continue
        row = await shared_load(ctx, model, row_id, event)
        if row is not None and sees_row(ctx.principal, row):
            yield event, row


# -- feeds --------------------------------------------------------------------------------------


@coded
async def process_updated(
    ctx: Context, process_id: uuid.UUID
) -> AsyncGenerator[ProcessChange, None]:
    """The process now, then each change of its status, state or steps; ends after a terminal
    status."""
    principal = ctx.principal
    principal.ensure_authenticated()
    key = str(process_id)
    can_read = _readable(principal, "process:read")
    seen_by = audience(principal)

    def accept(event: BusEvent) -> bool:
        return (
            event.topic == PROCESS_UPDATED
            and event.data.get("process_id") == key
            and can_read(event)
        )

    async with feed(ctx, accept) as subscription:
        async with ctx.db.read() as session:
            row = await get_process(session, principal, process_id)
        yield ProcessChange(row, row.status, row.state)
        last = (row.status, row.state)
        if row.status in TERMINAL_STATUSES:
            return
        async for event in subscription:
            if event.topic == GAP_TOPIC:  # events may be lost: the database has the truth
                async with ctx.db.read() as session:
                    row = await get_process(session, principal, process_id)
                if (row.status, row.state) != last:
                    last = (row.status, row.state)
                    ctx.loaders.clear()
                    yield ProcessChange(row, row.status, row.state)
                if row.status in TERMINAL_STATUSES:
                    return
                continue
            status = ProcessStatus(event.data["status"])
            said = "state" in event.data  # a truncated PostgreSQL bus event leaves it out
            if "step_id" not in event.data and said and (status, event.data["state"]) == last:
                continue  # nothing changed (e.g. committed before the first read)
            loaded = await shared_load(ctx, Process, process_id, event)
            if loaded is None:
                return
            state = event.data.get("state", loaded.state)
            last = (status, state)
            ctx.loaders.clear()  # a long-lived connection must not serve stale relations
            yield ProcessChange(loaded, status, state, (event.id, seen_by))
            if status in TERMINAL_STATUSES:
                return


@coded
async def process_events(
    ctx: Context,
    workflow_id: uuid.UUID | None,
    scenario_id: uuid.UUID | None,
    statuses: list[ProcessStatus] | None,
) -> AsyncGenerator[ProcessChange, None]:
    """Every change of every process the caller may read, filtered server-side."""
    principal = ctx.principal
    principal.ensure_authenticated()
    wanted = {s.value for s in statuses or []}
    can_read = _readable(principal, "process:read")
    seen_by = audience(principal)
    workflow, scenario = _str(workflow_id), _str(scenario_id)

    def accept(event: BusEvent) -> bool:
        data = event.data
        return (
            event.topic == PROCESS_UPDATED
            and can_read(event)
            and (not wanted or data.get("status") in wanted)
            and _matches(data, "workflow_id", workflow)
            and _matches(data, "scenario_id", scenario)
        )

    async with (
        feed(ctx, accept) as subscription,
        contextlib.aclosing(_rows(ctx, subscription, Process, "process_id")) as rows,
    ):
        async for event, row in rows:
            if workflow_id is not None and row.workflow_id != workflow_id:
                continue
            if scenario_id is not None and row.scenario_id != scenario_id:
                continue
            ctx.loaders.clear()
            state = event.data.get("state", row.state)
            status = ProcessStatus(event.data["status"])
            yield ProcessChange(row, status, state, (event.id, seen_by))


async def _backlog(
    ctx: Context, process_id: uuid.UUID, after: int
) -> AsyncGenerator[ProcessLog, None]:
    while True:
        async with ctx.db.read() as session:
            stmt = (
                select(ProcessLog)
                .where(ProcessLog.process_id == process_id)
                .where(col(ProcessLog.number) > after)
                .order_by(col(ProcessLog.number))
                .limit(BACKLOG_CHUNK)
            )
            rows = list((await session.exec(stmt)).all())
        for row in rows:
            yield row
        if len(rows) < BACKLOG_CHUNK:
            return
        after = rows[-1].number or after


@coded
async def process_logs(
    ctx: Context, process_id: uuid.UUID, from_start: bool
) -> AsyncGenerator[ProcessLog, None]:
    """Log lines in the order written: with `from_start` those already written first, then live
    ones, with no gap and no duplicate at the seam. Ends once the process has ended."""
    principal = ctx.principal
    principal.ensure_authenticated()
    key = str(process_id)
    can_read = _readable(principal, "process:read")

    def accept(event: BusEvent) -> bool:
        return (
            event.topic in (PROCESS_LOG, PROCESS_UPDATED)
            and event.data.get("process_id") == key
            and can_read(event)
        )

    async with feed(ctx, accept) as subscription:
        # Read after subscribing: whatever the read misses is in the queue, and the queue's
        # lines the read already had are skipped by number.
        async with ctx.db.read() as session:
            process = await get_process(session, principal, process_id)
            newest = (
                await session.exec(
                    select(func.max(ProcessLog.number)).where(ProcessLog.process_id == process_id)
                )
            ).one()
        last: int = 0 if from_start else (newest or 0)
        if from_start:
            async for line in _backlog(ctx, process_id, 0):
                last = line.number or last
                yield line
        if process.status in TERMINAL_STATUSES:
            return
        async for event in subscription:
            if event.topic == GAP_TOPIC:  # catch up from the database, in order, then go on
                async for line in _backlog(ctx, process_id, last):
                    last = line.number or last
                    yield line
                async with ctx.db.read() as session:
                    process = await get_process(session, principal, process_id)
                if process.status in TERMINAL_STATUSES:
                    return
                continue
            if event.topic == PROCESS_UPDATED:
                if event.data.get("status") in TERMINAL_VALUES:
                    return
                continue
            log_id = _uuid(event.data.get("log_id"))
            if log_id is None:
                continue
            live = await shared_load(ctx, ProcessLog, log_id, event)
            if live is None or (live.number or 0) <= last:
                continue
            last = live.number or last
            yield live


@coded
async def message_created(
    ctx: Context, agent_id: uuid.UUID | None, workflow_id: uuid.UUID | None
) -> AsyncGenerator[Shared[Message], None]:
    """Messages as agents emit them, in workflows the caller may read."""
    principal = ctx.principal
    principal.ensure_authenticated()
    can_read = _readable(principal, "workflow:read")
    seen_by = audience(principal)
    agent, workflow = _str(agent_id), _str(workflow_id)

    def accept(event: BusEvent) -> bool:
        data = event.data
        return (
            event.topic == MESSAGE_CREATED
            and can_read(event)
            and _matches(data, "agent_id", agent)
            and _matches(data, "workflow_id", workflow)
        )

    async with (
        feed(ctx, accept) as subscription,
        contextlib.aclosing(_rows(ctx, subscription, Message, "message_id")) as rows,
    ):
        async for event, row in rows:
            if agent_id is not None and row.agent_id != agent_id:
                continue
            if workflow_id is not None and row.workflow_id != workflow_id:
                continue
            ctx.loaders.clear()
            yield Shared(row, (event.id, seen_by))
