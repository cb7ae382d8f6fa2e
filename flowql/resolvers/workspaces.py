"""Workspace, member and group resolvers: arguments in, service call, rows out.

A change to the caller's own membership (a new workspace, a new role, leaving) reloads the
caller's principal, so the rest of the operation sees the workspace as it now is.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import select

from flowql.auth.principal import PrincipalKind
from flowql.models import Group, Invitation, Membership, Plan, Role, User, Workspace
from flowql.resolvers.context import Context
from flowql.services import invitations
from flowql.services import workspaces as service
from flowql.services.auth import user_principal
from flowql.services.uow import unit_of_work


async def _after_change(ctx: Context, affected_user: uuid.UUID | None = None) -> None:
    ctx.loaders.clear()
    principal = ctx.principal
    if principal.kind is not PrincipalKind.USER or principal.user_id is None:
        return
    if affected_user is not None and affected_user != principal.user_id:
        return
    async with ctx.db.read() as session:
        user = (await session.exec(select(User).where(User.id == principal.user_id))).first()
        if user is not None:
            ctx.principal = await user_principal(session, user)


async def workspace(ctx: Context, workspace_id: uuid.UUID) -> Workspace:
    async with ctx.db.read() as session:
        return await service.get_workspace(session, ctx.principal, workspace_id)


async def create_workspace(
    ctx: Context, name: str, plan: Plan | None, cron_timezone: str | None
) -> Workspace:
    async with unit_of_work(ctx.runtime) as uow:
        row = await service.create_owned_workspace(
            uow.session, ctx.principal, name, plan, cron_timezone
        )
    await _after_change(ctx)
    return row


async def assign_workspace_plan(
    ctx: Context, workspace_ref: uuid.UUID | int, plan: Plan
) -> Workspace:
    async with unit_of_work(ctx.runtime) as uow:
        workspace_id = await service.workspace_uuid(uow.session, workspace_ref)
        row = await service.assign_plan(uow.session, ctx.principal, workspace_id, plan)
    ctx.loaders.clear()
    return row


async def update_workspace(
    ctx: Context, workspace_ref: uuid.UUID | int, **fields: Any
) -> Workspace:
    async with unit_of_work(ctx.runtime) as uow:
        workspace_id = await service.workspace_uuid(uow.session, workspace_ref)
        row = await service.update_workspace(uow.session, ctx.principal, workspace_id, **fields)
    ctx.loaders.clear()
    return row


async def invite_member(
    ctx: Context, workspace_ref: uuid.UUID | int, email: str, role: Role
) -> Invitation:
    async with unit_of_work(ctx.runtime) as uow:
        workspace_id = await service.workspace_uuid(uow.session, workspace_ref)
        row = await invitations.invite_member(uow.session, ctx.principal, workspace_id, email, role)
    ctx.loaders.clear()
    return row


async def my_invitations(ctx: Context) -> list[Invitation]:
    async with ctx.db.read() as session:
        return await invitations.my_invitations(session, ctx.principal)


async def workspace_invitations(
    ctx: Context, workspace_id: uuid.UUID, open_only: bool
) -> list[Invitation]:
    async with ctx.db.read() as session:
        return await invitations.workspace_invitations(
            session, ctx.principal, workspace_id, open_only
        )


async def answer_invitation(
    ctx: Context, invitation_id: uuid.UUID | int, accept: bool
) -> Invitation:
    async with unit_of_work(ctx.runtime) as uow:
        row = await invitations.answer_invitation(uow.session, ctx.principal, invitation_id, accept)
    await _after_change(ctx)
    return row


async def revoke_invitation(ctx: Context, invitation_id: uuid.UUID | int) -> Invitation:
    async with unit_of_work(ctx.runtime) as uow:
        row = await invitations.revoke_invitation(uow.session, ctx.principal, invitation_id)
    ctx.loaders.clear()
    return row


async def update_member_role(
    ctx: Context, workspace_ref: uuid.UUID | int, user_id: uuid.UUID, role: Role
) -> Membership:
    async with unit_of_work(ctx.runtime) as uow:
        workspace_id = await service.workspace_uuid(uow.session, workspace_ref)
        row = await service.update_member_role(
            uow.session, ctx.principal, workspace_id, user_id, role
        )
    await _after_change(ctx, user_id)
    return row


async def remove_member(
    ctx: Context, workspace_ref: uuid.UUID | int, user_id: uuid.UUID
) -> Membership:
    async with unit_of_work(ctx.runtime) as uow:
        workspace_id = await service.workspace_uuid(uow.session, workspace_ref)
        row = await service.remove_member(uow.session, ctx.principal, workspace_id, user_id)
    await _after_change(ctx, user_id)
    return row


async def create_group(ctx: Context, workspace_ref: uuid.UUID | int, name: str) -> Group:
    async with unit_of_work(ctx.runtime) as uow:
        workspace_id = await service.workspace_uuid(uow.session, workspace_ref)
        row = await service.create_group(uow.session, ctx.principal, workspace_id, name)
    ctx.loaders.clear()
    return row


async def add_group_member(ctx: Context, group_id: uuid.UUID | int, user_id: uuid.UUID) -> Group:
    async with unit_of_work(ctx.runtime) as uow:
        row = await service.add_group_member(uow.session, ctx.principal, group_id, user_id)
    ctx.loaders.clear()
    return row


async def remove_group_member(ctx: Context, group_id: uuid.UUID | int, user_id: uuid.UUID) -> Group:
    async with unit_of_work(ctx.runtime) as uow:
        row = await service.remove_group_member(uow.session, ctx.principal, group_id, user_id)
    ctx.loaders.clear()
    return row


async def delete_group(ctx: Context, group_id: uuid.UUID | int) -> Group:
    async with unit_of_work(ctx.runtime) as uow:
        row = await service.delete_group(uow.session, ctx.principal, group_id)
    ctx.loaders.clear()
    return row
