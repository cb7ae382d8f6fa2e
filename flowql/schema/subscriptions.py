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

Feeds that follow the bus with nothing per subscriber (processEvents, messageCreated) go further
over WebSockets: subscribers with one (document, variables, operation name, audience) form a
`FeedGroup`, which runs the subscription once and encodes each result's payload once; each
member's frame is that payload behind its own operation id (flowql.transport writes it), with
its own bounded backlog of frames (a slow member is dropped alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sys
import uuid
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from typing import Any, TypeVar

import strawberry
from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    parse,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.execution import PreExecutionError

from flowql.events.bus import Backlog, SubscriberDropped
from flowql.events.bus import Subscription as BusSubscription
from flowql.models import Message as MessageRow
from flowql.resolvers import subscriptions as resolve
from flowql.resolvers.context import Context
from flowql.resolvers.subscriptions import ProcessChange, Shared, feed_listener
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


# -- one fan-out per group ----------------------------------------------------------------------

# Root fields whose every result is the same for all subscribers with one audience, document and
# variables, from any time they join: they follow the bus, with no per-subscriber first message
# and no per-subscriber end (processUpdated and processLogs begin with what the database holds
# when each subscriber arrives, and are executed per subscriber, sharing executions above).
GROUPED_FIELDS = frozenset({"processEvents", "messageCreated"})
# Documents longer than this are left to Strawberry (and its request limits) unparsed here.
GROUPED_DOCUMENT_LIMIT = 10_000

logger = logging.getLogger("flowql.subscriptions")


@functools.lru_cache(maxsize=512)
def grouped_field(query: str, operation_name: str | None) -> FieldNode | None:
    """The root field of a subscription that a feed group can serve, else None: one operation
    (or the one named) of type subscription whose selection is a single field of GROUPED_FIELDS,
    without directives. Anything else (including documents that do not parse) runs as usual."""
    if len(query) > GROUPED_DOCUMENT_LIMIT:
        return None
    try:
        document = parse(query, max_tokens=2_000)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return None
    operation = operations[0]
    if operation.operation is not OperationType.SUBSCRIPTION or operation.directives:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    field = selections[0]
    if field.directives or field.name.value not in GROUPED_FIELDS:
        return None
    return field


Send = Callable[[str], Awaitable[None]]


class Member:
    """One subscriber of a feed group: its frame prefix (its protocol's message with its own
    operation id, up to the payload) and its own bounded backlog of frames to write."""

    __slots__ = ("after", "backlog", "group", "head")

    def __init__(self, group: FeedGroup, head: str, maxsize: int) -> None:
        self.group = group
        self.head = head
        self.backlog: Backlog[str] = Backlog(maxsize)
        self.after = 0  # results of the group's bus events up to this number are not its own

    async def run(self, send: Send) -> PreExecutionError | None:
        """Write the group's frames until the feed ends (the errors of a document the schema
        refuses are returned, for the protocol's own error message). A member that falls too
        far behind is dropped alone: its backlog is emptied, the SUBSCRIBER_DROPPED error is
        written and the connection is told (`Context.on_drop`)."""
        try:
            async for frame in self.backlog:
                await send(frame)
        except SubscriberDropped:
            await send(self.head + self.group.dropped_payload + "}")
        return self.group.refused

    def leave(self) -> None:
        self.group.leave(self)


class FeedGroup:
    """One execution of a subscription for every subscriber of one (document, variables,
    operation name, audience): its task runs the subscription through the schema (one bus
    subscription, one row load and one execution per event), encodes each result's payload
    once, and puts each member's frame (its prefix + the payload) in that member's backlog.

    A member receives the results of the events the group's bus subscription accepted after
    it joined (the group knows which event each result comes from). Errors that end the feed
    (EVENTS_MISSED, or the group's own subscription dropped) reach every member."""

    stats: dict[str, int] = {"groups": 0, "encoded": 0, "frames": 0}

    def __init__(
        self,
        groups: FeedGroups,
        key: Hashable,
        schema: Any,
        context: Context,
        request: tuple[str, dict[str, Any] | None, str | None],
        field: FieldNode,
        encode: Callable[[object], str],
    ) -> None:
        self.groups = groups
        self.key = key
        self.context = context
        self.encode = encode
        self.members: dict[Member, Callable[[], None] | None] = {}
        self.listening: BusSubscription | None = None
        self.refused: PreExecutionError | None = None
        self.ended = False
        error = GraphQLError(
            f"{resolve.SLOW_SUBSCRIBER_REASON}: more than the allowed undelivered events queued",
            nodes=[field],
            path=[field.alias.value if field.alias else field.name.value],
            extensions={"code": resolve.DROPPED_CODE},
        )
        self.dropped_payload = encode({"data": None, "errors": [error.formatted]})
        context.on_drop = self._dropped
        FeedGroup.stats["groups"] += 1
        self.task = asyncio.get_running_loop().create_task(self._run(schema, *request))

    def join(self, head: str, on_drop: Callable[[], None] | None) -> Member:
        member = Member(self, head, self.context.settings.subscription_queue_size)
        if on_drop is not None:
            member.backlog.on_drop(on_drop)
        if self.listening is not None:
            member.after = self.listening.offered
            self.context.runtime.bus.member(member.backlog)
        self.members[member] = on_drop
        return member

    def leave(self, member: Member) -> None:
        if self.members.pop(member, False) is False:
            return
        member.backlog.close()
        self.context.runtime.bus.leave(member.backlog)
        if not self.members and not self.ended:
            self._end()
            self.task.cancel()

    def _end(self) -> None:
        self.ended = True
        self.groups.forget(self)

    def _listen(self, subscription: BusSubscription) -> None:
        """The group's bus subscription is live: its members count as subscribers from now."""
        subscription.counted = False
        self.listening = subscription
        for member in self.members:
            self.context.runtime.bus.member(member.backlog)

    def _dropped(self, _task: asyncio.Task[Any] | None) -> None:
        """The group's own subscription fell behind: the feed ends with SUBSCRIBER_DROPPED for
        every member, and each member's connection is told, as a dropped subscriber's is."""
        self._end()
        for on_drop in list(self.members.values()):
            if on_drop is not None:
                on_drop()

    async def _run(
        self,
        schema: Any,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> None:
        feed_listener.set(self._listen)
        try:
            source = await schema.subscribe(
                query,
                variable_values=variables,
                context_value=self.context,
                operation_name=operation_name,
            )
            async with contextlib.aclosing(source):
                first = True
                async for result in source:
                    if first and isinstance(result, PreExecutionError):
                        self.refused = result
                        return
                    first = False
                    self._deliver(result)
        except Exception:
            logger.exception("feed group failed")
        finally:
            if not self.ended:
                self._end()
            for member in self.members:
                member.backlog.end()

    def _deliver(self, result: Any) -> None:
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        text = self.encode(payload)
        # A result of an event is for the members that joined before the event was accepted;
        # an error (the feed ends) is for all.
        listening = self.listening
        number = listening.taken if listening is not None and not result.errors else sys.maxsize
        end = text + "}"
        frames = 0
        for member in self.members:
            if member.after < number:
                member.backlog.put(member.head + end)
                frames += 1
        stats = FeedGroup.stats
        stats["encoded"] += 1
        stats["frames"] += frames


class FeedGroups:
    """The feed groups of one schema on one event loop, by (document, variables, operation
    name, audience): subscribers with equal keys receive the same results."""

    def __init__(self) -> None:
        self.groups: dict[Hashable, FeedGroup] = {}

    def join(
        self,
        schema: Any,
        context: Context,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        head: str,
        on_drop: Callable[[], None] | None,
        encode: Callable[[object], str],
    ) -> Member | None:
        """A member of the group for this subscription, or None when it is not one a group can
        serve (run it as usual). `head` is the member's frame up to the payload."""
        if not isinstance(query, str) or not isinstance(operation_name, str | None):
            return None  # Strawberry answers malformed subscribe messages
        field = grouped_field(query, operation_name)
        if field is None or not context.principal.is_authenticated:
            return None
        try:
            values = json.dumps(variables or {}, sort_keys=True)
        except (TypeError, ValueError):
            return None
        key = (query, values, operation_name, resolve.audience(context.principal))
        group = self.groups.get(key)
        if group is None:
            own = Context(runtime=context.runtime, principal=context.principal)
            request = (query, variables, operation_name)
            group = self.groups[key] = FeedGroup(self, key, schema, own, request, field, encode)
        return group.join(head, on_drop)

    def forget(self, group: FeedGroup) -> None:
        if self.groups.get(group.key) is group:
            del self.groups[group.key]


_groups: weakref.WeakKeyDictionary[Any, FeedGroups] = weakref.WeakKeyDictionary()


def feed_groups(schema: Any) -> FeedGroups:
    """The feed groups of `schema` (one schema serves one event loop)."""
    groups = _groups.get(schema)
    if groups is None:
        groups = _groups[schema] = FeedGroups()
    return groups
