"""Scenario definitions (LetsFlow format), stored immutably."""

from __future__ import annotations

from typing import Any

from sqlmodel import Field

from flowql.models.base import WorkspaceRow, json_field


class Scenario(WorkspaceRow, table=True):
    """`id` is derived from the sha256 of the normalised definition (and the workspace)."""

    __tablename__ = "scenarios"
    __table_args__ = {"sqlite_autoincrement": True}

    name: str = Field(default="", max_length=200, index=True)
    title: str = Field(default="", max_length=500)
    description: str = Field(default="", max_length=10000)
    definition: dict[str, Any] = json_field()
    disabled: bool = False
