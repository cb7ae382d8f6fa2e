"""Processes (one run of a workflow or a scenario), their steps, logs and history events."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field

from flowql.models.base import WorkspaceRow, json_field, optional_json_field, time_field


class ProcessStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL_STATUSES = frozenset(
    {ProcessStatus.COMPLETED, ProcessStatus.FAILED, ProcessStatus.CANCELLED}
)


class Process(WorkspaceRow, table=True):
    __tablename__ = "processes"
    __table_args__ = (
        Index("ix_processes_idempotency", "workspace_id", "idempotency_key"),
        {"sqlite_autoincrement": True},
    )

    workflow_id: uuid.UUID | None = Field(
        default=None, foreign_key="workflows.id", index=True, ondelete="CASCADE"
    )
    scenario_id: uuid.UUID | None = Field(
        default=None, foreign_key="scenarios.id", index=True, ondelete="CASCADE"
    )
    trigger_id: uuid.UUID | None = Field(default=None, index=True)
    event_id: uuid.UUID | None = Field(default=None, index=True)
    user_id: uuid.UUID | None = Field(default=None, index=True)
    status: ProcessStatus = Field(default=ProcessStatus.PENDING, max_length=20, index=True)
    title: str = Field(default="", max_length=500)
    input: dict[str, Any] = json_field()
    output: dict[str, Any] | None = optional_json_field()
    error: str | None = Field(default=None, max_length=10000)
    idempotency_key: str | None = Field(default=None, max_length=200)
    # What an `http` trigger's caller receives: {"status", "headers", "body"}.
    response: dict[str, Any] | None = optional_json_field()
    # Scenario processes: current state key, actors, vars, result.
    state: str | None = Field(default=None, max_length=200)
    actors: dict[str, Any] = json_field()
    vars: dict[str, Any] = json_field()
    result: dict[str, Any] | None = optional_json_field()
    started_at: datetime | None = time_field()
    completed_at: datetime | None = time_field()
    last_activity_at: datetime | None = time_field()
    # Durable waits (delay agents, scenario `after` timeouts) wake the process at this time.
    wake_at: datetime | None = time_field(index=True)
    attempt: int = 0
    # What the process may do: its workflow's last editor's privileges intersected with its
    # starter's, fixed when it starts (services/delegation.py). None: recorded before this existed.
    privileges: list[str] | None = optional_json_field()


class StepStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"


class ProcessStep(WorkspaceRow, table=True):
    """One agent run on one incoming message; (process, agent, input message) is unique."""

    __tablename__ = "process_steps"
    __table_args__ = (
        UniqueConstraint("process_id", "agent_id", "input_message_id"),
        {"sqlite_autoincrement": True},
    )

    process_id: uuid.UUID = Field(foreign_key="processes.id", index=True, ondelete="CASCADE")
    agent_id: uuid.UUID = Field(foreign_key="agents.id", index=True, ondelete="CASCADE")
    input_message_id: uuid.UUID | None = Field(default=None, index=True)
    status: StepStatus = Field(default=StepStatus.PENDING, max_length=20, index=True)
    attempt: int = 0
    started_at: datetime | None = time_field()
    finished_at: datetime | None = time_field()
    next_attempt_at: datetime | None = time_field()
    error: str | None = Field(default=None, max_length=10000)
    output_message_ids: list[str] = json_field(list)


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class ProcessLog(WorkspaceRow, table=True):
    """A log line; `number` orders lines across the whole process."""

    __tablename__ = "process_logs"
    __table_args__ = {"sqlite_autoincrement": True}

    process_id: uuid.UUID = Field(foreign_key="processes.id", index=True, ondelete="CASCADE")
    step_id: uuid.UUID | None = Field(default=None, index=True)
    level: LogLevel = Field(default=LogLevel.INFO, max_length=10)
    message: str = Field(max_length=20000)
    data: dict[str, Any] = json_field()


class ProcessEvent(WorkspaceRow, table=True):
    """A scenario process's history: instantiate, action, timeout; hash-chained."""

    __tablename__ = "process_events"
    __table_args__ = {"sqlite_autoincrement": True}

    process_id: uuid.UUID = Field(foreign_key="processes.id", index=True, ondelete="CASCADE")
    type: str = Field(max_length=30)
    action: str | None = Field(default=None, max_length=200)
    actor: dict[str, Any] | None = optional_json_field()
    response: Any = optional_json_field()
    skipped: bool = False
    errors: list[str] = json_field(list)
    previous_hash: str = Field(default="", max_length=100)
    hash: str = Field(max_length=100)
