"""A run's state between commits: the process, its steps as the run tracks them, and the
write set their changes accumulate in (see runner.py)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowql.engine.definitions import Definition
from flowql.engine.writeset import WriteSet, new_row
from flowql.events.bus import BusEvent
from flowql.models import LogLevel, Process, ProcessLog, ProcessStatus, ProcessStep, StepStatus
from flowql.services.processes import new_id, process_event

RUNNABLE = (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING)


@dataclass(slots=True)
class Step:
    """A process step as a run tracks it (loaded rows are copied, new ones never built as
    table models: see writeset.new_row)."""

    id: uuid.UUID
    agent_id: uuid.UUID
    input_message_id: uuid.UUID | None = None
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    error: str | None = None
    output_message_ids: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, row: ProcessStep) -> Step:
        return cls(
            id=row.id,
            agent_id=row.agent_id,
            input_message_id=row.input_message_id,
            status=row.status,
            attempt=row.attempt,
            started_at=row.started_at,
            finished_at=row.finished_at,
            next_attempt_at=row.next_attempt_at,
            error=row.error,
            output_message_ids=list(row.output_message_ids),
        )


@dataclass
class ProcessRun:
    """One run of one process, in memory between commits."""

    process: Process
    definition: Definition
    steps: list[Step]
    payloads: dict[uuid.UUID, dict[str, Any]]
    # What the database holds: the process's status (None: not written yet) and, per step,
    # (status, attempt). Steps not in `saved` are new; `changed` ones need an UPDATE.
    saved_status: ProcessStatus | None
    saved: dict[uuid.UUID, tuple[StepStatus, int]] = field(default_factory=dict)
    changed: set[uuid.UUID] = field(default_factory=set)
    # Messages emitted since the process was new (a new process's output needs no query).
    emitted: list[tuple[uuid.UUID, dict[str, Any]]] = field(default_factory=list)
    ws: WriteSet | None = None
    events: list[BusEvent] = field(default_factory=list)
    # Agents' memory as this run knows it: agent id -> (memory, version saved in the database).
    memories: dict[uuid.UUID, tuple[dict[str, Any], int]] = field(default_factory=dict)
    memory_conflict: bool = False
    # Resolved with the process once its first commit holds (the http trigger's caller waits).
    committed: asyncio.Future[Process] | None = None

    @property
    def write_set(self) -> WriteSet:
        if self.ws is None:
            self.ws = WriteSet(self.process.workspace_id, self.process.id)
        return self.ws

    def new_step(self, agent_id: uuid.UUID, input_message_id: uuid.UUID | None = None) -> Step:
        step = Step(id=new_id(), agent_id=agent_id, input_message_id=input_message_id)
        self.steps.append(step)
        return step

    def publish(self, topic: str, **data: Any) -> None:
        self.events.append(
            BusEvent(id=new_id(), topic=topic, workspace_id=self.process.workspace_id, data=data)
        )

    def publish_process(self, **extra: Any) -> None:
        self.events.append(process_event(self.process, **extra))

    def log(
        self,
        text: str,
        step: Step | None = None,
        level: LogLevel = LogLevel.INFO,
        **data: Any,
    ) -> None:
        line = new_row(
            ProcessLog,
            workspace_id=self.process.workspace_id,
            process_id=self.process.id,
            step_id=step.id if step else None,
            level=level,
            message=text[:20000],
            data=data,
        )
        self.write_set.add(ProcessLog, line)
        self.publish("process.log", process_id=str(self.process.id), log_id=str(line["id"]))

    def outbox(self, event_type: str, data: dict[str, Any]) -> None:
        self.write_set.outbox.append((event_type, data))
        summary = data.get("process")
        if isinstance(summary, dict) and summary.get("number") is None:
            self.write_set.summaries.append(summary)

    def set_step(self, step: Step, status: StepStatus, **values: Any) -> None:
        step.status = status
        for key, value in values.items():
            setattr(step, key, value)
        self.changed.add(step.id)

    def runnable(self) -> list[Step]:
        return [s for s in self.steps if s.status in RUNNABLE]
