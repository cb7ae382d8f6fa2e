"""Workspaces, users, memberships and groups."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field

from flowql.models.base import Row, WorkspaceRow, time_field


class Plan(StrEnum):
    """A workspace's rate-limit plan (document 004). Self-hosted, a workspace has none
    (UNLIMITED) until an instance admin assigns one."""

    UNLIMITED = "unlimited"
    FREE = "free"
    STARTER = "starter"
    PRO = "pro"
    BUSINESS = "business"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class Workspace(Row, table=True):
    __tablename__ = "workspaces"
    __table_args__ = {"sqlite_autoincrement": True}

    name: str = Field(max_length=200, index=True)
    plan: Plan = Field(default=Plan.UNLIMITED, max_length=20)
    cron_timezone: str = Field(default="UTC", max_length=64)
    owner_id: uuid.UUID | None = Field(default=None, index=True)


class User(Row, table=True):
    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}

    email: str = Field(max_length=320, unique=True, index=True)
    password_hash: str | None = Field(default=None, max_length=300)
    first_name: str = Field(default="", max_length=200)
    last_name: str = Field(default="", max_length=200)
    avatar: str = Field(default="", max_length=1000)
    is_active: bool = True
    # An operator of this flowql instance: assigns workspaces' plans (flowql workspace plan).
    is_instance_admin: bool = False
    last_login: datetime | None = time_field()


class Membership(Row, table=True):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("workspace_id", "user_id"),
        {"sqlite_autoincrement": True},
    )

    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", index=True, ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    role: Role = Field(default=Role.MEMBER, max_length=20)


class Group(WorkspaceRow, table=True):
    __tablename__ = "groups"
    __table_args__ = {"sqlite_autoincrement": True}

    name: str = Field(max_length=200)
    owner_id: uuid.UUID | None = Field(default=None)
    system_managed: bool = False


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REVOKED = "revoked"
    # Shown for a pending invitation past its expiry; never stored.
    EXPIRED = "expired"


class Invitation(WorkspaceRow, table=True):
    """An offer of membership to whoever signs in with `email`; nothing changes until accepted."""

    __tablename__ = "invitations"
    __table_args__ = {"sqlite_autoincrement": True}

    email: str = Field(max_length=320, index=True)
    role: Role = Field(default=Role.MEMBER, max_length=20)
    invited_by: uuid.UUID | None = Field(default=None)
    expires_at: datetime = time_field(nullable=False)
    status: InvitationStatus = Field(default=InvitationStatus.PENDING, max_length=20)
    responded_at: datetime | None = time_field()


class GroupMember(Row, table=True):
    __tablename__ = "group_members"
    __table_args__ = (UniqueConstraint("group_id", "user_id"), {"sqlite_autoincrement": True})

    group_id: uuid.UUID = Field(foreign_key="groups.id", index=True, ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
