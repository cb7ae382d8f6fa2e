"""Workspaces and their members."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.auth.principal import Principal
from flowql.errors import NotFound, ValidationFailed
from flowql.models import Group, GroupMember, Membership, Plan, Role, User, Workspace
from flowql.services.common import require_name


def check_timezone(timezone: str, field: str = "cronTimezone") -> str:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed.one(field, f"unknown timezone {timezone!r}") from None
    return timezone


async def create_workspace(
    session: AsyncSession,
    owner: User,
    name: str,
    plan: Plan = Plan.FREE,
    cron_timezone: str = "UTC",
) -> Workspace:
    """A new workspace owned by `owner`, with the system-managed group of all its members."""
    workspace = Workspace(
        name=require_name(name),
        plan=plan,
        cron_timezone=check_timezone(cron_timezone),
        owner_id=owner.id,
    )
    session.add(workspace)
    await session.flush()
    session.add(Membership(workspace_id=workspace.id, user_id=owner.id, role=Role.OWNER))
    group = Group(
        workspace_id=workspace.id, name="Everyone", owner_id=owner.id, system_managed=True
    )
    session.add(group)
    await session.flush()
    session.add(GroupMember(group_id=group.id, user_id=owner.id))
    await session.flush()
    return workspace


async def add_member(
    session: AsyncSession, workspace: Workspace, user: User, role: Role
) -> Membership:
    existing = (
        await session.exec(
            select(Membership)
            .where(Membership.workspace_id == workspace.id)
            .where(Membership.user_id == user.id)
        )
    ).first()
    if existing is not None:
        existing.role = role
        session.add(existing)
        await session.flush()
        return existing
    membership = Membership(workspace_id=workspace.id, user_id=user.id, role=role)
    session.add(membership)
    everyone = (
        await session.exec(
            select(Group)
            .where(Group.workspace_id == workspace.id)
            .where(col(Group.system_managed).is_(True))
        )
    ).first()
    if everyone is not None:
        session.add(GroupMember(group_id=everyone.id, user_id=user.id))
    await session.flush()
    return membership


async def workspace_by_name(session: AsyncSession, name: str) -> Workspace | None:
    stmt = select(Workspace).where(Workspace.name == name).order_by(col(Workspace.number))
    return (await session.exec(stmt)).first()


async def get_workspace(
    session: AsyncSession,
    principal: Principal,
    workspace_id: uuid.UUID,
    privilege: str = "workspace:read",
) -> Workspace:
    principal.require(workspace_id, privilege, "Workspace")
    workspace = (await session.exec(select(Workspace).where(Workspace.id == workspace_id))).first()
    if workspace is None:
        raise NotFound("Workspace")
    return workspace
