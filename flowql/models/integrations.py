"""Integrations and credentials: their secret values are stored only encrypted."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field

from flowql.models.base import WorkspaceRow, json_field, optional_json_field, time_field


class Integration(WorkspaceRow, table=True):
    __tablename__ = "integrations"
    __table_args__ = {"sqlite_autoincrement": True}

    user_id: uuid.UUID | None = Field(default=None)
    name: str = Field(max_length=200)
    type: str = Field(max_length=100)
    credentials_encrypted: str | None = Field(default=None)
    credentials_state: str = Field(default="unset", max_length=50)
    external_account_id: str = Field(default="", max_length=500)
    settings: dict[str, Any] = json_field()
    last_tested_at: datetime | None = time_field()
    last_test_result: dict[str, Any] | None = optional_json_field()


class Credential(WorkspaceRow, table=True):
    """A write-only secret value, for the whole workspace or for one workflow."""

    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("workspace_id", "workflow_id", "name"),
        {"sqlite_autoincrement": True},
    )

    workflow_id: uuid.UUID | None = Field(
        default=None, foreign_key="workflows.id", index=True, ondelete="CASCADE"
    )
    name: str = Field(max_length=200)
    type: str = Field(default="secret", max_length=50)
    value_encrypted: str
    updated_at: datetime | None = time_field()
