"""Live feeds: process changes, process logs and messages, over WebSocket or multipart HTTP.

Transports: `graphql-transport-ws` and the legacy `graphql-ws` on /graphql (credentials in the
connection_init payload `{"authorization": "Bearer …"}` or the upgrade request's header), and
multipart/mixed or SSE over HTTP. A subscriber that falls too far behind is dropped: its
operation ends with a SUBSCRIBER_DROPPED error and the WebSocket is closed with code 4008.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import TypeVar

import strawberry

from flowql.resolvers import subscriptions as resolve
from flowql.resolvers.subscriptions import ProcessChange
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


def _process(change: ProcessChange) -> Process:
    process = Process.from_row(change.row)
    process.status = change.status
    process.state = change.state
    return process


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
        async for message in _mapped(source, Message.from_row):
            yield message
