"""API keys and refresh tokens; only hashes of the secrets are stored."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Field

from flowql.models.base import Row, WorkspaceRow, json_field, optional_json_field, time_field


class ApiKey(WorkspaceRow, table=True):
    __tablename__ = "api_keys"
    __table_args__ = {"sqlite_autoincrement": True}

    user_id: uuid.UUID | None = Field(default=None, index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    prefix: str = Field(max_length=32, unique=True, index=True)
    key_hash: str = Field(max_length=128)
    privileges: list[str] = json_field(list)
    # [{"scenario": uuid|None, "actors": [..], "actions": [..]}]: LetsFlow process scopes.
    process_scopes: list[dict[str, Any]] = json_field(list)
    expires_at: datetime | None = time_field()
    last_used_at: datetime | None = time_field()
    revoked_at: datetime | None = time_field()


class RefreshToken(Row, table=True):
    """A rotating refresh token; reuse of a rotated one revokes its whole family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = {"sqlite_autoincrement": True}

    user_id: uuid.UUID | None = Field(default=None, index=True)
    # Execution tokens (WayScript) belong to a process instead of a user.
    process_id: uuid.UUID | None = Field(default=None, index=True)
    workspace_id: uuid.UUID | None = Field(default=None, index=True)
    family_id: uuid.UUID = Field(default_factory=uuid.uuid4, index=True)
    token_hash: str = Field(max_length=128, unique=True, index=True)
    expires_at: datetime | None = time_field()
    rotated_at: datetime | None = time_field()
    revoked_at: datetime | None = time_field()
    # An execution token's privileges never exceed its issuer's; rotation keeps the limit.
    privileges: list[str] | None = optional_json_field()
