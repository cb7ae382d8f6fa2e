"""Workspaces, their members and groups.

Who may do what: `workspace:write` edits a workspace, `member:write` manages members and groups.
Owner-level changes (adding, promoting, demoting or removing an owner) also need
`workspace:write`, which only owners hold, so an admin cannot hand out or take away ownership.
A workspace always keeps at least one owner. Anyone may leave a workspace, unless they are its
last owner.

Joining takes consent (services/invitations.py): `add_member` (direct membership) is for the
operator's CLI and for workspace creation, never for API callers.
"""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import col, delete, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.auth.principal import Principal, PrincipalKind
from flowql.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from flowql.models import (
    AuditAction,
    Group,
    GroupMember,
    Membership,
    Plan,
    Role,
    User,
    Workspace,
)
from flowql.services import audit
from flowql.services.apikeys import revoke_user_keys
from flowql.services.common import get_visible, require_name


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
    plan: Plan = Plan.UNLIMITED,
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


async def workspace_uuid(session: AsyncSession, ident: uuid.UUID | int) -> uuid.UUID:
    """The UUID of a workspace addressed by id or number (NOT_FOUND for an unknown number).

    Callers still check the caller's grants on the UUID, so a number gives away nothing more."""
    if isinstance(ident, uuid.UUID):
        return ident
    found = (await session.exec(select(Workspace.id).where(Workspace.number == ident))).first()
    if found is None:
        raise NotFound("Workspace")
    return found


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


# -- workspaces --------------------------------------------------------------------------------


async def create_owned_workspace(
    session: AsyncSession,
    principal: Principal,
    name: str,
    plan: Plan | None = None,
    cron_timezone: str | None = None,
) -> Workspace:
    """A workspace created by a signed-in user, who becomes its owner (API keys cannot)."""
    principal.ensure_authenticated()
    if principal.kind is not PrincipalKind.USER or principal.user_id is None:
        raise Forbidden("only users can create workspaces")
    user = (await session.exec(select(User).where(User.id == principal.user_id))).first()
    if user is None or not user.is_active:
        raise Unauthorized("account disabled")
    if plan is not None and plan is not Plan.UNLIMITED:
        await require_instance_admin(session, principal)
    workspace = await create_workspace(
        session, user, name, plan or Plan.UNLIMITED, cron_timezone or "UTC"
    )
    audit.record(session, principal, AuditAction.CREATE, workspace, name=workspace.name)
    return workspace


async def update_workspace(
    session: AsyncSession,
    principal: Principal,
    workspace_id: uuid.UUID,
    *,
    name: str | None = None,
    plan: Plan | None = None,
    cron_timezone: str | None = None,
) -> Workspace:
    workspace = await get_workspace(session, principal, workspace_id, "workspace:write")
    before = {
        "name": workspace.name,
        "plan": workspace.plan,
        "cron_timezone": workspace.cron_timezone,
    }
    new_name = require_name(name) if name is not None else None
    if cron_timezone is not None:
        check_timezone(cron_timezone)
    if new_name is not None:
        workspace.name = new_name
    if plan is not None and plan is not workspace.plan:
        await require_instance_admin(session, principal)
        workspace.plan = plan
    if cron_timezone is not None:
        workspace.cron_timezone = cron_timezone
    session.add(workspace)
    await session.flush()
    audit.record(
        session, principal, AuditAction.UPDATE, workspace, fields=audit.changed(before, workspace)
    )
    return workspace


# -- plans (document 004's rate limits) ---------------------------------------------------------


async def require_instance_admin(session: AsyncSession, principal: Principal) -> User:
    """Plans are the instance operator's to assign: a signed-in user marked instance admin
    (`flowql user create --instance-admin`, `flowql user admin`). API keys never are."""
    principal.ensure_authenticated()
    user = None
    if principal.kind is PrincipalKind.USER and principal.user_id is not None:
        user = (await session.exec(select(User).where(User.id == principal.user_id))).first()
    if user is None or not user.is_active or not user.is_instance_admin:
        raise Forbidden("only an instance admin assigns plans")
    return user


async def set_plan(session: AsyncSession, workspace: Workspace, plan: Plan) -> Workspace:
    """The operator's CLI: no caller to check."""
    workspace.plan = plan
    session.add(workspace)
    await session.flush()
    return workspace


async def assign_plan(
    session: AsyncSession, principal: Principal, workspace_id: uuid.UUID, plan: Plan
) -> Workspace:
    """An instance admin sets any workspace's plan, member of it or not."""
    await require_instance_admin(session, principal)
    workspace = (await session.exec(select(Workspace).where(Workspace.id == workspace_id))).first()
    if workspace is None:
        raise NotFound("Workspace")
    before = {"plan": workspace.plan}
    await set_plan(session, workspace, plan)
    audit.record(
        session, principal, AuditAction.UPDATE, workspace, fields=audit.changed(before, workspace)
    )
    return workspace


# -- members -----------------------------------------------------------------------------------


async def locked_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> Workspace:
    """The workspace row, locked (PostgreSQL) so concurrent membership changes take turns."""
    stmt = select(Workspace).where(Workspace.id == workspace_id).with_for_update(key_share=True)
    workspace = (await session.exec(stmt)).first()
    if workspace is None:
        raise NotFound("Workspace")
    return workspace


async def membership_of(
    session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> Membership | None:
    stmt = (
        select(Membership)
        .where(Membership.workspace_id == workspace_id)
        .where(Membership.user_id == user_id)
    )
    return (await session.exec(stmt)).first()


def require_owner_rights(principal: Principal, workspace_id: uuid.UUID, field: str) -> None:
    if not principal.can(workspace_id, "workspace:write"):
        raise Forbidden("only owners can grant, change or remove the owner role", field=field)


async def _keep_an_owner(
    session: AsyncSession, workspace: Workspace, leaving: Membership, field: str
) -> None:
    """Refuses a change that would take the owner role from the workspace's last owner."""
    others = (
        await session.exec(
            select(func.count())
            .select_from(Membership)
            .where(Membership.workspace_id == workspace.id)
            .where(Membership.role == Role.OWNER)
            .where(Membership.user_id != leaving.user_id)
        )
    ).one()
    if others == 0:
        raise ValidationFailed.one(field, "a workspace must keep at least one owner")


async def _sync_owner_id(session: AsyncSession, workspace: Workspace) -> None:
    """`Workspace.owner_id` names an owner; when that one steps down, the longest-standing."""
    owners = (
        await session.exec(
            select(Membership.user_id)
            .where(Membership.workspace_id == workspace.id)
            .where(Membership.role == Role.OWNER)
            .order_by(col(Membership.number))
        )
    ).all()
    if owners and workspace.owner_id not in owners:
        workspace.owner_id = owners[0]
        session.add(workspace)
        await session.flush()


# -- members -----------------------------------------------------------------------------------


async def update_member_role(
    session: AsyncSession,
    principal: Principal,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    role: Role,
) -> Membership:
    principal.require(workspace_id, "member:write", "Workspace")
    workspace = await locked_workspace(session, workspace_id)
    membership = await membership_of(session, workspace_id, user_id)
    if membership is None:
        raise NotFound("Member")
    if Role.OWNER in (membership.role, role):
        require_owner_rights(principal, workspace_id, "role")
    if membership.role == Role.OWNER and role != Role.OWNER:
        await _keep_an_owner(session, workspace, membership, "role")
    membership.role = role
    session.add(membership)
    await session.flush()
    await _sync_owner_id(session, workspace)
    audit.record(session, principal, AuditAction.UPDATE, membership, user_id=user_id, role=role)
    return membership


async def remove_member(
    session: AsyncSession, principal: Principal, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> Membership:
    """Removes a member (or lets a user leave), with their group places and API keys there."""
    leaving = principal.kind is PrincipalKind.USER and principal.user_id == user_id
    principal.require(workspace_id, "workspace:read" if leaving else "member:write", "Workspace")
    workspace = await locked_workspace(session, workspace_id)
    membership = await membership_of(session, workspace_id, user_id)
    if membership is None:
        raise NotFound("Member")
    if membership.role == Role.OWNER:
        if not leaving:
            require_owner_rights(principal, workspace_id, "userId")
        await _keep_an_owner(session, workspace, membership, "userId")
    groups = select(Group.id).where(Group.workspace_id == workspace_id)
    await session.exec(
        delete(GroupMember)
        .where(col(GroupMember.user_id) == user_id)
        .where(col(GroupMember.group_id).in_(groups))
    )
    await revoke_user_keys(session, workspace_id, user_id)
    await session.delete(membership)
    await session.flush()
    await _sync_owner_id(session, workspace)
    audit.record(session, principal, AuditAction.DELETE, membership, user_id=user_id)
    return membership


# -- groups ------------------------------------------------------------------------------------


async def get_group(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    privilege: str = "member:read",
) -> Group:
    return await get_visible(session, principal, Group, ident, privilege, "Group")


async def create_group(
    session: AsyncSession, principal: Principal, workspace_id: uuid.UUID, name: str
) -> Group:
    principal.require(workspace_id, "member:write", "Workspace")
    name = require_name(name)
    taken = (
        await session.exec(
            select(Group).where(Group.workspace_id == workspace_id).where(Group.name == name)
        )
    ).first()
    if taken is not None:
        raise ValidationFailed.one("name", "a group with this name already exists")
    group = Group(workspace_id=workspace_id, name=name, owner_id=principal.user_id)
    session.add(group)
    await session.flush()
    audit.record(session, principal, AuditAction.CREATE, group, name=name)
    return group


def _editable(group: Group) -> None:
    if group.system_managed:
        raise ValidationFailed.one(
            "groupId", "a system-managed group follows the workspace membership"
        )


async def add_group_member(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID | int, user_id: uuid.UUID
) -> Group:
    group = await get_group(session, principal, group_id, "member:write")
    _editable(group)
    if await membership_of(session, group.workspace_id, user_id) is None:
        raise ValidationFailed.one("userId", "not a member of this workspace")
    existing = await _group_member(session, group.id, user_id)
    if existing is None:
        session.add(GroupMember(group_id=group.id, user_id=user_id))
        await session.flush()
        audit.record(session, principal, AuditAction.UPDATE, group, added_user_id=user_id)
    return group


async def remove_group_member(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID | int, user_id: uuid.UUID
) -> Group:
    group = await get_group(session, principal, group_id, "member:write")
    _editable(group)
    existing = await _group_member(session, group.id, user_id)
    if existing is None:
        raise NotFound("GroupMember")
    await session.delete(existing)
    await session.flush()
    audit.record(session, principal, AuditAction.UPDATE, group, removed_user_id=user_id)
    return group


async def delete_group(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID | int
) -> Group:
    group = await get_group(session, principal, group_id, "member:write")
    if group.system_managed:
        raise ValidationFailed.one("id", "a system-managed group cannot be deleted")
    await session.exec(delete(GroupMember).where(col(GroupMember.group_id) == group.id))
    await session.delete(group)
    await session.flush()
    audit.record(session, principal, AuditAction.DELETE, group, name=group.name)
    return group


async def _group_member(
    session: AsyncSession, group_id: uuid.UUID, user_id: uuid.UUID
) -> GroupMember | None:
    stmt = (
        select(GroupMember)
        .where(GroupMember.group_id == group_id)
        .where(GroupMember.user_id == user_id)
    )
    return (await session.exec(stmt)).first()
