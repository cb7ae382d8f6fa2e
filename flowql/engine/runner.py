"""The runner: walks a process's agent graph one persisted step at a time.

The database is the truth. A step's outcome (its messages, the steps of its receivers, its own
status, logs and outbox rows) is written in one transaction, so a crash either loses the whole
step (it runs again: at-least-once) or none of it (a finished step never runs again).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlmodel import col, select, update

from flowql.engine.agents import HANDLERS, AgentRun, Outcome, StepFailed
from flowql.engine.templating import TemplateError
from flowql.errors import DomainError
from flowql.models import (
    TERMINAL_STATUSES,
    Agent,
    AgentSource,
    LogLevel,
    Message,
    Process,
    ProcessLog,
    ProcessStatus,
    ProcessStep,
    StepStatus,
    Workflow,
    utcnow,
)
from flowql.services import outbox
from flowql.services.auth import issuer_for
from flowql.services.execution import process_summary, publish_process
from flowql.services.runtime import Runtime
from flowql.services.uow import UnitOfWork, unit_of_work

logger = logging.getLogger("flowql.engine")

RUNNABLE = (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING)
# Waits shorter than this are slept inside the runner; longer ones park the process (durably).
INLINE_WAIT = timedelta(seconds=2)


@dataclass
class RunnerConfig:
    retry_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    default_timeout_seconds: float = 300.0


def log_line(
    uow: UnitOfWork,
    process: Process,
    text: str,
    step: ProcessStep | None = None,
    level: LogLevel = LogLevel.INFO,
    **data: Any,
) -> None:
    line = ProcessLog(
        workspace_id=process.workspace_id,
        process_id=process.id,
        step_id=step.id if step else None,
        level=level,
        message=text[:20000],
        data=data,
    )
    uow.session.add(line)
    uow.publish(
        "process.log", process.workspace_id, process_id=str(process.id), log_id=str(line.id)
    )


class Runner:
    def __init__(
        self, runtime: Runtime, http: httpx.AsyncClient, config: RunnerConfig | None = None
    ) -> None:
        self.runtime = runtime
        self.http = http
        self.config = config or RunnerConfig(
            retry_backoff_seconds=runtime.settings.retry_backoff_seconds,
        )

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, process_id: uuid.UUID) -> None:
        if not await self._claim(process_id):
            return
        while True:
            async with self.runtime.db.read() as session:
                process = (
                    await session.exec(select(Process).where(Process.id == process_id))
                ).one()
                if process.status in TERMINAL_STATUSES:
                    return
                steps = list(
                    (
                        await session.exec(
                            select(ProcessStep)
                            .where(ProcessStep.process_id == process_id)
                            .where(col(ProcessStep.status).in_(RUNNABLE))
                            .order_by(col(ProcessStep.number))
                        )
                    ).all()
                )
            now = utcnow()
            due = [s for s in steps if s.next_attempt_at is None or s.next_attempt_at <= now]
            if due:
                await self._run_step(process, due[0])
                continue
            if not steps:
                await self._finish(process_id, ProcessStatus.COMPLETED)
                return
            wake = min(s.next_attempt_at for s in steps if s.next_attempt_at is not None)
            if wake - now <= INLINE_WAIT:
                await asyncio.sleep(max(0.0, (wake - now).total_seconds()))
                continue
            await self._park(process_id, wake)
            return

    async def _claim(self, process_id: uuid.UUID) -> bool:
        async with unit_of_work(self.runtime) as uow:
            process = (
                await uow.session.exec(select(Process).where(Process.id == process_id))
            ).first()
            if process is None or process.status in TERMINAL_STATUSES:
                return False
            first_start = process.status is ProcessStatus.PENDING and process.started_at is None
            claimed = await uow.session.exec(
                update(Process)
                .where(col(Process.id) == process_id)
                .where(col(Process.status) == process.status)
                .values(
                    status=ProcessStatus.RUNNING,
                    wake_at=None,
                    last_activity_at=utcnow(),
                    started_at=process.started_at or utcnow(),
                )
            )
            if claimed.rowcount != 1:
                return False
            await uow.session.refresh(process)
            if first_start:
                log_line(uow, process, "process started")
                await outbox.enqueue(
                    uow.session,
                    process.workspace_id,
                    "process.started",
                    {"process": process_summary(process)},
                )
            publish_process(uow, process)
        return True

    async def _park(self, process_id: uuid.UUID, wake: datetime) -> None:
        async with unit_of_work(self.runtime) as uow:
            process = (
                await uow.session.exec(select(Process).where(Process.id == process_id))
            ).one()
            if process.status is not ProcessStatus.RUNNING:
                return
            process.status = ProcessStatus.WAITING
            process.wake_at = wake
            uow.session.add(process)
            publish_process(uow, process)

    # -- one step ------------------------------------------------------------------------------

    async def _run_step(self, process: Process, step: ProcessStep) -> None:
        if step.status is StepStatus.WAITING:  # a delay whose time has come passes its message on
            async with unit_of_work(self.runtime) as uow:
                agent, payload = await self._inputs(uow, process, step)
                await self._complete(
                    uow, process, step, agent, Outcome(emit=[payload], logs=["delay over"])
                )
            return
        async with unit_of_work(self.runtime) as uow:
            started = await uow.session.exec(
                update(ProcessStep)
                .where(col(ProcessStep.id) == step.id)
                .where(col(ProcessStep.status) == step.status)
                .values(status=StepStatus.RUNNING, attempt=step.attempt + 1, started_at=utcnow())
            )
            if started.rowcount != 1:
                return
            step.attempt += 1
            step.status = StepStatus.RUNNING
            agent, payload = await self._inputs(uow, process, step)
            if agent is not None:
                log_line(uow, process, f"{agent.name}: started (attempt {step.attempt})", step)
            publish_process(
                uow, process, step_id=str(step.id), step_status=StepStatus.RUNNING.value
            )
        if agent is None or agent.disabled:
            async with unit_of_work(self.runtime) as uow:
                await self._set_step(uow, step, StepStatus.SKIPPED)
                log_line(uow, process, "agent disabled or deleted: step skipped", step)
            return
        try:
            run = await self._agent_run(process, agent, payload)
            timeout = agent.timeout_seconds or self._default_timeout(agent)
            outcome = await asyncio.wait_for(HANDLERS[agent.type](run), timeout=timeout)
        except TimeoutError:
            await self._failed(process, step, agent, f"timed out after {timeout:g}s")
            return
        except (StepFailed, TemplateError, ValueError, DomainError) as exc:
            await self._failed(process, step, agent, str(exc))
            return
        except Exception as exc:  # an agent's bug must fail its step, not the runner
            logger.exception("agent %s crashed", agent.id)
            await self._failed(process, step, agent, f"{type(exc).__name__}: {exc}")
            return
        async with unit_of_work(self.runtime) as uow:
            await self._complete(uow, process, step, agent, outcome)

    def _default_timeout(self, agent: Agent) -> float:
        option = agent.options.get("timeout_seconds")
        if isinstance(option, int | float):
            return float(option) + 5
        return self.config.default_timeout_seconds

    async def _inputs(
        self, uow: UnitOfWork, process: Process, step: ProcessStep
    ) -> tuple[Agent | None, dict[str, Any]]:
        agent = (await uow.session.exec(select(Agent).where(Agent.id == step.agent_id))).first()
        payload: dict[str, Any] = dict(process.input)
        if step.input_message_id is not None:
            message = (
                await uow.session.exec(select(Message).where(Message.id == step.input_message_id))
            ).first()
            payload = dict(message.payload) if message else {}
        return agent, payload

    async def _agent_run(self, process: Process, agent: Agent, payload: dict[str, Any]) -> AgentRun:
        async with self.runtime.db.read() as session:
            workflow = (
                await session.exec(select(Workflow).where(Workflow.id == agent.workflow_id))
            ).one()
        token = issuer_for(self.runtime.settings).issue(
            str(process.id),
            self.runtime.settings.execution_token_ttl,
            typ="execution",
            ws=str(process.workspace_id),
            usr=str(process.user_id) if process.user_id else None,
        )
        context = {
            "message": payload,
            "process": {
                "id": str(process.id),
                "number": process.number,
                "input": process.input,
                "token": token,
            },
            "workflow": {
                "id": str(workflow.id),
                "number": workflow.number,
                "name": workflow.name,
                "variables": workflow.variables,
            },
            "vars": workflow.variables,
        }

        async def resolve_credential(name: str) -> str:
            from flowql.services.credentials import resolve_credential_value

            async with self.runtime.db.read() as session:
                return await resolve_credential_value(
                    session, self.runtime.box, process.workspace_id, name, workflow.id
                )

        async def check_url(url: str) -> None:
            from flowql.services.netguard import check_public_url

            await check_public_url(url, self.runtime.settings.allow_private_networks)

        async def scenario_action(
            target: str, action: str, actor: str, response: Any
        ) -> dict[str, Any]:
            from flowql.engine.scenario_bridge import perform_scenario_action

            return await perform_scenario_action(
                self.runtime, process.workspace_id, target, action, actor, response
            )

        return AgentRun(
            agent=agent,
            process=process,
            payload=payload,
            context=context,
            resolve_credential=resolve_credential,
            http=lambda: self.http,
            check_url=check_url,
            scenario_action=scenario_action,
        )

    async def _set_step(
        self, uow: UnitOfWork, step: ProcessStep, status: StepStatus, **values: Any
    ) -> None:
        await uow.session.exec(
            update(ProcessStep)
            .where(col(ProcessStep.id) == step.id)
            .values(status=status, finished_at=utcnow(), **values)
        )

    async def _complete(
        self,
        uow: UnitOfWork,
        process: Process,
        step: ProcessStep,
        agent: Agent | None,
        outcome: Outcome,
    ) -> None:
        session = uow.session
        current = (await session.exec(select(Process).where(Process.id == process.id))).one()
        if current.status in TERMINAL_STATUSES:
            return  # cancelled while the agent ran: its work is discarded
        # Still ours? If a stalled runner's job was handed to another worker, only the first to
        # get here records the outcome; the row lock makes the second see 0 rows and write nothing.
        still_ours = await session.exec(
            update(ProcessStep)
            .where(col(ProcessStep.id) == step.id)
            .where(col(ProcessStep.status) == step.status)
            .where(col(ProcessStep.attempt) == step.attempt)
            .values(finished_at=utcnow())
        )
        if still_ours.rowcount != 1:
            return
        assert agent is not None
        for text in outcome.logs:
            log_line(uow, process, f"{agent.name}: {text}", step)
        if outcome.wait_until is not None:
            await session.exec(
                update(ProcessStep)
                .where(col(ProcessStep.id) == step.id)
                .values(status=StepStatus.WAITING, next_attempt_at=outcome.wait_until)
            )
            publish_process(
                uow, current, step_id=str(step.id), step_status=StepStatus.WAITING.value
            )
            return
        receivers = await self._receivers(uow, agent, outcome.route_to)
        expires = (
            utcnow() + timedelta(seconds=agent.keep_messages_for)
            if agent.keep_messages_for
            else None
        )
        message_ids: list[str] = []
        for payload in outcome.emit:
            message = Message(
                workspace_id=process.workspace_id,
                agent_id=agent.id,
                workflow_id=agent.workflow_id,
                process_id=process.id,
                step_id=step.id,
                payload=payload,
                expires_at=expires,
            )
            session.add(message)
            message_ids.append(str(message.id))
            for receiver in receivers:
                session.add(
                    ProcessStep(
                        workspace_id=process.workspace_id,
                        process_id=process.id,
                        agent_id=receiver.id,
                        input_message_id=message.id,
                    )
                )
            uow.publish(
                "message.created",
                process.workspace_id,
                message_id=str(message.id),
                agent_id=str(agent.id),
                workflow_id=str(agent.workflow_id),
                process_id=str(process.id),
            )
            await outbox.enqueue(
                session,
                process.workspace_id,
                "message.created",
                {
                    "message": {
                        "id": str(message.id),
                        "agent_id": str(agent.id),
                        "workflow_id": str(agent.workflow_id),
                        "process_id": str(process.id),
                        "payload": payload,
                    },
                },
            )
        if outcome.response is not None:
            current.response = outcome.response
        current.last_activity_at = utcnow()
        session.add(current)
        await self._set_step(
            uow, step, StepStatus.COMPLETED, output_message_ids=message_ids, error=None
        )
        if outcome.emit:
            log_line(uow, process, f"{agent.name}: emitted {len(outcome.emit)} message(s)", step)
        publish_process(uow, current, step_id=str(step.id), step_status=StepStatus.COMPLETED.value)

    async def _receivers(self, uow: UnitOfWork, agent: Agent, route_to: str | None) -> list[Agent]:
        stmt = (
            select(Agent)
            .join(AgentSource, col(AgentSource.receiver_id) == col(Agent.id))
            .where(AgentSource.source_id == agent.id)
            .order_by(col(Agent.number))
        )
        receivers = [a for a in (await uow.session.exec(stmt)).all() if not a.disabled]
        if route_to is None:
            return receivers
        chosen = [a for a in receivers if a.name == route_to]
        if not chosen:
            raise StepFailed(
                f"switch target {route_to!r} is not an enabled receiver of {agent.name}"
            )
        return chosen

    async def _failed(self, process: Process, step: ProcessStep, agent: Agent, error: str) -> None:
        async with unit_of_work(self.runtime) as uow:
            current = (
                await uow.session.exec(select(Process).where(Process.id == process.id))
            ).one()
            if current.status in TERMINAL_STATUSES:
                return
            if step.attempt <= agent.max_retries:
                backoff = min(
                    self.config.retry_backoff_seconds * 2 ** (step.attempt - 1),
                    self.config.max_backoff_seconds,
                )
                await uow.session.exec(
                    update(ProcessStep)
                    .where(col(ProcessStep.id) == step.id)
                    .values(
                        status=StepStatus.PENDING,
                        error=error,
                        next_attempt_at=utcnow() + timedelta(seconds=backoff),
                    )
                )
                log_line(
                    uow,
                    process,
                    f"{agent.name}: attempt {step.attempt} failed: {error}; "
                    f"retrying in {backoff:g}s",
                    step,
                    LogLevel.WARNING,
                )
                publish_process(
                    uow, current, step_id=str(step.id), step_status=StepStatus.PENDING.value
                )
                return
            await self._set_step(uow, step, StepStatus.FAILED, error=error)
            log_line(uow, process, f"{agent.name}: failed: {error}", step, LogLevel.ERROR)
        await self._finish(process.id, ProcessStatus.FAILED, f"{agent.name}: {error}")

    # -- the end -------------------------------------------------------------------------------

    async def _finish(
        self, process_id: uuid.UUID, status: ProcessStatus, error: str | None = None
    ) -> None:
        async with unit_of_work(self.runtime) as uow:
            session = uow.session
            process = (await session.exec(select(Process).where(Process.id == process_id))).one()
            if process.status in TERMINAL_STATUSES:
                return
            now = utcnow()
            if status is ProcessStatus.FAILED:
                await session.exec(
                    update(ProcessStep)
                    .where(col(ProcessStep.process_id) == process_id)
                    .where(col(ProcessStep.status).in_(RUNNABLE))
                    .values(status=StepStatus.CANCELLED, finished_at=now)
                )
            process.status = status
            process.error = error
            process.completed_at = now
            process.last_activity_at = now
            process.wake_at = None
            process.output = await self._output(uow, process)
            session.add(process)
            log_line(
                uow,
                process,
                f"process {status.value.lower()}" + (f": {error}" if error else ""),
                level=LogLevel.ERROR if error else LogLevel.INFO,
            )
            event = "process.completed" if status is ProcessStatus.COMPLETED else "process.failed"
            await outbox.enqueue(
                session, process.workspace_id, event, {"process": process_summary(process)}
            )
            publish_process(uow, process)

    async def _output(self, uow: UnitOfWork, process: Process) -> dict[str, Any] | None:
        """The respond step's body, else the payloads of the sink agents (those with no receivers)."""
        if process.response is not None:
            body = process.response.get("body")
            return body if isinstance(body, dict) else {"body": body}
        rows = (
            await uow.session.exec(
                select(Message, Agent.name)
                .join(Agent, col(Agent.id) == col(Message.agent_id))
                .where(Message.process_id == process.id)
                .order_by(col(Message.number))
            )
        ).all()
        if not rows:
            return None
        sources = set(
            (
                await uow.session.exec(
                    select(AgentSource.source_id).where(
                        col(AgentSource.source_id).in_({m.agent_id for m, _ in rows})
                    )
                )
            ).all()
        )
        sinks: dict[str, Any] = {}
        for message, name in rows:
            if message.agent_id not in sources:
                sinks[name] = message.payload
        if len(sinks) == 1:
            return dict(next(iter(sinks.values())))
        return sinks or None
