"""The runner: walks a process's agent graph, steps run in memory, committed in write sets.

The database is the truth, and a run keeps it so with few round trips. A run loads the process,
its runnable steps, their input messages and the workflow's definition once; then runs the local
steps (transform, filter, switch, respond, ...) back to back in memory and commits what they did
(messages, the steps of their receivers, step statuses, logs, outbox rows) as one write set
(writeset.py). A commit happens before anything that leaves the process: a remote step (its
RUNNING mark and everything before it commit first), a wait, the end. A crash before a commit
loses only work no one saw (it runs again: at-least-once); after it, a finished step never runs
again, because its outputs and its completion were one transaction.

An `http` trigger's process is built in memory too (services.processes.new_process) and its
start commits with its first steps: the caller is answered once that commit holds the response.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session
from sqlmodel import col, select

from flowql.agents.base import AgentRun, Kind, Outcome, StepFailed, message_context
from flowql.agents.liquid_filters import CREDENTIALS_KEY, credential_names
from flowql.agents.registry import REGISTRY
from flowql.agents.templating import TemplateError
from flowql.auth.privileges import require_for_process
from flowql.engine.definitions import Definition, load_definition
from flowql.engine.run_state import RUNNABLE, ProcessRun, Step
from flowql.engine.writeset import (
    LAST_RUN_RESOLUTION,
    PROCESS_FIELDS,
    STEP_FIELDS,
    TRIGGER_FIRED,
    WORKFLOW_RAN,
    Finish,
    Lost,
    MemoryConflict,
    new_row,
)
from flowql.errors import DomainError
from flowql.models import (
    TERMINAL_STATUSES,
    Agent,
    LogLevel,
    Message,
    Process,
    ProcessStatus,
    ProcessStep,
    StepStatus,
    Trigger,
    utcnow,
)
from flowql.services.processes import (
    StartRequest,
    construct,
    new_id,
    new_process,
    process_summary,
)
from flowql.services.runtime import Runtime

logger = logging.getLogger("flowql.engine")

# Waits shorter than this are slept inside the runner; longer ones park the process (durably).
INLINE_WAIT = timedelta(seconds=2)
# Times a process runs again after losing an agent-memory race before it gives up (it is then
# resumed like any interrupted process).
MEMORY_ATTEMPTS = 10


@dataclass
class RunnerConfig:
    retry_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    default_timeout_seconds: float = 300.0


class Runner:
    def __init__(
        self, runtime: Runtime, http: httpx.AsyncClient, config: RunnerConfig | None = None
    ) -> None:
        self.runtime = runtime
        self.http = http
        self.config = config or RunnerConfig(
            retry_backoff_seconds=runtime.settings.retry_backoff_seconds,
        )
        # Workflows' and triggers' last-run times as this runner last wrote them.
        self._marked: dict[uuid.UUID | None, datetime] = {}

    # -- entry points --------------------------------------------------------------------------

    async def run(self, process_id: uuid.UUID) -> None:
        """Resume a process from the database and run it as far as it goes."""
        run = await self._load(process_id)
        if run is None:
            return
        self._claim(run)
        await self.drive(run)

    def begin(self, request: StartRequest, trigger: Trigger, definition: Definition) -> ProcessRun:
        """A process started by `trigger`, in memory: its event, row and entry step commit with
        its first steps (see `drive`). The same rows as services.processes.start_process."""
        event, process = new_process(request)
        run = ProcessRun(
            process=process, definition=definition, steps=[], payloads={}, saved_status=None
        )
        for agent in definition.entry_agents(trigger):
            run.new_step(agent.id)
        ws = run.write_set
        ws.new_rows = [event, process]
        run.outbox(
            "workflow.executed",
            {"workflow_id": str(process.workflow_id), "process": process_summary(process)},
        )
        now = process.last_activity_at
        assert now is not None
        before = now - LAST_RUN_RESOLUTION
        # Last-run times move at most once a second: a run within a second of the last one this
        # server marked leaves them be (without a statement).
        for statement, row_id in ((WORKFLOW_RAN, process.workflow_id), (TRIGGER_FIRED, trigger.id)):
            marked = self._marked.get(row_id)
            if marked is not None and marked > before:
                continue
            if len(self._marked) > 10_000:
                self._marked.clear()
            self._marked[row_id] = now
            ws.statements.append((statement, {"_id": row_id, "at": now, "_before": before}))
        run.publish_process()
        self._claim(run)
        return run

    async def _load(self, process_id: uuid.UUID, fresh: bool = False) -> ProcessRun | None:
        """The process and what it still has to do. The workflow's definition is kept between
        runs like a hook plan (engine/plans.py: until this server writes a table it is read
        from, or db.CACHE_TTL passes); `fresh` reads it again (after a memory conflict, the
        agents' memory another server saved)."""
        clock = self.runtime.db.plan_clock
        generation = clock.generation

        def load(session: Session) -> ProcessRun | None:
            process = session.scalars(select(Process).where(Process.id == process_id)).first()
            if process is None or process.status in TERMINAL_STATUSES:
                return None
            if process.workflow_id is None:
                return None
            key = ("definition", process.workflow_id)
            known, kept = (False, None) if fresh else clock.recall(key)
            if known and isinstance(kept, Definition):
                definition: Definition | None = kept
            else:
                definition = load_definition(session, process.workflow_id)
                clock.keep(key, generation, definition)
            if definition is None:
                return None
            steps = [
                Step.of(row)
                for row in session.scalars(
                    select(ProcessStep)
                    .where(ProcessStep.process_id == process_id)
                    .where(col(ProcessStep.status).in_(RUNNABLE))
                    .order_by(col(ProcessStep.number))
                ).all()
            ]
            wanted = {s.input_message_id for s in steps if s.input_message_id is not None}
            payloads: dict[uuid.UUID, dict[str, Any]] = {}
            if wanted:
                rows = session.execute(
                    select(Message.id, Message.payload).where(col(Message.id).in_(wanted))
                )
                payloads = {message_id: dict(payload) for message_id, payload in rows.all()}
            return ProcessRun(
                process=process,
                definition=definition,
                steps=steps,
                payloads=payloads,
                saved_status=process.status,
                saved={s.id: (s.status, s.attempt) for s in steps},
            )

        return await self.runtime.db.lookup(load)

    def _claim(self, run: ProcessRun) -> None:
        process = run.process
        now = utcnow()
        first_start = process.status is ProcessStatus.PENDING and process.started_at is None
        process.status = ProcessStatus.RUNNING
        process.wake_at = None
        process.last_activity_at = now
        process.started_at = process.started_at or now
        if first_start:
            run.log("process started")
            run.outbox("process.started", {"process": process_summary(process)})
        run.publish_process()

    # -- the loop ------------------------------------------------------------------------------

    async def drive(self, run: ProcessRun) -> None:
        """Run the process until it ends, parks, or is lost to a cancel or another runner."""
        for _ in range(MEMORY_ATTEMPTS):
            try:
                await self._drive(run)
            finally:
                if run.committed is not None and not run.committed.done():
                    run.committed.set_exception(Lost("the process was not started"))
            # Another run saved an agent's memory first: run again from what was committed.
            if not run.memory_conflict or run.saved_status is None:
                return
            again = await self._load(run.process.id, fresh=True)
            if again is None:
                return
            run = again
            self._claim(run)

    async def _drive(self, run: ProcessRun) -> None:
        while True:
            if run.process.status in TERMINAL_STATUSES:
                await self._commit(run)
                return
            now = utcnow()
            runnable = run.runnable()
            due = [s for s in runnable if s.next_attempt_at is None or s.next_attempt_at <= now]
            if due:
                step = due[0]
                agent = run.definition.agents.get(step.agent_id)
                if agent is None or agent.disabled:
                    run.set_step(step, StepStatus.SKIPPED, finished_at=now)
                    run.log("agent disabled or deleted: step skipped", step)
                elif step.status is StepStatus.WAITING:  # a delay over passes its message on
                    outcome = Outcome(emit=[self._payload(run, step)], logs=["delay over"])
                    self._complete(run, step, agent, outcome)
                elif REGISTRY[agent.type].local:
                    await self._run_step(run, step, agent)
                elif not await self._run_remote(run, step, agent):
                    return
                continue
            if not runnable:
                self._finish(run, ProcessStatus.COMPLETED)
                await self._commit(run)
                return
            wake = min(s.next_attempt_at for s in runnable if s.next_attempt_at is not None)
            if wake - now <= INLINE_WAIT:
                if not await self._commit(run):
                    return
                await asyncio.sleep(max(0.0, (wake - now).total_seconds()))
                continue
            run.process.status = ProcessStatus.WAITING
            run.process.wake_at = wake
            run.publish_process()
            await self._commit(run)
            return

    async def _commit(self, run: ProcessRun) -> bool:
        """Write what the run did since its last commit; False when the run is lost."""
        ws = run.write_set
        run.ws = None
        ws.clock = self.runtime.db.plan_clock
        process = run.process
        if run.saved_status is not None:
            ws.process_status = run.saved_status
            ws.process_values.update({key: getattr(process, key) for key in PROCESS_FIELDS})
        else:
            ws.new_rows = ws.new_rows or [process]
        for step in run.steps:
            if step.id not in run.saved:
                ws.add(
                    ProcessStep,
                    new_row(
                        ProcessStep,
                        id=step.id,
                        workspace_id=process.workspace_id,
                        process_id=process.id,
                        agent_id=step.agent_id,
                        input_message_id=step.input_message_id,
                        **{key: getattr(step, key) for key in STEP_FIELDS},
                    ),
                )
            elif step.id in run.changed:
                status, attempt = run.saved[step.id]
                change = {key: getattr(step, key) for key in STEP_FIELDS}
                ws.step_changes.append(((step.id, change), status, attempt))
        try:
            number, output = await self.runtime.db.write(ws)
        except Lost as exc:
            run.memory_conflict = isinstance(exc, MemoryConflict)
            logger.info("process %s: %s; this run stops", process.id, exc)
            if run.committed is not None and not run.committed.done():
                run.committed.set_exception(exc)
            return False
        if number is not None:
            process.number = number
        for agent_id, (memory, version) in ws.memory.items():
            run.memories[agent_id] = (memory, version + 1)
        if ws.finish is not None and ws.finish.output_from is not None:
            process.output = output
        run.saved_status = process.status
        for step in run.steps:
            run.saved[step.id] = (step.status, step.attempt)
        run.changed.clear()
        # Finished steps need no more tracking.
        run.steps = [s for s in run.steps if s.status in RUNNABLE]
        events, run.events = run.events, []
        if events:
            await self.runtime.bus.publish(events)
        if run.committed is not None and not run.committed.done():
            run.committed.set_result(snapshot(process))
        return True

    # -- one step ------------------------------------------------------------------------------

    def _payload(self, run: ProcessRun, step: Step) -> dict[str, Any]:
        if step.input_message_id is None:
            return dict(run.process.input)
        return dict(run.payloads.get(step.input_message_id) or {})

    def _start_step(self, run: ProcessRun, step: Step, agent: Agent) -> None:
        run.set_step(step, StepStatus.RUNNING, attempt=step.attempt + 1, started_at=utcnow())
        run.log(f"{agent.name}: started (attempt {step.attempt})", step)
        run.publish_process(step_id=str(step.id), step_status=StepStatus.RUNNING.value)

    async def _run_step(self, run: ProcessRun, step: Step, agent: Agent) -> None:
        """A local step: runs now, its outcome joins the pending write set."""
        self._start_step(run, step, agent)
        try:
            agent_run = self._agent_run(run, agent, step)
            await self._template_credentials(agent_run)
            outcome = await REGISTRY[agent.type].handler(agent_run)
        except (StepFailed, TemplateError, ValueError, DomainError) as exc:
            self._failed(run, step, agent, str(exc))
            return
        except Exception as exc:  # an agent's bug must fail its step, not the runner
            logger.exception("agent %s crashed", agent.id)
            self._failed(run, step, agent, f"{type(exc).__name__}: {exc}")
            return
        self._remember(run, agent, agent_run)
        self._complete(run, step, agent, outcome)

    async def _run_remote(self, run: ProcessRun, step: Step, agent: Agent) -> bool:
        """A step that reaches outside: its RUNNING mark (and all before it) commits first."""
        self._start_step(run, step, agent)
        if not await self._commit(run):
            return False
        timeout = agent.timeout_seconds or self._default_timeout(agent)
        try:
            agent_run = self._agent_run(run, agent, step)
            await self._template_credentials(agent_run)
            outcome = await asyncio.wait_for(
                REGISTRY[agent.type].handler(agent_run), timeout=timeout
            )
        except TimeoutError:
            self._failed(run, step, agent, f"timed out after {timeout:g}s")
            return True
        except (StepFailed, TemplateError, ValueError, DomainError) as exc:
            self._failed(run, step, agent, str(exc))
            return True
        except Exception as exc:  # an agent's bug must fail its step, not the runner
            logger.exception("agent %s crashed", agent.id)
            self._failed(run, step, agent, f"{type(exc).__name__}: {exc}")
            return True
        self._remember(run, agent, agent_run)
        self._complete(run, step, agent, outcome)
        return True

    def _default_timeout(self, agent: Agent) -> float:
        option = agent.options.get("timeout_seconds")
        if isinstance(option, int | float):
            return float(option) + 5
        return self.config.default_timeout_seconds

    async def _template_credentials(self, agent_run: AgentRun) -> None:
        """The credentials the agent's options name with `{% credential name %}`, resolved for
        this run only (and only when the process may read credentials), where no template can
        print them but through that tag."""
        names = credential_names({**agent_run.agent.options, **agent_run.secrets})
        if not names:
            return
        require_for_process(agent_run.process.privileges, "credential:read", "use credentials")
        values: dict[str, str] = {}
        for name in names:
            try:
                values[name] = await agent_run.resolve_credential(name)
            except DomainError as exc:
                raise StepFailed(f"{{% credential {name} %}}: {exc}") from None
        agent_run.context[CREDENTIALS_KEY] = values

    def _memory(self, run: ProcessRun, agent: Agent) -> tuple[dict[str, Any], int]:
        """The agent's memory as this run knows it (read with the definition, or saved since)."""
        known = run.memories.get(agent.id)
        if known is None:
            known = run.memories[agent.id] = (dict(agent.memory or {}), agent.memory_version)
        return known

    def _remember(self, run: ProcessRun, agent: Agent, agent_run: AgentRun) -> None:
        """A handler that changed its memory: the change joins the pending write set, guarded by
        the version the run read (writeset.MEMORY_SAVED)."""
        memory, version = self._memory(run, agent)
        if agent_run.memory != memory:
            changed = copy.deepcopy(agent_run.memory)
            run.memories[agent.id] = (changed, version)
            run.write_set.memory[agent.id] = (changed, version)

    def _agent_run(self, run: ProcessRun, agent: Agent, step: Step) -> AgentRun:
        process = run.process
        workflow = run.definition.workflow
        payload = self._payload(run, step)
        # No credentials in the context: templates render user-controlled text into requests.
        # The message's keys are top-level too (Huginn's `{{ title }}`); flowql's names win.
        context = message_context(
            payload,
            {
                "message": payload,
                "process": {
                    "id": str(process.id),
                    "number": process.number,
                    "input": process.input,
                },
                "workflow": {
                    "id": str(workflow.id),
                    "number": workflow.number,
                    "name": workflow.name,
                    "variables": workflow.variables,
                },
                "vars": workflow.variables,
            },
        )

        from flowql.services.workflows import unseal_secret_options

        # Secret options decrypted for this run (ValueError fails the step when no key opens one).
        secrets = unseal_secret_options(self.runtime.box, agent.type, agent.options)

        async def resolve_credential(name: str) -> str:
            from flowql.services.credentials import resolve_credential_value

            async with self.runtime.db.read() as session:
                return await resolve_credential_value(
                    session, self.runtime.box, process.workspace_id, name, workflow.id
                )

        async def check_url(url: str) -> None:
            from flowql.services.netguard import check_public_url

            await check_public_url(url, self.runtime.settings.allow_private_networks)

        async def resolve_host(host: str, port: int) -> str:
            from flowql.services.netguard import resolve_public

            name = f"[{host}]" if ":" in host else host
            addresses = await resolve_public(
                f"https://{name}:{port}/", self.runtime.settings.allow_private_networks, "host"
            )
            return str(addresses[0])

        async def scenario_action(
            target: str, action: str, actor: str, response: Any
        ) -> dict[str, Any]:
            from flowql.engine.scenario_bridge import perform_scenario_action

            return await perform_scenario_action(
                self.runtime, process.workspace_id, target, action, actor, response
            )

        async def control(action: str, configure: dict[str, Any]) -> list[str]:
            from flowql.engine.control_links import control_targets

            return await control_targets(self.runtime, process, agent, action, configure)

        return AgentRun(
            agent=agent,
            process=process,
            payload=payload,
            context=context,
            resolve_credential=resolve_credential,
            http=lambda: self.http,
            check_url=check_url,
            scenario_action=scenario_action,
            # An action agent entered with no message was started by its own schedule.
            mode="check"
            if step.input_message_id is None and REGISTRY[agent.type].kind is Kind.ACTION
            else "receive",
            memory=copy.deepcopy(self._memory(run, agent)[0]),
            control=control,
            secrets=secrets,
            settings=self.runtime.settings,
            resolve_host=resolve_host,
        )

    def _complete(self, run: ProcessRun, step: Step, agent: Agent, outcome: Outcome) -> None:
        process = run.process
        now = utcnow()
        if outcome.wait_until is not None:
            for text in outcome.logs:
                run.log(f"{agent.name}: {text}", step)
            run.set_step(step, StepStatus.WAITING, next_attempt_at=outcome.wait_until)
            run.publish_process(step_id=str(step.id), step_status=StepStatus.WAITING.value)
            return
        try:
            receivers = run.definition.receivers_of(agent, outcome.route_to)
        except StepFailed as exc:
            self._failed(run, step, agent, str(exc))
            return
        for text in outcome.logs:
            run.log(f"{agent.name}: {text}", step)
        expires = (
            now + timedelta(seconds=agent.keep_messages_for) if agent.keep_messages_for else None
        )
        message_ids: list[str] = []
        for payload in outcome.emit:
            message_id = new_id()
            run.write_set.add(
                Message,
                new_row(
                    Message,
                    id=message_id,
                    workspace_id=process.workspace_id,
                    agent_id=agent.id,
                    workflow_id=agent.workflow_id,
                    process_id=process.id,
                    step_id=step.id,
                    payload=payload,
                    expires_at=expires,
                ),
            )
            run.payloads[message_id] = payload
            run.emitted.append((agent.id, payload))
            message_ids.append(str(message_id))
            for receiver in receivers:
                run.new_step(receiver.id, message_id)
            run.publish(
                "message.created",
                message_id=str(message_id),
                agent_id=str(agent.id),
                workflow_id=str(agent.workflow_id),
                process_id=str(process.id),
            )
            run.outbox(
                "message.created",
                {
                    "message": {
                        "id": str(message_id),
                        "agent_id": str(agent.id),
                        "workflow_id": str(agent.workflow_id),
                        "process_id": str(process.id),
                        "payload": payload,
                    },
                },
            )
        if outcome.response is not None:
            process.response = outcome.response
        process.last_activity_at = now
        run.set_step(
            step,
            StepStatus.COMPLETED,
            finished_at=now,
            output_message_ids=message_ids,
            error=None,
            next_attempt_at=None,
        )
        if outcome.emit:
            run.log(f"{agent.name}: emitted {len(outcome.emit)} message(s)", step)
        run.publish_process(step_id=str(step.id), step_status=StepStatus.COMPLETED.value)

    def _failed(self, run: ProcessRun, step: Step, agent: Agent, error: str) -> None:
        if step.attempt <= agent.max_retries:
            backoff = min(
                self.config.retry_backoff_seconds * 2 ** (step.attempt - 1),
                self.config.max_backoff_seconds,
            )
            run.set_step(
                step,
                StepStatus.PENDING,
                error=error,
                next_attempt_at=utcnow() + timedelta(seconds=backoff),
            )
            run.log(
                f"{agent.name}: attempt {step.attempt} failed: {error}; retrying in {backoff:g}s",
                step,
                LogLevel.WARNING,
            )
            run.publish_process(step_id=str(step.id), step_status=StepStatus.PENDING.value)
            return
        run.set_step(step, StepStatus.FAILED, error=error, finished_at=utcnow())
        run.log(f"{agent.name}: failed: {error}", step, LogLevel.ERROR)
        self._finish(run, ProcessStatus.FAILED, f"{agent.name}: {error}")

    # -- the end -------------------------------------------------------------------------------

    def _finish(self, run: ProcessRun, status: ProcessStatus, error: str | None = None) -> None:
        process = run.process
        now = utcnow()
        if status is ProcessStatus.FAILED:
            for other in run.runnable():
                run.set_step(other, StepStatus.CANCELLED, finished_at=now)
        process.status = status
        process.error = error
        process.completed_at = now
        process.last_activity_at = now
        process.wake_at = None
        output_from = None
        if process.response is not None:
            body = process.response.get("body")
            process.output = body if isinstance(body, dict) else {"body": body}
        elif run.saved_status is None:  # never committed: every message is in memory
            process.output = run.definition.sink_output(run.emitted)
        else:
            output_from = run.definition.sink_output
        run.log(
            f"process {status.value.lower()}" + (f": {error}" if error else ""),
            level=LogLevel.ERROR if error else LogLevel.INFO,
        )
        event = "process.completed" if status is ProcessStatus.COMPLETED else "process.failed"
        summary = process_summary(process)
        ws = run.write_set
        ws.finish = Finish(event_type=event, summary=summary, output_from=output_from)
        if summary["number"] is None:
            ws.summaries.append(summary)
        if output_from is None:
            ws.process_values["output"] = process.output
        run.publish_process()


def snapshot(process: Process) -> Process:
    """What a commit made durable, for a waiter (the run goes on changing its own copy)."""
    return construct(
        Process,
        id=process.id,
        number=process.number,
        workspace_id=process.workspace_id,
        workflow_id=process.workflow_id,
        status=process.status,
        input=process.input,
        output=process.output,
        error=process.error,
        response=process.response,
        created_at=process.created_at,
        completed_at=process.completed_at,
    )
