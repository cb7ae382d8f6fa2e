"""Workflows, their agents and the source links between agents, triggers, events and messages."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field

from flowql.models.base import Row, WorkspaceRow, json_field, optional_json_field, time_field


class WorkflowStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class Workflow(WorkspaceRow, table=True):
    __tablename__ = "workflows"
    __table_args__ = {"sqlite_autoincrement": True}

    name: str = Field(max_length=200, index=True)
    description: str = Field(default="", max_length=5000)
    status: WorkflowStatus = Field(default=WorkflowStatus.DRAFT, max_length=20, index=True)
    variables: dict[str, Any] = json_field()
    manager_id: uuid.UUID | None = Field(default=None)
    is_public: bool = False
    endpoints_are_private: bool = True
    default_path: str = Field(default="", max_length=500)
    environment: str = Field(default="production", max_length=50)
    updated_at: datetime | None = time_field()
    last_run_at: datetime | None = time_field()
    last_deployed_at: datetime | None = time_field()
    # Who last changed the workflow or its agents, and the privileges they held then: a process
    # acts with no more than these (services/delegation.py).
    last_editor_id: uuid.UUID | None = Field(default=None)
    editor_privileges: list[str] | None = optional_json_field()


class Agent(WorkspaceRow, table=True):
    __tablename__ = "agents"
    __table_args__ = {"sqlite_autoincrement": True}

    workflow_id: uuid.UUID = Field(foreign_key="workflows.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    type: str = Field(max_length=100)
    options: dict[str, Any] = json_field()
    disabled: bool = False
    # Seconds a message this agent emits is kept; None keeps it forever.
    keep_messages_for: int | None = Field(default=None, ge=0)
    max_retries: int = Field(default=0, ge=0)
    timeout_seconds: float | None = Field(default=None)
    updated_at: datetime | None = time_field()
    # Huginn's agent settings: when the agent checks on its own ("every_1h", "midnight", "7am",
    # "never"; None: only when it receives), kept verbatim with Huginn's propagation flag.
    schedule: str | None = Field(default=None, max_length=50)
    propagate_immediately: bool = True
    # The agents this one controls (Huginn's control links), by id.
    control_target_ids: list[str] = json_field(list)
    # The agent's memory across runs (Huginn's `memory`); `memory_version` guards its updates:
    # a run writes memory only where the version is still the one it read (engine/writeset.py).
    memory: dict[str, Any] = json_field()
    memory_version: int = 0


class AgentSource(Row, table=True):
    """`receiver_id` receives every message `source_id` emits."""

    __tablename__ = "agent_sources"
    __table_args__ = (UniqueConstraint("receiver_id", "source_id"), {"sqlite_autoincrement": True})

    receiver_id: uuid.UUID = Field(foreign_key="agents.id", index=True, ondelete="CASCADE")
    source_id: uuid.UUID = Field(foreign_key="agents.id", index=True, ondelete="CASCADE")


class TriggerType(StrEnum):
    HTTP = "http"
    WEBHOOK = "webhook"
    SCHEDULE = "schedule"
    MANUAL = "manual"
    FORM = "form"


class Trigger(WorkspaceRow, table=True):
    """How a workflow starts. Its `agent_id` is the trigger agent whose message opens a process."""

    __tablename__ = "triggers"
    __table_args__ = {"sqlite_autoincrement": True}

    workflow_id: uuid.UUID = Field(foreign_key="workflows.id", index=True, ondelete="CASCADE")
    agent_id: uuid.UUID | None = Field(
        default=None, foreign_key="agents.id", index=True, ondelete="CASCADE"
    )
    type: TriggerType = Field(max_length=20, index=True)
    name: str = Field(default="", max_length=200)
    active: bool = True
    # Webhook/http path, cron expression, form id: whatever the type routes by.
    path: str | None = Field(default=None, max_length=500, index=True)
    settings: dict[str, Any] = json_field()
    # Names of the values the trigger hands on, in order (WayScript's trigger outputs).
    outputs: list[str] = json_field(list)
    test_event: str = Field(default="", max_length=5000)
    command: str = Field(default="", max_length=1000)
    integration_id: uuid.UUID | None = Field(default=None)
    next_run_at: datetime | None = time_field(index=True)
    last_fired_at: datetime | None = time_field()
    archived_at: datetime | None = time_field()


class Event(WorkspaceRow, table=True):
    """What fired a trigger: the request or tick, kept with the process it started."""

    __tablename__ = "events"
    __table_args__ = {"sqlite_autoincrement": True}

    trigger_id: uuid.UUID | None = Field(
        default=None, foreign_key="triggers.id", index=True, ondelete="SET NULL"
    )
    trigger_type: str = Field(max_length=20)
    data: dict[str, Any] = json_field()
    meta: dict[str, Any] = json_field()


class Message(WorkspaceRow, table=True):
    __tablename__ = "messages"
    __table_args__ = {"sqlite_autoincrement": True}

    agent_id: uuid.UUID = Field(foreign_key="agents.id", index=True, ondelete="CASCADE")
    workflow_id: uuid.UUID = Field(foreign_key="workflows.id", index=True, ondelete="CASCADE")
    process_id: uuid.UUID | None = Field(
        default=None, foreign_key="processes.id", index=True, ondelete="SET NULL"
    )
    step_id: uuid.UUID | None = Field(default=None, index=True)
    payload: dict[str, Any] = json_field()
    expires_at: datetime | None = time_field(index=True)
