"""Scenarios (LetsFlow format) and the human-in-the-loop processes that run them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from flowql import models
from flowql.resolvers import scenarios as resolve
from flowql.schema import nodes
from flowql.schema.base import JSON, Connection, FromRow, Info, ident, page_args
from flowql.schema.filters import FilterInput, filter_input
from flowql.services.common import sees_row
from flowql.services.scenarios import ActionOutcome, ScenarioFilter, scenario_notices, scenario_yaml
from flowql.services.scenarios.history import project
from flowql.services.scenarios.normalize import is_end_state
from flowql.services.scenarios.process import parse_iso
from flowql.services.scenarios.state import matches

if TYPE_CHECKING:
    from flowql.schema.processes import Process

ProcessRef = Annotated["Process", strawberry.lazy("flowql.schema.processes")]


@strawberry.type(description="An actor of a scenario: its key and the schema of its record.")
class ScenarioActor:
    key: str
    title: str
    wildcard: bool
    schema: JSON


@strawberry.type
class ScenarioAction:
    key: str
    title: str
    description: JSON
    actors: JSON = strawberry.field(description="Actor keys, `*`, `service:NAME`, or a function.")
    response: JSON = strawberry.field(description="JSON Schema of the response.")


@strawberry.type
class ScenarioStateInfo:
    key: str
    title: str
    description: JSON
    is_end_state: bool
    instructions: JSON
    transitions: JSON
    notify: JSON


@strawberry.type(description="Something flowql keeps but does not act on, by its path.")
class ScenarioNotice:
    path: str
    message: str


@strawberry.type(description="A LetsFlow scenario, stored immutably; its id is its hash.")
class Scenario(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    name: str
    title: str
    description: str
    definition: JSON = strawberry.field(description="The normalised definition (LetsFlow JSON).")
    disabled: bool
    created_at: datetime

    @strawberry.field
    def version(self) -> str | None:
        version = self.definition.get("version")
        return str(version) if version is not None else None

    @strawberry.field
    def tags(self) -> list[str]:
        return list(self.definition.get("tags") or [])

    @strawberry.field
    def actors(self) -> list[ScenarioActor]:
        return [
            ScenarioActor(key=k, title=str(v.get("title", k)), wildcard=k.endswith("*"), schema=v)
            for k, v in self.definition["actors"].items()
        ]

    @strawberry.field
    def actions(self) -> list[ScenarioAction]:
        return [
            ScenarioAction(
                key=k,
                title=str(a.get("title", k)),
                description=a.get("description", ""),
                actors=a.get("actor"),
                response=a.get("response") or {},
            )
            for k, a in self.definition["actions"].items()
        ]

    @strawberry.field
    def states(self) -> list[ScenarioStateInfo]:
        return [
            ScenarioStateInfo(
                key=k,
                title=str(s.get("title", k)),
                description=s.get("description", ""),
                is_end_state=is_end_state(k, s),
                instructions=s.get("instructions") or {},
                transitions=s.get("transitions") or [],
                notify=s.get("notify") or [],
            )
            for k, s in self.definition["states"].items()
        ]

    @strawberry.field(description="The definition as YAML; storing it again gives the same id.")
    def yaml(self) -> str:
        return scenario_yaml(self.definition)

    @strawberry.field
    def notices(self) -> list[ScenarioNotice]:
        return [
            ScenarioNotice(path=p, message=m) for p, m in scenario_notices(self.definition).items()
        ]

    @strawberry.field(description="The scenario's newest processes, newest first.")
    async def processes(self, info: Info, last: int = 10) -> list[ProcessRef]:
        last = max(0, min(last, 100))
        loader = info.context.loaders.latest(models.Process, "scenario_id")
        rows = await loader.load((self.id, last))
        return nodes.process().from_rows([r for r in rows if sees_row(info.context.principal, r)])


@strawberry.type(description="An action that may be performed now, and who may perform it.")
class AvailableAction:
    key: str
    title: str
    description: JSON
    actors: list[str]
    response: JSON
    data: JSON = strawberry.field(description="The whole instantiated action (LetsFlow JSON).")


@strawberry.type(description="A scenario process's current state, instantiated.")
class CurrentState:
    key: str
    title: str
    description: JSON
    instructions: JSON = strawberry.field(description="Instructions by actor key.")
    actions: list[AvailableAction]
    notify: JSON
    timestamp: datetime
    is_end_state: bool
    data: JSON = strawberry.field(description="The whole current state (LetsFlow JSON).")

    @strawberry.field(description="The instructions for one actor (wildcard keys apply).")
    def instructions_for(self, actor: str) -> JSON | None:
        instructions = self.instructions or {}
        if actor in instructions:
            return instructions[actor]
        return next((v for k, v in instructions.items() if matches(k, actor)), None)

    @classmethod
    def of(cls, view: dict[str, Any]) -> CurrentState:
        current = view["current"]
        key = current["key"]
        return cls(
            key=key,
            title=str(current.get("title", key)),
            description=current.get("description", ""),
            instructions=current.get("instructions") or {},
            actions=[
                AvailableAction(
                    key=a["key"],
                    title=str(a.get("title", a["key"])),
                    description=a.get("description", ""),
                    actors=list(a.get("actor") or []),
                    response=a.get("response") or {},
                    data=a,
                )
                for a in current.get("actions", [])
            ],
            notify=current.get("notify") or [],
            timestamp=parse_iso(current["timestamp"]),
            is_end_state=is_end_state(key, view["scenario"]["states"][key]),
            data=current,
        )


@strawberry.type(description="One event of a scenario process's hash-chained history.")
class ProcessHistoryEvent(FromRow):
    id: uuid.UUID
    number: int
    process_id: uuid.UUID
    type: str
    action: str | None
    actor: JSON | None
    response: JSON | None
    skipped: bool
    errors: list[str]
    previous_hash: str
    hash: str
    created_at: datetime


@strawberry.type
class PerformActionResult:
    process: ProcessRef
    event: ProcessHistoryEvent

    @classmethod
    def of(cls, outcome: ActionOutcome) -> PerformActionResult:
        return cls(
            process=nodes.process().from_row(outcome.process),
            event=ProcessHistoryEvent.from_row(outcome.event),
        )


@strawberry.type(description="Whether a process's history is intact.")
class ProcessVerification:
    valid: bool
    events: int
    broken_at: int | None = strawberry.field(description="Index of the first broken event.")
    event_id: uuid.UUID | None
    reason: str | None


# -- the scenario side of Process (fields added to the Process type) ------------------------


async def process_view(
    info: Info, process_id: uuid.UUID, scenario_id: uuid.UUID | None
) -> dict[str, Any] | None:
    """The process's projection (LetsFlow process JSON), replayed from its history."""
    if scenario_id is None:
        return None
    loaders = info.context.loaders
    process = await loaders.by_id(models.Process).load(process_id)
    scenario = await loaders.by_id(models.Scenario).load(scenario_id)
    rows = await loaders.children(models.ProcessEvent, "process_id").load(process_id)
    if process is None or scenario is None or not rows:
        return None
    return project(scenario, process, rows)


async def projection(
    info: Info, process_id: uuid.UUID, scenario_id: uuid.UUID | None
) -> JSON | None:
    return await process_view(info, process_id, scenario_id)


async def current_state(
    info: Info, process_id: uuid.UUID, scenario_id: uuid.UUID | None
) -> CurrentState | None:
    view = await process_view(info, process_id, scenario_id)
    return None if view is None else CurrentState.of(view)


async def previous_log(
    info: Info, process_id: uuid.UUID, scenario_id: uuid.UUID | None
) -> list[JSON]:
    view = await process_view(info, process_id, scenario_id)
    return [] if view is None else list(view["previous"])


async def history(info: Info, process_id: uuid.UUID) -> list[ProcessHistoryEvent]:
    rows = await info.context.loaders.children(models.ProcessEvent, "process_id").load(process_id)
    return ProcessHistoryEvent.from_rows(rows)


async def process_scenario(info: Info, scenario_id: uuid.UUID | None) -> Scenario | None:
    if scenario_id is None:
        return None
    return Scenario.maybe(await info.context.loaders.by_id(models.Scenario).load(scenario_id))


# -- inputs ----------------------------------------------------------------------------------


@filter_input(ScenarioFilter)
class ScenarioFilterInput(FilterInput[ScenarioFilter]):
    pass


@strawberry.input(description="An action: its key, the response, and As-Actor when needed.")
class ProcessActionInput:
    key: str
    response: JSON | None = None
    actor: str | None = strawberry.field(
        default=None, description="As-Actor: the actor key to act as, when it is ambiguous."
    )


@strawberry.input
class StartProcessInput:
    scenario_id: uuid.UUID
    actors: JSON | None = strawberry.field(
        default=None, description="Actor key -> {id?, title?, userId?, ...properties}."
    )
    vars: JSON | None = None
    action: ProcessActionInput | None = None


@strawberry.input
class PerformActionInput:
    process_id: uuid.UUID
    action: str
    actor: str | None = strawberry.field(
        default=None, description="As-Actor: required when you could act as several actors."
    )
    response: JSON | None = None


@strawberry.type
class Query:
    @strawberry.field
    async def scenarios(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
        filter: ScenarioFilterInput | None = None,
    ) -> Connection[Scenario]:
        filters = (filter or ScenarioFilterInput()).to_filter()
        page = await resolve.list_scenarios(info.context, filters, page_args(first, after, offset))
        return Connection.of(page, Scenario.from_row)

    @strawberry.field
    async def scenario(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Scenario:
        return Scenario.from_row(await resolve.scenario(info.context, ident(id, number)))

    @strawberry.field(description="Check a scenario process's hash-chained history.")
    async def verify_process(self, info: Info, id: uuid.UUID) -> ProcessVerification:
        result = await resolve.verify_process(info.context, id)
        return ProcessVerification(
            valid=result.valid,
            events=result.events,
            broken_at=result.broken_at,
            event_id=result.event_id,
            reason=result.reason,
        )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Store a scenario (JSON or YAML); idempotent.")
    async def store_scenario(
        self,
        info: Info,
        workspace_id: uuid.UUID | None = None,
        definition: JSON | None = None,
        yaml: str | None = None,
    ) -> Scenario:
        row = await resolve.store_scenario(info.context, workspace_id, definition, yaml)
        return Scenario.from_row(row)

    @strawberry.mutation(description="Stop new processes of a scenario; running ones go on.")
    async def disable_scenario(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Scenario:
        return Scenario.from_row(await resolve.disable_scenario(info.context, ident(id, number)))

    @strawberry.mutation(description="Start a process of a scenario, optionally with an action.")
    async def start_process(self, info: Info, input: StartProcessInput) -> ProcessRef:
        action = input.action
        outcome = await resolve.start_process(
            info.context,
            input.scenario_id,
            actors=input.actors,
            vars=input.vars,
            action=action.key if action else None,
            actor=action.actor if action else None,
            response=action.response if action else None,
        )
        return nodes.process().from_row(outcome.process)

    @strawberry.mutation(
        description="Perform an action. A refused action is recorded as a skipped event and "
        "answered with VALIDATION_ERROR (its reasons in extensions.fields and .reasons)."
    )
    async def perform_action(self, info: Info, input: PerformActionInput) -> PerformActionResult:
        outcome = await resolve.perform_action(
            info.context, input.process_id, input.action, input.actor, input.response
        )
        return PerformActionResult.of(outcome)
