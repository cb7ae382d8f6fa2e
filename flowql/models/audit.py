"""The audit log: who did what to which row, when, with which credential. Never secret values."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field

from flowql.models.base import WorkspaceRow, json_field


class AuditAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    EXECUTE = "execute"
    CANCEL = "cancel"
    RETRY = "retry"
    REVOKE = "revoke"
    ISSUE = "issue"
    INVITE = "invite"
    ACCEPT = "accept"
    DECLINE = "decline"
    TEST = "test"


class AuditEntry(WorkspaceRow, table=True):
    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_workspace_time", "workspace_id", "created_at"),
        {"sqlite_autoincrement": True},
    )

    action: AuditAction = Field(max_length=20, index=True)
    target_type: str = Field(max_length=40, index=True)
    target_id: uuid.UUID | None = Field(default=None, index=True)
    # The credential: its kind, and the user, API key or process (execution token) behind it.
    actor_kind: str = Field(max_length=20)
    actor_user_id: uuid.UUID | None = Field(default=None, index=True)
    actor_api_key_id: uuid.UUID | None = Field(default=None)
    actor_process_id: uuid.UUID | None = Field(default=None)
    # Names, never values: `fields` changed, a target's `name`, a `role`; see services/audit.py.
    details: dict[str, Any] = json_field()
