"""Workflows, agents, messages, triggers and events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from flowql import models
from flowql.errors import ValidationFailed
from flowql.formats.huginn import export_filename
from flowql.resolvers import workflows as resolve
from flowql.schema import nodes
from flowql.schema.base import JSON, Connection, FromRow, Info, ident, page_args, when_loaded
from flowql.schema.documents import context_only
from flowql.schema.filters import FilterInput, filter_input
from flowql.schema.messages import Message
from flowql.services.common import sees_row
from flowql.services.triggers import TriggerMode, trigger_mode, trigger_url
from flowql.services.workflows import AgentSpec, WorkflowFilter, redact_options

if TYPE_CHECKING:
    from flowql.schema.processes import Process
    from flowql.schema.workspaces import Workspace

strawberry.enum(models.WorkflowStatus, name="WorkflowStatus")
strawberry.enum(models.TriggerType, name="TriggerType")
strawberry.enum(TriggerMode, name="TriggerMode")
WorkflowStatus = models.WorkflowStatus
TriggerType = models.TriggerType

ProcessConn = Annotated["Process", strawberry.lazy("flowql.schema.processes")]
WorkspaceRef = Annotated["Workspace", strawberry.lazy("flowql.schema.workspaces")]


@nodes.register
@strawberry.type
class Agent(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID
    name: str
    type: str
    disabled: bool
    keep_messages_for: int | None
    max_retries: int
    timeout_seconds: float | None
    created_at: datetime
    updated_at: datetime | None
    raw_options: strawberry.Private[JSON]
    schedule: str | None = None
    propagate_immediately: bool = True
    memory: JSON = strawberry.field(
        default_factory=dict, description="What the agent remembers across runs."
    )

    @classmethod
    def from_row(cls, row: Any) -> Agent:
        return cls(
            id=row.id,
            number=row.number or 0,
            workspace_id=row.workspace_id,
            workflow_id=row.workflow_id,
            name=row.name,
            type=row.type,
            disabled=row.disabled,
            keep_messages_for=row.keep_messages_for,
            max_retries=row.max_retries,
            timeout_seconds=row.timeout_seconds,
            created_at=row.created_at,
            updated_at=row.updated_at,
            raw_options=row.options,
            schedule=row.schedule,
            propagate_immediately=row.propagate_immediately,
            memory=row.memory,
        )

    @strawberry.field(description="The agent's options; secret values are shown as ********.")
    def options(self) -> JSON:
        return redact_options(self.type, self.raw_options)

    @strawberry.field
    async def workflow(self, info: Info) -> Workflow | None:
        row = await info.context.loaders.by_id(models.Workflow).load(self.workflow_id)
        return Workflow.maybe(row)

    @strawberry.field(description="The agents this agent receives messages from.")
    async def sources(self, info: Info) -> list[Agent]:
        return Agent.from_rows(await info.context.loaders.agent_sources().load(self.id))

    @strawberry.field(description="The agents that receive this agent's messages.")
    async def receivers(self, info: Info) -> list[Agent]:
        return Agent.from_rows(await info.context.loaders.agent_receivers().load(self.id))

    @strawberry.field
    async def messages_count(self, info: Info) -> int:
        count: int = await info.context.loaders.count(models.Message, "agent_id").load(self.id)
        return count

    @strawberry.field(description="The agent's newest messages, newest first.")
    async def messages(self, info: Info, last: int = 5) -> list[Message]:
        last = max(0, min(last, 100))
        rows = await info.context.loaders.latest(models.Message, "agent_id").load((self.id, last))
        return Message.from_rows([r for r in rows if sees_row(info.context.principal, r)])


@strawberry.type
class Trigger(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID
    agent_id: uuid.UUID | None
    type: TriggerType
    name: str
    active: bool
    path: str | None
    settings: JSON
    outputs: list[str]
    next_run_at: datetime | None
    last_fired_at: datetime | None
    created_at: datetime
    test_event: str = strawberry.field(description="A sample event to test the trigger with.")
    command: str = strawberry.field(description="The command the trigger runs (WayScript).")
    integration_id: uuid.UUID | None = strawberry.field(
        description="The integration the trigger listens through, if any."
    )
    archived_at: datetime | None

    @strawberry.field(
        description="The full address that fires it: /hooks/{workflow}/{path} of a webhook or "
        "http trigger, the public page of a form trigger's form; null for other triggers."
    )
    def url(self, info: Info) -> str | None:
        return trigger_url(
            info.context.runtime.settings.base_url, self.type, self.workflow_id, self.path
        )

    @strawberry.field(
        description="How an HTTP trigger answers: a webhook at once (202 and the process id), "
        "an http trigger when a respond agent answers; null for other triggers."
    )
    def mode(self) -> TriggerMode | None:
        return trigger_mode(self.type)

    @strawberry.field(
        description="What the trigger routes by and hands on: {name, type, path, outputs, active}."
    )
    def data(self) -> JSON:
        return {
            "name": self.name,
            "type": self.type.value,
            "path": self.path,
            "outputs": list(self.outputs),
            "active": self.active,
        }


@strawberry.type
class Event(FromRow):
    id: uuid.UUID
    number: int
    trigger_id: uuid.UUID | None
    trigger_type: str
    data: JSON
    meta: JSON
    created_at: datetime


@strawberry.type
class Workflow(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    name: str
    description: str
    status: WorkflowStatus
    variables: JSON
    manager_id: uuid.UUID | None
    is_public: bool
    endpoints_are_private: bool
    default_path: str
    environment: str
    created_at: datetime
    updated_at: datetime | None
    last_run_at: datetime | None
    last_deployed_at: datetime | None

    @strawberry.field
    @context_only
    def agents(self, info: Info) -> list[Agent]:
        loader = info.context.loaders.children(models.Agent, "workflow_id", rows=True)
        return when_loaded(loader.load(self.id), Agent.from_rows)

    @strawberry.field
    async def triggers(self, info: Info) -> list[Trigger]:
        loader = info.context.loaders.children(models.Trigger, "workflow_id", rows=True)
        return Trigger.from_rows(await loader.load(self.id))

    @strawberry.field(description="The workflow's newest processes, newest first.")
    async def processes(self, info: Info, last: int = 10) -> list[ProcessConn]:
        last = max(0, min(last, 100))
        loader = info.context.loaders.latest(models.Process, "workflow_id")
        rows = await loader.load((self.id, last))
        return nodes.process().from_rows([r for r in rows if sees_row(info.context.principal, r)])

    @strawberry.field(
        description="The workflow in Huginn's scenario export format (ActiveWorkflow's export); "
        "secret options are left out. `importWorkflow` takes it back."
    )
    async def export_definition(self, info: Info) -> JSON:
        return await resolve.export_workflow(info.context, self.id)

    @strawberry.field(description="The file name an export is downloaded as.")
    def export_filename(self) -> str:
        return export_filename(self.name)

    @strawberry.field
    async def workspace(self, info: Info) -> WorkspaceRef | None:
        from flowql.schema.workspaces import Workspace

        row = await info.context.loaders.by_id(models.Workspace).load(self.workspace_id)
        return Workspace.maybe(row)


# The columns a Workflow's resolver fields read (for lists that fetch only what is selected).
NEEDS = {
    "agents": (),
    "triggers": (),
    "processes": (),
    "export_definition": (),
    "export_filename": ("name",),
    "workspace": ("workspace_id",),
}


# -- inputs ------------------------------------------------------------------------------------


@filter_input(WorkflowFilter)
class WorkflowFilterInput(FilterInput[WorkflowFilter]):
    pass


def options_object(options: JSON | None) -> dict[str, Any]:
    if options is not None and not isinstance(options, dict):
        raise ValidationFailed.one("options", "must be an object")
    return dict(options or {})


@strawberry.input(description="An agent inside a workflow input; sources name other agents.")
class WorkflowAgentInput:
    name: str
    type: str
    options: JSON | None = None
    sources: list[str] = strawberry.field(default_factory=list)
    disabled: bool = False
    keep_messages_for: int | None = None
    max_retries: int = 0
    timeout_seconds: float | None = None
    schedule: str | None = strawberry.field(
        default=None,
        description="Huginn schedule: every_1m..every_7d, midnight, noon, 1am..11pm, never.",
    )
    propagate_immediately: bool = True
    controls: list[str] = strawberry.field(
        default_factory=list, description="Names of the agents this one controls."
    )

    def spec(self) -> AgentSpec:
        return AgentSpec(
            name=self.name,
            type=self.type,
            options=options_object(self.options),
            sources=list(self.sources),
            disabled=self.disabled,
            keep_messages_for=self.keep_messages_for,
            max_retries=self.max_retries,
            timeout_seconds=self.timeout_seconds,
            schedule=self.schedule,
            propagate_immediately=self.propagate_immediately,
            controls=list(self.controls),
        )


@strawberry.input
class CreateWorkflowInput:
    name: str
    workspace_id: uuid.UUID | None = None
    description: str = ""
    status: WorkflowStatus = models.WorkflowStatus.DRAFT
    variables: JSON | None = None
    agents: list[WorkflowAgentInput] | None = None


@strawberry.input
class UpdateWorkflowInput:
    name: str | None = None
    description: str | None = None
    status: WorkflowStatus | None = None
    variables: JSON | None = None
    agents: list[WorkflowAgentInput] | None = strawberry.field(
        default=None, description="Replaces the whole graph, matching agents by name."
    )


@strawberry.input
class CreateAgentInput:
    workflow_id: uuid.UUID | None = None
    workflow_number: int | None = None
    name: str
    type: str
    options: JSON | None = None
    source_ids: list[uuid.UUID] | None = None
    disabled: bool = False
    keep_messages_for: int | None = None
    max_retries: int = 0
    timeout_seconds: float | None = None
    schedule: str | None = strawberry.field(
        default=None,
        description="Huginn schedule: every_1m..every_7d, midnight, noon, 1am..11pm, never.",
    )
    propagate_immediately: bool = True


@strawberry.input
class UpdateAgentInput:
    name: str | None = None
    type: str | None = None
    options: JSON | None = None
    source_ids: list[uuid.UUID] | None = None
    disabled: bool | None = None
    keep_messages_for: int | None = None
    max_retries: int | None = None
    timeout_seconds: float | None = None
    schedule: str | None = strawberry.field(
        default=None, description='A Huginn schedule; "never" removes it.'
    )
    propagate_immediately: bool | None = None


def _specs(agents: list[WorkflowAgentInput] | None) -> list[AgentSpec] | None:
    return None if agents is None else [a.spec() for a in agents]


@strawberry.type
class Query:
    @strawberry.field
    async def workflows(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
        filter: WorkflowFilterInput | None = None,
    ) -> Connection[Workflow]:
        filters = (filter or WorkflowFilterInput()).to_filter()
        args = page_args(first, after, offset, info=info, model=models.Workflow, needs=NEEDS)
        page = await resolve.list_workflows(info.context, filters, args)
        return Connection.of(page, Workflow.from_row)

    @strawberry.field
    async def workflow(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Workflow:
        return Workflow.from_row(await resolve.workflow(info.context, ident(id, number)))

    @strawberry.field
    async def agent(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Agent:
        return Agent.from_row(await resolve.agent(info.context, ident(id, number)))


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_workflow(self, info: Info, input: CreateWorkflowInput) -> Workflow:
        row = await resolve.create_workflow(
            info.context,
            _specs(input.agents),
            workspace_id=input.workspace_id,
            name=input.name,
            description=input.description,
            status=input.status,
            variables=input.variables,
        )
        return Workflow.from_row(row)

    @strawberry.mutation
    async def update_workflow(
        self,
        info: Info,
        id: uuid.UUID | None = None,
        number: int | None = None,
        *,
        input: UpdateWorkflowInput,
    ) -> Workflow:
        row = await resolve.update_workflow(
            info.context,
            ident(id, number),
            _specs(input.agents),
            name=input.name,
            description=input.description,
            status=input.status,
            variables=input.variables,
        )
        return Workflow.from_row(row)

    @strawberry.mutation(description="Create a workflow from an export (Huginn scenario format).")
    async def import_workflow(
        self,
        info: Info,
        definition: JSON,
        workspace_id: uuid.UUID | None = None,
        publish: Annotated[
            bool,
            strawberry.argument(
                description="Publish at once (its triggers and schedules fire, as after an "
                "import into Huginn); by default the workflow is a draft."
            ),
        ] = False,
    ) -> Workflow:
        row = await resolve.import_workflow(info.context, workspace_id, definition, publish)
        return Workflow.from_row(row)

    @strawberry.mutation
    async def delete_workflow(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Workflow:
        return Workflow.from_row(await resolve.delete_workflow(info.context, ident(id, number)))

    @strawberry.mutation
    async def create_agent(self, info: Info, input: CreateAgentInput) -> Agent:
        spec = AgentSpec(
            name=input.name,
            type=input.type,
            options=options_object(input.options),
            disabled=input.disabled,
            keep_messages_for=input.keep_messages_for,
            max_retries=input.max_retries,
            timeout_seconds=input.timeout_seconds,
            schedule=input.schedule,
            propagate_immediately=input.propagate_immediately,
        )
        workflow = workflow_ref(input.workflow_id, input.workflow_number)
        row = await resolve.create_agent(info.context, workflow, spec, input.source_ids)
        return Agent.from_row(row)

    @strawberry.mutation
    async def update_agent(
        self,
        info: Info,
        id: uuid.UUID | None = None,
        number: int | None = None,
        *,
        input: UpdateAgentInput,
    ) -> Agent:
        row = await resolve.update_agent(
            info.context,
            ident(id, number),
            name=input.name,
            type=input.type,
            options=input.options,
            source_ids=input.source_ids,
            disabled=input.disabled,
            keep_messages_for=input.keep_messages_for,
            max_retries=input.max_retries,
            timeout_seconds=input.timeout_seconds,
            schedule=input.schedule,
            propagate_immediately=input.propagate_immediately,
        )
        return Agent.from_row(row)

    @strawberry.mutation
    async def delete_agent(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Agent:
        return Agent.from_row(await resolve.delete_agent(info.context, ident(id, number)))


def workflow_ref(id: uuid.UUID | None, number: int | None) -> uuid.UUID | int:
    """An input's workflow, by `workflowId` or `workflowNumber`."""
    return ident(id, number, "workflowId", "workflowNumber")
