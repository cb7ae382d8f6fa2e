"""Live feeds: process changes, process logs and messages, over WebSocket or multipart HTTP.

Transports: `graphql-transport-ws` and the legacy `graphql-ws` on /graphql (credentials in the
connection_init payload `{"authorization": "Bearer …"}` or the upgrade request's header), and
multipart/mixed or SSE over HTTP. A subscriber that falls too far behind is dropped: its
operation ends with a SUBSCRIBER_DROPPED error and the WebSocket is closed with code 4008.

Subscribers of one event share its execution: the feeds tag each item with who it is for (the
event and the caller's audience, flowql.resolvers.subscriptions.audience); items with equal
tags become one payload object (`SharedPayloads`), and `SharedEventExecution` executes each
(payload, document, variables) once, every other subscriber in that group receiving the same
result. Each subscriber still has its own bus queue, filter and row check (a feed decides
alone whether an event reaches it), so sharing never widens what anyone receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from typing import Any, TypeVar

import strawberry
from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from flowql.models import Message as MessageRow
from flowql.resolvers import subscriptions as resolve
from flowql.resolvers.subscriptions import ProcessChange, Shared
from flowql.schema.base import Info
from flowql.schema.messages import Message
from flowql.schema.processes import Process, ProcessLog, ProcessStatus

S = TypeVar("S")
T = TypeVar("T")


async def _mapped(
    source: AsyncGenerator[S, None], convert: Callable[[S], T]
) -> AsyncGenerator[T, None]:
    async with contextlib.aclosing(source) as items:
        async for item in items:
            yield convert(item)


# How long a shared payload and its results are kept for the event's other subscribers.
SHARE_SECONDS = 5.0


class _Expiring:
    """A per-event-loop dict whose entries are forgotten SHARE_SECONDS after they are made."""

    def __init__(self) -> None:
        self.items: dict[Hashable, Any] = {}

    def put(self, key: Hashable, value: Any) -> None:
        self.items[key] = value
        asyncio.get_running_loop().call_later(SHARE_SECONDS, self.items.pop, key, None)


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[_Expiring, _Expiring]] = (
    weakref.WeakKeyDictionary()
)


def _caches() -> tuple[_Expiring, _Expiring]:
    """(payloads by sharing key and by id, execution results) of the running loop."""
    loop = asyncio.get_running_loop()
    caches = _loops.get(loop)
    if caches is None:
        caches = _loops[loop] = (_Expiring(), _Expiring())
    return caches


def shared_payload(kind: str, share: Hashable | None, make: Callable[[], T]) -> T:
    """One payload object per sharing key: subscribers of one event with one audience get the
    same object, which is what lets `SharedEventExecution` recognise them as a group."""
    if share is None:
        return make()
    payloads, _ = _caches()
    key = (kind, share)
    payload = payloads.items.get(key)
    if payload is None:
        payload = make()
        payloads.put(key, payload)
        payloads.put(("id", id(payload)), payload)
    return payload


def _is_shared(payload: Any) -> bool:
    loop = asyncio.get_running_loop()
    caches = _loops.get(loop)
    return caches is not None and caches[0].items.get(("id", id(payload))) is payload


class SharedEventExecution(StrawberryGraphQLCoreExecutionContext):
    """Executes a subscription event once per (payload, document, variables, operation name).

    Used by the schema for every operation; only subscription events are affected (graphql-core
    builds a per-event executor for each event of each subscriber). A payload from
    `shared_payload` is the same object for every subscriber of that event with the same
    audience, so the first of them executes and the others receive its result. `stats` counts
    executions and reuses (for tests and the benchmark)."""

    stats: dict[str, int] = {"executed": 0, "shared": 0}
    _share_key: Hashable | None = None
    _request_key: tuple[int, str | None] | None = None

    def build_per_event_executor(self, payload: Any) -> Any:
        if not _is_shared(payload):
            return super().build_per_event_executor(payload)
        if self._request_key is None:
            variables = json.dumps(self.variable_values, sort_keys=True, default=str)
            self._request_key = (id(self.operation), variables)
        key = (id(payload), *self._request_key)
        entry = _caches()[1].items.get(key)
        if entry is not None and entry[0] is payload and entry[1] is self.operation:
            return _Reuse(entry[2])  # no executor copy for the group's other subscribers
        executor = super().build_per_event_executor(payload)
        executor._share_key = key  # type: ignore[attr-defined]
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        key = self._share_key
        if key is None:
            return super().execute_operation(serially)
        _, results = _caches()
        entry = results.items.get(key)
        if entry is not None and entry[0] is self.root_value and entry[1] is self.operation:
            return _Reuse(entry[2]).execute_operation(serially)
        SharedEventExecution.stats["executed"] += 1
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            task = asyncio.ensure_future(_awaited(result))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            results.put(key, (self.root_value, self.operation, task))
            return asyncio.shield(task)
        results.put(key, (self.root_value, self.operation, result))
        return result


class _Reuse:
    """The per-event "executor" of a subscriber whose group's result exists (or is coming)."""

    __slots__ = ("outcome",)

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def execute_operation(self, serially: bool | None = None) -> Any:
        SharedEventExecution.stats["shared"] += 1
        outcome = self.outcome
        if not isinstance(outcome, asyncio.Future):
            return outcome
        return outcome.result() if outcome.done() else asyncio.shield(outcome)


async def _awaited(result: Awaitable[ExecutionResult]) -> ExecutionResult:
    return await result


def _process(change: ProcessChange) -> Process:
    def make() -> Process:
        process = Process.from_row(change.row)
        process.status = change.status
        process.state = change.state
        return process

    return shared_payload("Process", change.share, make)


def _message(delivery: Shared[MessageRow]) -> Message:
    return shared_payload("Message", delivery.share, lambda: Message.from_row(delivery.item))


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The process now, then each time its status, state or a step changes, in "
        "order; ends after a terminal status (COMPLETED, FAILED, CANCELLED). `status` and `state` "
        "are those of the change; other fields are read when the change is delivered."
    )
    async def process_updated(self, info: Info, id: uuid.UUID) -> AsyncGenerator[Process, None]:
        async for process in _mapped(resolve.process_updated(info.context, id), _process):
            yield process

    @strawberry.subscription(
        description="Changes of every process the caller may read, filtered server-side by "
        "workflow, scenario and status."
    )
    async def process_events(
        self,
        info: Info,
        workflow_id: uuid.UUID | None = None,
        scenario_id: uuid.UUID | None = None,
        statuses: list[ProcessStatus] | None = None,
    ) -> AsyncGenerator[Process, None]:
        source = resolve.process_events(info.context, workflow_id, scenario_id, statuses)
        async for process in _mapped(source, _process):
            yield process

    @strawberry.subscription(
        description="The process's log lines in the order written: with `fromStart` those "
        "already written first, then live ones (no gap, no duplicate). Ends once the process "
        "has ended."
    )
    async def process_logs(
        self, info: Info, id: uuid.UUID, from_start: bool = False
    ) -> AsyncGenerator[ProcessLog, None]:
        source = resolve.process_logs(info.context, id, from_start)
        async for line in _mapped(source, ProcessLog.from_row):
            yield line

    @strawberry.subscription(description="Messages as agents emit them.")
    async def message_created(
        self, info: Info, agent_id: uuid.UUID | None = None, workflow_id: uuid.UUID | None = None
    ) -> AsyncGenerator[Message, None]:
        source = resolve.message_created(info.context, agent_id, workflow_id)
        async for message in _mapped(source, _message):
            yield message
