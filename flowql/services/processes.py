"""Processes, of every kind: one `start_process` (a workflow's or a scenario's), cancelling,
retrying, answering an `http` trigger, and reading them.

A workflow process is run by the engine (flowql/engine/runner.py) once started here; a scenario
process is a state machine moved by actions (its code is in services/scenarios/, whose
`runner.start_scenario` `start_process` calls for a `ScenarioStart`).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from pydantic_core import PydanticUndefined
from sqlalchemy import String, cast
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel, col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal
from flowql.db import HOT
from flowql.errors import ValidationFailed
from flowql.events.bus import BusEvent
from flowql.models import (
    TERMINAL_STATUSES,
    Agent,
    AgentSource,
    ApiKey,
    AuditAction,
    Event,
    Form,
    FormSubmission,
    LogLevel,
    Process,
    ProcessLog,
    ProcessStatus,
    ProcessStep,
    StepStatus,
    Trigger,
    TriggerType,
    User,
    Workflow,
    utcnow,
)
from flowql.services import audit, outbox
from flowql.services.common import apply_common_filters, get_visible, visible
from flowql.services.delegation import process_privileges
from flowql.services.runtime import Runtime
from flowql.services.scenarios.runner import ActionOutcome, start_scenario
from flowql.services.triggers import fires
from flowql.services.uow import UnitOfWork
from flowql.services.workflows import get_workflow

IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass
class ProcessFilter:
    workspace_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    # The workflow by its number (REST routes address objects by number).
    workflow_number: int | None = None
    scenario_id: uuid.UUID | None = None
    statuses: list[ProcessStatus] = field(default_factory=list)
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    scenario_processes: bool | None = field(
        default=None,
        metadata={"description": "true: only scenario processes; false: only workflow ones."},
    )
    # LetsFlow's GET /processes.
    involving_me: bool = field(
        default=False,
        metadata={
            "description": "Only scenario processes where your user is an actor (an actor "
            "record's `id` or `userId`); a scope-limited API key sees its scenarios' processes."
        },
    )


def _actor_user(principal: Principal) -> uuid.UUID | None:
    """Whose actor records `involving_me` looks for: the caller's user, except for a
    scope-limited key, which acts as its scoped actors (its scenarios limit it instead)."""
    if principal.is_scope_limited:
        return None
    return principal.user_id


def list_statement(principal: Principal, filters: ProcessFilter) -> SelectOfScalar[Process]:
    stmt = visible(principal, Process, "process:read", filters.workspace_id)
    if filters.workflow_id is not None:
        stmt = stmt.where(col(Process.workflow_id) == filters.workflow_id)
    if filters.workflow_number is not None:
        by_number = select(Workflow.id).where(col(Workflow.number) == filters.workflow_number)
        stmt = stmt.where(col(Process.workflow_id).in_(by_number))
    if filters.scenario_id is not None:
        stmt = stmt.where(col(Process.scenario_id) == filters.scenario_id)
    if filters.statuses:
        stmt = stmt.where(col(Process.status).in_(filters.statuses))
    if filters.scenario_processes is not None or filters.involving_me:
        column = col(Process.scenario_id)
        only_scenarios = filters.involving_me or bool(filters.scenario_processes)
        stmt = stmt.where(column.is_not(None) if only_scenarios else column.is_(None))
    user_id = _actor_user(principal) if filters.involving_me else None
    if user_id is not None:
        # An actor record names its user by `id` or `userId` (services.scenarios.access).
        actors = cast(col(Process.actors), String)
        stmt = stmt.where(actors.contains(f'"{user_id}"', autoescape=True))
    return apply_common_filters(
        stmt,
        Process,
        search=filters.search,
        search_column="title",
        created_after=filters.created_after,
        created_before=filters.created_before,
    )


async def get_process(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    privilege: str = "process:read",
) -> Process:
    """A scope-limited key gets FORBIDDEN for a process of its workspace outside its scopes
    (services/common.py confines every read of processes and what belongs to them)."""
    return await get_visible(session, principal, Process, ident, privilege, "Process")


@dataclass
class StartRequest:
    """A workflow process to start (`start_process`)."""

    workflow: Workflow
    input: dict[str, Any]
    trigger: Trigger | None = None
    idempotency_key: str | None = None
    user_id: uuid.UUID | None = None
    event_data: dict[str, Any] | None = None
    event_meta: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    # What the process may do (services/delegation.py); start_process works it out when None.
    privileges: list[str] | None = None
    # What the starting credential holds in the workspace (an API key may hold less than its
    # owner's role); None when nobody's credential starts it.
    starter_grants: frozenset[str] | None = None


def process_summary(process: Process) -> dict[str, Any]:
    return {
        "id": str(process.id),
        "number": process.number,
        "workflow_id": str(process.workflow_id) if process.workflow_id else None,
        "status": process.status.value,
        "output": process.output,
        "error": process.error,
        "created_at": process.created_at.isoformat(),
        "completed_at": process.completed_at.isoformat() if process.completed_at else None,
    }


def process_event(process: Process, **extra: Any) -> BusEvent:
    return BusEvent(
        id=new_id(),
        topic="process.updated",
        workspace_id=process.workspace_id,
        data={
            "process_id": str(process.id),
            "workflow_id": str(process.workflow_id) if process.workflow_id else None,
            "scenario_id": str(process.scenario_id) if process.scenario_id else None,
            "status": process.status.value,
            "state": process.state,
            **extra,
        },
    )


def publish_process(uow: UnitOfWork, process: Process, **extra: Any) -> None:
    uow.events.append(process_event(process, **extra))


async def _entry_agents(
    uow: UnitOfWork, workflow: Workflow, trigger: Trigger | None
) -> list[Agent]:
    """Where a process starts: the trigger that fired; else the manual trigger; else the
    agents nothing feeds; else the first trigger of another kind."""
    if trigger is not None:
        agent = (await uow.session.exec(select(Agent).where(Agent.id == trigger.agent_id))).first()
        return [agent] if agent is not None and not agent.disabled else []
    agents = list(
        (
            await uow.session.exec(
                select(Agent).where(Agent.workflow_id == workflow.id).order_by(col(Agent.number))
            )
        ).all()
    )
    manual = [a for a in agents if a.type == TriggerType.MANUAL and not a.disabled]
    if manual:
        return manual[:1]
    ids = [a.id for a in agents]
    receivers = set(
        (
            await uow.session.exec(
                select(AgentSource.receiver_id).where(col(AgentSource.receiver_id).in_(ids))
            )
        ).all()
    )
    trigger_types = {t.value for t in TriggerType}
    roots = [
        a
        for a in agents
        if a.id not in receivers and not a.disabled and a.type not in trigger_types
    ]
    if roots:
        return roots
    # Only other kinds of trigger: run as if the first of them had fired with this input.
    return [a for a in agents if a.type in trigger_types and not a.disabled][:1]


async def find_idempotent(
    session: AsyncSession, workspace_id: uuid.UUID, key: str
) -> Process | None:
    if len(key) > 200:
        raise ValidationFailed.one("idempotencyKey", "must be at most 200 characters")
    stmt = (
        select(Process)
        .where(Process.workspace_id == workspace_id)
        .where(Process.idempotency_key == key)
        .where(col(Process.created_at) >= utcnow() - IDEMPOTENCY_WINDOW)
        .order_by(col(Process.number).desc())
    )
    return (await session.exec(stmt)).first()


class _RandomPool(threading.local):
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.bytes = b""
        self.at = 0


_random = _RandomPool()
os.register_at_fork(after_in_child=_random.reset)  # a forked child draws its own bytes


def new_id() -> uuid.UUID:
    """`uuid.uuid4()` without a system call per id: the same 16 random bytes from the OS, drawn
    4 KiB at a time (per thread; a forked child starts afresh). A run makes ~30 ids, and each
    `os.urandom` releases the GIL, so under load the event loop waited for the writer thread on
    every one of them."""
    pool = _random
    at = pool.at
    if at + 16 > len(pool.bytes):
        pool.bytes = os.urandom(4096)
        at = 0
    pool.at = at + 16
    return uuid.UUID(bytes=pool.bytes[at : at + 16], version=4)


_FIELDS: dict[type[SQLModel], list[tuple[str, Any, Callable[[], Any] | None]]] = {}


def new_row(model: type[SQLModel], **given: Any) -> dict[str, Any]:
    """A row to INSERT as a plain dict, defaults filled in as the model declares them. Building
    a table model instance costs far more (pydantic inspects every default factory's signature
    on each call), and a run makes several rows per step."""
    fields = _FIELDS.get(model)
    if fields is None:
        fields = _FIELDS[model] = [
            (
                name,
                info.default,
                new_id if info.default_factory is uuid.uuid4 else info.default_factory,  # type: ignore[misc]
            )
            for name, info in model.model_fields.items()
            if name != "number"
        ]
    row = {}
    for name, default, factory in fields:
        if name in given:
            row[name] = given[name]
        elif factory is not None:
            row[name] = factory()
        elif default is PydanticUndefined:
            raise TypeError(f"{model.__name__}.{name} is required")
        else:
            row[name] = default
    return row


M = TypeVar("M", bound=SQLModel)


def construct(model: type[M], **given: Any) -> M:
    """A new (transient) table model instance with `given` and the declared defaults, as
    `model(**given)` makes it but at a fraction of the cost: no pydantic default-factory
    inspection, no instrumented set per attribute. For rows the engine builds per request and
    never adds to a session (they are written by a write set)."""
    instance: M = model._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    values = new_row(model, **given)
    values.setdefault("number", given.get("number"))
    instance.__dict__.update(values)
    return instance


def new_process(request: StartRequest) -> tuple[Event, Process]:
    """The Event and the PENDING Process a start writes (not yet added to any session)."""
    workflow = request.workflow
    trigger = request.trigger
    event = construct(
        Event,
        workspace_id=workflow.workspace_id,
        trigger_id=trigger.id if trigger else None,
        trigger_type=trigger.type.value if trigger else TriggerType.MANUAL.value,
        data=request.event_data if request.event_data is not None else request.input,
        meta=request.event_meta,
    )
    process = construct(
        Process,
        workspace_id=workflow.workspace_id,
        workflow_id=workflow.id,
        trigger_id=trigger.id if trigger else None,
        event_id=event.id,
        user_id=request.user_id,
        title=request.title or workflow.name,
        input=request.input,
        idempotency_key=request.idempotency_key,
        last_activity_at=event.created_at,
        privileges=request.privileges,
    )
    return event, process


@dataclass
class ScenarioStart:
    """A scenario process to start (`start_process`): WAITING in its initial state, or after
    `action` if one is given, as `principal` (who must hold `process:run`)."""

    principal: Principal
    scenario: uuid.UUID | int
    actors: Any = None
    vars: Any = None
    action: str | None = None
    actor: str | None = None
    response: Any = None


@overload
async def start_process(
    uow: UnitOfWork, runtime: Runtime, request: StartRequest
) -> tuple[Process, bool]: ...


@overload
async def start_process(
    uow: UnitOfWork, runtime: Runtime, request: ScenarioStart
) -> ActionOutcome: ...


async def start_process(
    uow: UnitOfWork, runtime: Runtime, request: StartRequest | ScenarioStart
) -> tuple[Process, bool] | ActionOutcome:
    """Start a process of either kind, in the caller's unit of work.

    A workflow's (`StartRequest`): stored PENDING with its event and handed to the dispatcher
    after commit; returns (process, created), an idempotency key seen within 24 h returning the
    earlier process. A scenario's (`ScenarioStart`): stored WAITING with its first event (and the
    first action's, if given); returns the ActionOutcome, and raises ActionSkipped, storing
    nothing, when that first action is refused.
    """
    if isinstance(request, ScenarioStart):
        return await start_scenario(
            uow,
            runtime,
            request.principal,
            request.scenario,
            actors=request.actors,
            vars=request.vars,
            action=request.action,
            actor=request.actor,
            response=request.response,
        )
    return await _start_workflow(uow, runtime, request)


async def _start_workflow(
    uow: UnitOfWork, runtime: Runtime, request: StartRequest
) -> tuple[Process, bool]:
    workflow = request.workflow
    if request.idempotency_key:
        earlier = await find_idempotent(uow.session, workflow.workspace_id, request.idempotency_key)
        if earlier is not None:
            return earlier, False
    trigger = request.trigger
    event, process = new_process(request)
    now = process.last_activity_at
    uow.session.add(event)
    if process.privileges is None:
        privileges = await process_privileges(uow.session, workflow, request.user_id)
        if request.starter_grants is not None:
            privileges = [p for p in privileges if p in request.starter_grants]
        process.privileges = privileges
    uow.session.add(process)
    await uow.session.flush()
    for agent in await _entry_agents(uow, workflow, trigger):
        uow.session.add(
            ProcessStep(
                workspace_id=workflow.workspace_id, process_id=process.id, agent_id=agent.id
            )
        )
    # Last-run times as statements of their own, marked HOT: they change nothing the engine
    # caches (db.PlanClock), so a run does not make every hook plan and definition stale. An
    # instance in this session gets the value as if loaded (nothing left for it to flush).
    await uow.session.exec(
        update(Workflow)
        .where(col(Workflow.id) == workflow.id)
        .values(last_run_at=now)
        .execution_options(**{HOT: True})
    )
    if workflow in uow.session:
        set_committed_value(workflow, "last_run_at", now)
    if trigger is not None:
        await uow.session.exec(
            update(Trigger)
            .where(col(Trigger.id) == trigger.id)
            .values(last_fired_at=now)
            .execution_options(**{HOT: True})
        )
        if trigger in uow.session:
            set_committed_value(trigger, "last_fired_at", now)
    await outbox.enqueue(
        uow.session,
        workflow.workspace_id,
        "workflow.executed",
        {"workflow_id": str(workflow.id), "process": process_summary(process)},
    )
    await uow.session.flush()
    publish_process(uow, process)
    process_id = process.id
    await runtime.dispatcher.defer(uow.session, process_id)

    async def submit() -> None:
        await runtime.dispatcher.submit(process_id)

    uow.after_commit.append(submit)
    return process, True


async def _schedule_payload(
    uow: UnitOfWork, workflow: Workflow, trigger: Trigger | None
) -> dict[str, Any]:
    """A manual run that starts at a schedule trigger gets what the schedule would send (its
    `payload` option); the input given is laid over it."""
    if trigger is not None:
        if trigger.type is not TriggerType.SCHEDULE:
            return {}
        payload = trigger.settings.get("payload")
        return dict(payload) if isinstance(payload, dict) else {}
    entry = await _entry_agents(uow, workflow, None)
    if len(entry) == 1 and entry[0].type == TriggerType.SCHEDULE:
        payload = entry[0].options.get("payload")
        return dict(payload) if isinstance(payload, dict) else {}
    return {}


async def execute_workflow(
    uow: UnitOfWork,
    runtime: Runtime,
    principal: Principal,
    workflow_ident: uuid.UUID | int,
    input: dict[str, Any] | None,
    idempotency_key: str | None = None,
    trigger_id: uuid.UUID | None = None,
) -> tuple[Process, bool]:
    """Run a workflow now: at its manual trigger (or root agents), or at the trigger given."""
    workflow = await get_workflow(uow.session, principal, workflow_ident, "workflow:read")
    principal.require(workflow.workspace_id, "process:run", "Workflow")
    if input is not None and not isinstance(input, dict):
        raise ValidationFailed.one("input", "must be a JSON object")
    trigger = None
    if trigger_id is not None:
        trigger = (
            await uow.session.exec(
                select(Trigger)
                .where(Trigger.id == trigger_id)
                .where(Trigger.workflow_id == workflow.id)
            )
        ).first()
        if trigger is None:
            raise ValidationFailed.one("triggerId", "not a trigger of this workflow")
        if not trigger.active:
            raise ValidationFailed.one("triggerId", "this trigger is not active")
    given = dict(input or {})
    process, created = await start_process(
        uow,
        runtime,
        StartRequest(
            workflow=workflow,
            input={**await _schedule_payload(uow, workflow, trigger), **given},
            trigger=trigger,
            idempotency_key=idempotency_key,
            user_id=principal.user_id,
            starter_grants=principal.grants.get(workflow.workspace_id, frozenset()),
        ),
    )
    if created:
        audit.record(uow.session, principal, AuditAction.EXECUTE, process, workflow_id=workflow.id)
    return process, created


async def _who(session: AsyncSession, principal: Principal) -> str:
    """Who acts, for a process's log: a user's email, an API key's name, or the kind of caller."""
    if principal.api_key_id is not None:
        key = (await session.exec(select(ApiKey).where(ApiKey.id == principal.api_key_id))).first()
        if key is not None:
            return f"API key {key.name!r}"
    if principal.user_id is not None:
        user = (await session.exec(select(User).where(User.id == principal.user_id))).first()
        if user is not None:
            return user.email
    return principal.kind.value


def _log(
    process: Process, message: str, step_id: uuid.UUID | None = None, **data: Any
) -> ProcessLog:
    return ProcessLog(
        workspace_id=process.workspace_id,
        process_id=process.id,
        step_id=step_id,
        level=LogLevel.INFO,
        message=message,
        data=data,
    )


async def cancel_process(
    uow: UnitOfWork, runtime: Runtime, principal: Principal, ident: uuid.UUID | int
) -> Process:
    process = await get_process(uow.session, principal, ident, "process:read")
    principal.require(process.workspace_id, "process:run", "Process")
    if process.status in TERMINAL_STATUSES:
        raise ValidationFailed.one("id", f"process already ended ({process.status.value})")
    now = utcnow()
    process.status = ProcessStatus.CANCELLED
    process.completed_at = now
    process.last_activity_at = now
    process.wake_at = None
    uow.session.add(process)
    await uow.session.exec(
        update(ProcessStep)
        .where(col(ProcessStep.process_id) == process.id)
        .where(
            col(ProcessStep.status).in_(
                [StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING]
            )
        )
        .values(status=StepStatus.CANCELLED, finished_at=now)
    )
    who = await _who(uow.session, principal)
    uow.session.add(_log(process, f"cancelled by {who}", by=who))
    await uow.session.flush()
    audit.record(uow.session, principal, AuditAction.CANCEL, process)
    publish_process(uow, process)
    process_id = process.id

    async def stop() -> None:
        await runtime.dispatcher.cancel(process_id)

    uow.after_commit.append(stop)
    return process


async def retry_process(
    uow: UnitOfWork, runtime: Runtime, principal: Principal, ident: uuid.UUID | int
) -> Process:
    """Resume a failed or cancelled process from where it stopped; finished steps stay finished."""
    process = await get_process(uow.session, principal, ident, "process:read")
    principal.require(process.workspace_id, "process:run", "Process")
    if process.status not in (ProcessStatus.FAILED, ProcessStatus.CANCELLED):
        raise ValidationFailed.one(
            "id", f"only failed or cancelled processes can be retried ({process.status.value})"
        )
    stopped = [
        (step.id, step.attempt, step.status, step.error)
        for step in (
            await uow.session.exec(
                select(ProcessStep)
                .where(col(ProcessStep.process_id) == process.id)
                .where(col(ProcessStep.status).in_([StepStatus.FAILED, StepStatus.CANCELLED]))
                .order_by(col(ProcessStep.number))
            )
        ).all()
    ]
    # Each step keeps its attempt count (the next run is attempt n + 1, not 1); what the last
    # attempt ended with stays in the log.
    await uow.session.exec(
        update(ProcessStep)
        .where(col(ProcessStep.process_id) == process.id)
        .where(col(ProcessStep.status).in_([StepStatus.FAILED, StepStatus.CANCELLED]))
        .values(status=StepStatus.PENDING, error=None, next_attempt_at=None, finished_at=None)
    )
    who = await _who(uow.session, principal)
    previous = process.error
    process.status = ProcessStatus.PENDING
    process.error = None
    process.completed_at = None
    process.attempt += 1
    uow.session.add(
        _log(
            process,
            f"retried by {who} (retry {process.attempt})"
            + (f"; it had ended with: {previous}" if previous else ""),
            by=who,
            retry=process.attempt,
            error=previous,
        )
    )
    for step_id, attempt, status, error in stopped:
        uow.session.add(
            _log(
                process,
                f"step resumes after attempt {attempt} ({status.value.lower()})"
                + (f": {error}" if error else ""),
                step_id,
                attempt=attempt,
                error=error,
            )
        )
    process.last_activity_at = utcnow()
    uow.session.add(process)
    await uow.session.flush()
    audit.record(uow.session, principal, AuditAction.RETRY, process)
    publish_process(uow, process)
    process_id = process.id
    await runtime.dispatcher.defer(uow.session, process_id)

    async def submit() -> None:
        await runtime.dispatcher.submit(process_id)

    uow.after_commit.append(submit)
    return process


async def start_for_submission(
    uow: UnitOfWork,
    runtime: Runtime,
    form: Form,
    submission: FormSubmission,
    user_id: uuid.UUID | None,
) -> Process | None:
    """A submission of a form linked to a workflow starts it at its `form` trigger (the one
    naming this form, else one naming none), with the submitted data as input."""
    if form.workflow_id is None:
        return None
    workflow = (
        await uow.session.exec(select(Workflow).where(Workflow.id == form.workflow_id))
    ).first()
    if workflow is None or not fires(workflow):
        return None  # a draft's form trigger does not fire
    triggers = (
        await uow.session.exec(
            select(Trigger)
            .where(Trigger.workflow_id == workflow.id)
            .where(Trigger.type == TriggerType.FORM)
            .where(col(Trigger.active).is_(True))
            .order_by(col(Trigger.number))
        )
    ).all()
    trigger = next((t for t in triggers if t.path == str(form.id)), None) or next(
        (t for t in triggers if not t.path), None
    )
    process, _ = await start_process(
        uow,
        runtime,
        StartRequest(
            workflow=workflow,
            input=dict(submission.data),
            trigger=trigger,
            user_id=user_id,
            event_meta={"form_id": str(form.id), "submission_id": str(submission.id)},
        ),
    )
    submission.process_id = process.id
    uow.session.add(submission)
    return process


async def respond_to_http_trigger(
    uow: UnitOfWork,
    principal: Principal,
    ident: uuid.UUID | int,
    status: int,
    headers: dict[str, Any] | None,
    body: Any,
) -> Process:
    """What the caller waiting on the process's `http` trigger receives (WayScript's
    http-trigger response); the first answer wins."""
    process = await get_process(uow.session, principal, ident, "process:read")
    principal.require(process.workspace_id, "process:write", "Process")
    if not 100 <= status <= 599:
        raise ValidationFailed.one("status", "must be an HTTP status between 100 and 599")
    if headers is not None and not isinstance(headers, dict):
        raise ValidationFailed.one("headers", "must be an object of header names to values")
    if process.response is not None:
        raise ValidationFailed.one("processId", "this process has already responded")
    process.response = {
        "status": status,
        "headers": {str(k): str(v) for k, v in (headers or {}).items()},
        "body": body,
    }
    process.last_activity_at = utcnow()
    uow.session.add(process)
    await uow.session.flush()
    publish_process(uow, process)
    return process
