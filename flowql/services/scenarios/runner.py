"""Running scenario processes: start, perform an action, fire due timeouts, verify.

The Process row keeps the projection (state, actors, vars, result, status, wake_at) for
listing and filtering; the truth is the hash-chained history in ProcessEvent rows, replayed by
`process.replay`. Every change is published on the bus after its transaction commits.

Actions are serialised per process: a transaction first claims the process row with an UPDATE
(a row lock on PostgreSQL, the write lock on SQLite) before it reads the history.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.auth.principal import Principal
from flowql.errors import NotFound, ValidationFailed
from flowql.models import (
    AuditAction,
    Membership,
    Process,
    ProcessEvent,
    ProcessStatus,
    Scenario,
    utcnow,
)
from flowql.services import audit
from flowql.services.common import get_visible
from flowql.services.runtime import Runtime
from flowql.services.scenarios import access
from flowql.services.scenarios.history import Verification, event_row, event_rows, load_view, verify
from flowql.services.scenarios.hooks import StateEntered, after_commit
from flowql.services.scenarios.normalize import is_end_state
from flowql.services.scenarios.process import (
    StepOutcome,
    instantiate,
    next_timeout,
    step,
    timeout,
    truncate,
)
from flowql.services.uow import UnitOfWork, unit_of_work


class ActionSkipped(ValidationFailed):
    """The action was refused and recorded as a skipped event; `fields` say why, by field."""

    def __init__(self, outcome: ActionOutcome) -> None:
        fields: dict[str, str] = {}
        for name, message in outcome.step.errors:
            fields[name] = f"{fields[name]}; {message}" if name in fields else message
        reasons = [message for _, message in outcome.step.errors]
        super().__init__(fields, "action skipped: " + "; ".join(reasons))
        self.outcome = outcome
        self.details.update(
            reasons=reasons, eventId=str(outcome.event.id), processId=str(outcome.process.id)
        )


@dataclass
class ActionOutcome:
    process: Process
    event: ProcessEvent
    step: StepOutcome

    @property
    def skipped(self) -> bool:
        return self.step.skipped


def _ended(view: dict[str, Any]) -> bool:
    key = view["current"]["key"]
    return is_end_state(key, view["scenario"]["states"][key])


def _record(
    uow: UnitOfWork,
    runtime: Runtime,
    process: Process,
    outcome: StepOutcome,
    now: datetime,
) -> ProcessEvent:
    """Store the event; unless it was skipped, bring the Process row to the new projection."""
    row = event_row(outcome.event, process)
    uow.session.add(row)
    uow.publish(
        "process.event",
        process.workspace_id,
        process_id=str(process.id),
        scenario_id=str(process.scenario_id),
        event_id=str(row.id),
        type=row.type,
        action=row.action,
        skipped=row.skipped,
    )
    if outcome.skipped:
        return row
    view = outcome.view
    ended = _ended(view)
    process.state = view["current"]["key"]
    process.title = str(view["title"])[:500]
    process.actors = view["actors"]
    process.vars = view["vars"]
    process.result = view["result"]
    process.status = ProcessStatus.COMPLETED if ended else ProcessStatus.WAITING
    process.completed_at = now if ended else None
    process.wake_at = None if ended else next_timeout(view)
    process.last_activity_at = now
    uow.session.add(process)
    uow.publish(  # the payload of services.processes.publish_process, which feeds read
        "process.updated",
        process.workspace_id,
        process_id=str(process.id),
        workflow_id=None,
        scenario_id=str(process.scenario_id),
        status=process.status.value,
        state=process.state,
    )
    if outcome.entered:
        assert process.scenario_id is not None
        scenario_id = process.scenario_id
        entered = StateEntered(
            workspace_id=process.workspace_id,
            process_id=process.id,
            scenario_id=scenario_id,
            state=process.state,
            current=view["current"],
            process=view,
            ended=ended,
        )
        after_commit(uow, runtime, entered)
    return row


async def _check_start_actors(
    session: AsyncSession, workspace_id: uuid.UUID, actors: Any
) -> dict[str, Any]:
    if actors is None:
        return {}
    if not isinstance(actors, dict):
        raise ValidationFailed.one("actors", "must be a map of actor key -> actor record")
    for key, record in actors.items():
        user = record.get("userId") if isinstance(record, dict) else None
        if user is None:
            continue
        try:
            user_id = uuid.UUID(str(user))
        except ValueError:
            raise ValidationFailed.one(f"actors.{key}.userId", "not a user id") from None
        member = await session.exec(
            select(Membership)
            .where(Membership.workspace_id == workspace_id)
            .where(Membership.user_id == user_id)
        )
        if member.first() is None:
            raise ValidationFailed.one(f"actors.{key}.userId", "not a member of this workspace")
    return actors


async def start_scenario(
    uow: UnitOfWork,
    runtime: Runtime,
    principal: Principal,
    scenario_ident: uuid.UUID | int,
    *,
    actors: Any = None,
    vars: Any = None,
    action: str | None = None,
    actor: str | None = None,
    response: Any = None,
) -> ActionOutcome:
    """A new process, WAITING in its initial state, or after `action` if one is given.
    (Called by services.processes.start_process, the one start of every kind of process.)

    Atomic: when the first action is refused, nothing is stored (ActionSkipped is raised)."""
    session = uow.session
    scenario = await get_visible(
        session, principal, Scenario, scenario_ident, "process:run", "Scenario"
    )
    if scenario.disabled:
        raise ValidationFailed.one(
            "scenarioId", "the scenario is disabled: it starts no new processes"
        )
    access.check_scope_start(principal, scenario.id)
    given = await _check_start_actors(session, scenario.workspace_id, actors)
    if vars is not None and not isinstance(vars, dict):
        raise ValidationFailed.one("vars", "must be an object")
    now = truncate(utcnow())
    process_id = uuid.uuid4()
    view, problems = instantiate(
        scenario.definition, str(scenario.id), str(process_id), given, vars or {}, now
    )
    if problems:
        raise ValidationFailed({path: message for path, message in problems})
    process = Process(
        id=process_id,
        workspace_id=scenario.workspace_id,
        scenario_id=scenario.id,
        user_id=principal.user_id,
        status=ProcessStatus.WAITING,
        input={"actors": given, "vars": vars or {}},
        started_at=now,
    )
    session.add(process)
    await session.flush()
    first = StepOutcome(view, view["events"][0], [], entered=True)
    row = _record(uow, runtime, process, first, now)
    audit.record(session, principal, AuditAction.EXECUTE, process, scenario_id=scenario.id)
    if action is None:
        return ActionOutcome(process, row, first)
    outcome = await _act(
        uow, runtime, principal, process, scenario, view, action, actor, response, now
    )
    if outcome.skipped:
        raise ActionSkipped(outcome)
    return outcome


async def _act(
    uow: UnitOfWork,
    runtime: Runtime,
    principal: Principal,
    process: Process,
    scenario: Scenario,
    view: dict[str, Any],
    action: str,
    actor: str | None,
    response: Any,
    now: datetime,
) -> ActionOutcome:
    if action not in scenario.definition["actions"]:
        raise NotFound("Action")
    access.check_scope_start(principal, scenario.id)
    groups = await access.group_names(uow.session, principal, process.workspace_id)
    key = access.resolve_actor(principal, view, scenario.id, action, actor, groups)
    access.check_scope_action(principal, scenario.id, action, key)
    identity = access.event_actor(principal, view, key)
    outcome = step(view, action, identity, response, now)
    row = _record(uow, runtime, process, outcome, now)
    return ActionOutcome(process, row, outcome)


async def _claim(session: AsyncSession, process_id: uuid.UUID, now: datetime) -> None:
    await session.exec(
        update(Process).where(col(Process.id) == process_id).values(last_activity_at=now)
    )


async def perform_action_in(
    uow: UnitOfWork,
    runtime: Runtime,
    principal: Principal,
    process_id: uuid.UUID,
    action: str,
    *,
    actor: str | None = None,
    response: Any = None,
) -> ActionOutcome:
    """Perform an action inside `uow`; a refused action is recorded and returned as skipped."""
    now = truncate(utcnow())
    await _claim(uow.session, process_id, now)
    process = await get_visible(
        uow.session, principal, Process, process_id, "process:run", "Process"
    )
    if process.scenario_id is None:
        raise ValidationFailed.one("processId", "not a scenario process")
    scenario = await get_visible(
        uow.session, principal, Scenario, process.scenario_id, "process:run", "Scenario"
    )
    view = await load_view(uow.session, process, scenario)
    return await _act(
        uow, runtime, principal, process, scenario, view, action, actor, response, now
    )


async def perform_action(
    runtime: Runtime,
    principal: Principal,
    process_id: uuid.UUID,
    action: str,
    *,
    actor: str | None = None,
    response: Any = None,
) -> ActionOutcome:
    """Perform an action in its own transaction. A refused action is still recorded (committed)
    as a skipped event, then ActionSkipped (VALIDATION_ERROR with the reasons) is raised.

    Code performs actions as a service with `access.system_principal(workspace_id)` and
    `actor="service:NAME"`."""
    async with unit_of_work(runtime) as uow:
        outcome = await perform_action_in(
            uow, runtime, principal, process_id, action, actor=actor, response=response
        )
    if outcome.skipped:
        raise ActionSkipped(outcome)
    return outcome


async def fire_due_timeouts(runtime: Runtime, now: datetime | None = None, limit: int = 500) -> int:
    """Fire every `after` transition due at `now`; returns how many fired. Idempotent and safe
    in several workers at once: each process is claimed with a conditional UPDATE."""
    now = truncate(now or utcnow())
    async with runtime.db.read() as session:
        due = (
            await session.exec(
                select(Process.id, Process.wake_at)
                .where(col(Process.scenario_id).is_not(None))
                .where(col(Process.status) == ProcessStatus.WAITING)
                .where(col(Process.wake_at) <= now)
                .order_by(col(Process.wake_at))
                .limit(limit)
            )
        ).all()
    fired = 0
    for process_id, wake_at in due:
        async with unit_of_work(runtime) as uow:
            fired += await _fire_one(uow, runtime, process_id, wake_at, now)
    return fired


async def _fire_one(
    uow: UnitOfWork,
    runtime: Runtime,
    process_id: uuid.UUID,
    wake_at: datetime | None,
    now: datetime,
) -> int:
    session = uow.session
    claimed = await session.exec(
        update(Process)
        .where(col(Process.id) == process_id)
        .where(col(Process.wake_at) == wake_at)
        .where(col(Process.status) == ProcessStatus.WAITING)
        .values(wake_at=None)
    )
    if claimed.rowcount != 1:
        return 0  # another worker fired it, or an action moved the process on
    process = (await session.exec(select(Process).where(Process.id == process_id))).one()
    scenario = (
        await session.exec(select(Scenario).where(Scenario.id == process.scenario_id))
    ).one()
    view = await load_view(session, process, scenario)
    outcome = timeout(view, now)
    if outcome is None:  # due, but no timeout transition's `if` holds: wait for the next one
        process.wake_at = next_timeout(view, after=now)
        session.add(process)
        return 0
    _record(uow, runtime, process, outcome, now)
    return 1


async def verify_process(
    session: AsyncSession, principal: Principal, ident: uuid.UUID | int
) -> Verification:
    process = await get_visible(session, principal, Process, ident, "process:read", "Process")
    if process.scenario_id is None:
        raise ValidationFailed.one("id", "not a scenario process")
    scenario = (
        await session.exec(select(Scenario).where(Scenario.id == process.scenario_id))
    ).one()
    return verify(scenario, process, await event_rows(session, process.id))
