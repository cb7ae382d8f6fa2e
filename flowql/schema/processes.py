"""Processes: runs of a workflow or a scenario, with their steps and logs."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry

from flowql import models
from flowql.resolvers import execution as resolve_execution
from flowql.resolvers import processes as resolve
from flowql.schema import nodes
from flowql.schema.base import (
    JSON,
    Connection,
    FromRow,
    Info,
    ident,
    page_args,
    relation_columns,
    subtree_names,
    when_loaded,
)
from flowql.schema.documents import context_only
from flowql.schema.filters import FilterInput, filter_input
from flowql.services.processes import ProcessFilter

if TYPE_CHECKING:
    from flowql.schema.messages import Message
    from flowql.schema.scenarios import CurrentState, ProcessHistoryEvent, Scenario
    from flowql.schema.workflows import Agent, Event, Workflow

strawberry.enum(models.ProcessStatus, name="ProcessStatus")
strawberry.enum(models.StepStatus, name="StepStatus")
strawberry.enum(models.LogLevel, name="LogLevel")
ProcessStatus = models.ProcessStatus
StepStatus = models.StepStatus
LogLevel = models.LogLevel

WorkflowRef = Annotated["Workflow", strawberry.lazy("flowql.schema.workflows")]
AgentRef = Annotated["Agent", strawberry.lazy("flowql.schema.workflows")]
EventRef = Annotated["Event", strawberry.lazy("flowql.schema.workflows")]
CurrentStateRef = Annotated["CurrentState", strawberry.lazy("flowql.schema.scenarios")]
HistoryEventRef = Annotated["ProcessHistoryEvent", strawberry.lazy("flowql.schema.scenarios")]
ScenarioRef = Annotated["Scenario", strawberry.lazy("flowql.schema.scenarios")]
MessageRef = Annotated["Message", strawberry.lazy("flowql.schema.messages")]


@strawberry.type
class ProcessStep(FromRow):
    id: uuid.UUID
    number: int
    process_id: uuid.UUID
    agent_id: uuid.UUID
    input_message_id: uuid.UUID | None
    status: StepStatus
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    output_message_ids: list[str]
    created_at: datetime

    @strawberry.field
    @context_only
    def agent(self, info: Info) -> AgentRef | None:
        from flowql.schema.workflows import Agent

        loaders = info.context.loaders
        agent_id = self.agent_id
        done = loaders.converted(Agent, agent_id)
        if done is not None:
            return cast(Agent, done)
        loader = loaders.by_id(models.Agent, rows=True)
        return when_loaded(
            loader.load(agent_id),
            lambda row: loaders.convert_once(Agent, agent_id, row, Agent.maybe),
        )


# The columns a ProcessStep's resolver fields read (for steps that fetch only what is selected).
STEP_NEEDS = {"agent": ("agent_id",)}


@strawberry.type
class ProcessLog(FromRow):
    id: uuid.UUID
    number: int
    process_id: uuid.UUID
    step_id: uuid.UUID | None
    level: LogLevel
    message: str
    data: JSON
    created_at: datetime


@nodes.register
@strawberry.type
class Process(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID | None
    scenario_id: uuid.UUID | None
    trigger_id: uuid.UUID | None
    event_id: uuid.UUID | None
    user_id: uuid.UUID | None
    status: ProcessStatus
    title: str
    input: JSON
    output: JSON | None
    error: str | None
    state: str | None
    vars: JSON
    result: JSON | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    last_activity_at: datetime | None
    actors: JSON = strawberry.field(description="Scenario processes: actor key -> actor record.")
    # Set by lists that know every field selected under `steps`: the step columns to fetch.
    _step_columns: strawberry.Private[tuple[str, ...] | None] = dataclasses.field(
        default=None, init=False
    )

    @strawberry.field
    async def workflow(self, info: Info) -> WorkflowRef | None:
        from flowql.schema.workflows import Workflow

        if self.workflow_id is None:
            return None
        return Workflow.maybe(
            await info.context.loaders.by_id(models.Workflow).load(self.workflow_id)
        )

    @strawberry.field
    async def event(self, info: Info) -> EventRef | None:
        from flowql.schema.workflows import Event

        if self.event_id is None:
            return None
        return Event.maybe(await info.context.loaders.by_id(models.Event).load(self.event_id))

    @strawberry.field
    @context_only
    def steps(self, info: Info) -> list[ProcessStep]:
        loader = info.context.loaders.children(
            models.ProcessStep, "process_id", rows=True, columns=self._step_columns
        )
        return when_loaded(loader.load(self.id), ProcessStep.from_rows)

    @strawberry.field(description="Log lines in the order they were written.")
    async def logs(self, info: Info) -> list[ProcessLog]:
        loader = info.context.loaders.children(models.ProcessLog, "process_id", rows=True)
        return ProcessLog.from_rows(await loader.load(self.id))

    @strawberry.field(
        description="The messages its agents emitted, oldest first (expired ones are gone)."
    )
    def messages(self, info: Info) -> list[MessageRef]:
        from flowql.schema.messages import Message

        loader = info.context.loaders.children(models.Message, "process_id", rows=True)
        return when_loaded(loader.load(self.id), Message.from_rows)

    # -- scenario processes (flowql.schema.scenarios) --

    @strawberry.field(description="Scenario processes: the current state and its actions.")
    async def current(self, info: Info) -> CurrentStateRef | None:
        from flowql.schema.scenarios import current_state

        return await current_state(info, self.id, self.scenario_id)

    @strawberry.field(
        description="Scenario processes: the whole process as LetsFlow's process JSON (id, "
        "title, tags, scenario, actors, vars, result, current, previous, events)."
    )
    async def projection(self, info: Info) -> JSON | None:
        from flowql.schema.scenarios import projection

        return await projection(info, self.id, self.scenario_id)

    @strawberry.field(description="Scenario processes: the log of state transitions.")
    async def previous(self, info: Info) -> list[JSON]:
        from flowql.schema.scenarios import previous_log

        return await previous_log(info, self.id, self.scenario_id)

    @strawberry.field(description="Scenario processes: every event, hash-chained, oldest first.")
    async def history(self, info: Info) -> list[HistoryEventRef]:
        from flowql.schema.scenarios import history

        return await history(info, self.id)

    @strawberry.field
    async def scenario(self, info: Info) -> ScenarioRef | None:
        from flowql.schema.scenarios import process_scenario

        return await process_scenario(info, self.scenario_id)


# The columns a Process's resolver fields read (for lists that fetch only what is selected).
NEEDS = {
    "workflow": ("workflow_id",),
    "event": ("event_id",),
    "steps": (),
    "logs": (),
    "messages": (),
    "current": ("scenario_id",),
    "projection": ("scenario_id",),
    "previous": ("scenario_id",),
    "history": (),
    "scenario": ("scenario_id",),
}


async def prefetch(info: Info, rows: list[Any]) -> tuple[str, ...] | None:
    """Load the page's steps (and their agents) up front when the query asks for them: one
    statement each, as the dataloaders would, but the per-item resolvers then answer at once.
    Returns the step columns fetched (None: all), for the page's processes to ask for."""
    names = subtree_names(info)
    loaders = info.context.loaders
    if "messages" in names and rows:
        await loaders.children(models.Message, "process_id", rows=True).load_many(
            [row.id for row in rows]
        )
    if "steps" not in names or not rows:
        return None
    columns = relation_columns(info, "steps", models.ProcessStep, STEP_NEEDS)
    steps = loaders.children(models.ProcessStep, "process_id", rows=True, columns=columns)
    groups = await steps.load_many([row.id for row in rows])
    if "agent" in names:
        agent_ids = list({step.agent_id for group in groups for step in group})
        await loaders.by_id(models.Agent, rows=True).load_many(agent_ids)
    return columns


@filter_input(ProcessFilter)
class ProcessFilterInput(FilterInput[ProcessFilter]):
    pass


@strawberry.type
class Query:
    @strawberry.field
    async def processes(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
        filter: ProcessFilterInput | None = None,
    ) -> Connection[Process]:
        filters = (filter or ProcessFilterInput()).to_filter()
        args = page_args(first, after, offset, info=info, model=models.Process, needs=NEEDS)
        page = await resolve.list_processes(info.context, filters, args)
        step_columns = await prefetch(info, page.rows)
        connection = Connection.of(page, Process.from_row)
        for node in connection._nodes:
            node._step_columns = step_columns
        return connection

    @strawberry.field
    async def process(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Process:
        return Process.from_row(await resolve.process(info.context, ident(id, number)))


@strawberry.type
class ExecutionTokens:
    access_token: str
    refresh_token: str
    expires_in: int


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Start a process of the workflow. With `wait`, return when it ends or after "
        "`waitTimeout` seconds; the same `idempotencyKey` within 24 h returns the same process."
    )
    async def execute_workflow(
        self,
        info: Info,
        id: uuid.UUID | None = None,
        number: int | None = None,
        input: JSON | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        wait_timeout: float = 30.0,
        trigger_id: uuid.UUID | None = None,
    ) -> Process:
        row = await resolve_execution.execute_workflow(
            info.context, ident(id, number), input, idempotency_key, wait, wait_timeout, trigger_id
        )
        return Process.from_row(row)

    @strawberry.mutation(description="Stop a process; its pending steps are cancelled.")
    async def cancel_process(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Process:
        return Process.from_row(
            await resolve_execution.cancel_process(info.context, ident(id, number))
        )

    @strawberry.mutation(
        description="Resume a failed or cancelled process from its failed steps; "
        "finished steps never run again."
    )
    async def retry_process(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Process:
        return Process.from_row(
            await resolve_execution.retry_process(info.context, ident(id, number))
        )

    @strawberry.mutation(
        description="Answer the caller waiting on the process's http trigger (status, headers, "
        "body); the first answer wins."
    )
    async def respond_to_http_trigger(
        self,
        info: Info,
        process_id: uuid.UUID | None = None,
        process_number: int | None = None,
        status: int = 200,
        headers: JSON | None = None,
        body: JSON | None = None,
    ) -> Process:
        ref = ident(process_id, process_number, "processId", "processNumber")
        row = await resolve_execution.respond_to_http_trigger(
            info.context, ref, status, headers, body
        )
        return Process.from_row(row)

    @strawberry.mutation(
        description="Rotate an execution refresh token: a new access and refresh token for the "
        "same process. Reusing a rotated refresh token revokes them all."
    )
    async def refresh_execution_token(self, info: Info, refresh_token: str) -> ExecutionTokens:
        pair = await resolve_execution.refresh_execution_token(info.context, refresh_token)
        return ExecutionTokens(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )

    @strawberry.mutation(
        description="A short-lived token scoped to the process and its workspace, with a refresh "
        "token (WayScript's WAYSCRIPT_EXECUTION_USER_TOKEN)."
    )
    async def issue_execution_token(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> ExecutionTokens:
        pair = await resolve_execution.issue_execution_token(info.context, ident(id, number))
        return ExecutionTokens(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )
