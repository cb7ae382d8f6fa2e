"""Forms and their submissions."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Field

from flowql.models.base import WorkspaceRow, json_field


class Form(WorkspaceRow, table=True):
    __tablename__ = "forms"
    __table_args__ = {"sqlite_autoincrement": True}

    workflow_id: uuid.UUID | None = Field(
        default=None, foreign_key="workflows.id", index=True, ondelete="SET NULL"
    )
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=5000)
    # [{"name", "type", "required", "label", "options"}]
    fields: list[dict[str, Any]] = json_field(list)
    # Anyone with the link may open and submit it (/forms/{id}), without a token.
    public: bool = False


class FormSubmission(WorkspaceRow, table=True):
    __tablename__ = "form_submissions"
    __table_args__ = {"sqlite_autoincrement": True}

    form_id: uuid.UUID = Field(foreign_key="forms.id", index=True, ondelete="CASCADE")
    data: dict[str, Any] = json_field()
    process_id: uuid.UUID | None = Field(default=None, index=True)
