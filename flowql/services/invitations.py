"""Invitations: joining a workspace takes the invited person's consent.

`member:write` invites an email address; only a user signed in with that address sees the
invitation and may accept or decline it, and until they accept nothing changes for them (their
workspaces, their privileges, where a create without a workspace goes). The inviter's answer is
the same whether or not the address is registered (same shape, same statements), so inviting
cannot tell who has an account. Invitations expire after INVITATION_TTL; admins may revoke them.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.auth.principal import Principal, PrincipalKind
from flowql.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from flowql.models import (
    AuditAction,
    Invitation,
    InvitationStatus,
    Membership,
    Role,
    User,
    utcnow,
)
from flowql.services import audit, workspaces
from flowql.services.auth import normalise_email
from flowql.services.common import get_visible

INVITATION_TTL = timedelta(days=7)
# Open invitations a workspace may hold at once: enough for a team, not for a mailing list.
MAX_OPEN_INVITATIONS = 200


def invitation_open(invitation: Invitation) -> bool:
    return invitation.status == InvitationStatus.PENDING and invitation.expires_at > utcnow()


async def invite_member(
    session: AsyncSession,
    principal: Principal,
    workspace_id: uuid.UUID,
    email: str,
    role: Role = Role.MEMBER,
) -> Invitation:
    """Invites `email` (registered or not: the answer is the same); a repeat renews the offer."""
    principal.require(workspace_id, "member:write", "Workspace")
    if role == Role.OWNER:
        workspaces.require_owner_rights(principal, workspace_id, "role")
    address = normalise_email(email)
    await workspaces.locked_workspace(session, workspace_id)
    # Members are visible to the inviter anyway, so saying "already a member" reveals nothing;
    # the statement runs the same way whether or not the address has an account.
    member = (
        await session.exec(
            select(Membership.id)
            .join(User, col(User.id) == col(Membership.user_id))
            .where(Membership.workspace_id == workspace_id)
            .where(User.email == address)
        )
    ).first()
    if member is not None:
        raise Conflict("already a member of this workspace", field="email")
    now = utcnow()
    open_ones = (
        await session.exec(
            select(Invitation)
            .where(Invitation.workspace_id == workspace_id)
            .where(Invitation.status == InvitationStatus.PENDING)
            .where(col(Invitation.expires_at) > now)
        )
    ).all()
    invitation = next((i for i in open_ones if i.email == address), None)
    if invitation is None:
        if len(open_ones) >= MAX_OPEN_INVITATIONS:
            raise ValidationFailed.one(
                "email", f"at most {MAX_OPEN_INVITATIONS} open invitations per workspace"
            )
        invitation = Invitation(workspace_id=workspace_id, email=address)
    invitation.role = role
    invitation.invited_by = principal.user_id
    invitation.expires_at = now + INVITATION_TTL
    session.add(invitation)
    await session.flush()
    audit.record(session, principal, AuditAction.INVITE, invitation, email=address, role=role)
    return invitation


async def _invited_user(session: AsyncSession, principal: Principal) -> User:
    """Invitations are answered by the person: a signed-in user, not an API key or a process."""
    principal.ensure_authenticated()
    if principal.kind is not PrincipalKind.USER or principal.user_id is None:
        raise Forbidden("only a signed-in user can see or answer their invitations")
    user = (await session.exec(select(User).where(User.id == principal.user_id))).first()
    if user is None or not user.is_active:
        raise Unauthorized("account disabled")
    return user


async def my_invitations(session: AsyncSession, principal: Principal) -> list[Invitation]:
    """The open invitations to the caller's email address (none for API keys and processes)."""
    if principal.kind is not PrincipalKind.USER or principal.user_id is None:
        return []
    user = await _invited_user(session, principal)
    stmt = (
        select(Invitation)
        .where(Invitation.email == user.email)
        .where(Invitation.status == InvitationStatus.PENDING)
        .where(col(Invitation.expires_at) > utcnow())
        .order_by(col(Invitation.number).desc())
        .limit(MAX_OPEN_INVITATIONS)
    )
    return list((await session.exec(stmt)).all())


async def answer_invitation(
    session: AsyncSession, principal: Principal, invitation_id: uuid.UUID | int, accept: bool
) -> Invitation:
    """Accepts or declines an invitation to the caller's own address; anyone else's is NOT_FOUND."""
    user = await _invited_user(session, principal)
    column = col(Invitation.id) if isinstance(invitation_id, uuid.UUID) else col(Invitation.number)
    stmt = select(Invitation).where(column == invitation_id).with_for_update()
    invitation = (await session.exec(stmt)).first()
    if invitation is None or invitation.email != user.email:
        raise NotFound("Invitation")
    if not invitation_open(invitation):
        raise ValidationFailed.one("id", "this invitation is no longer open")
    if accept:
        workspace = await workspaces.locked_workspace(session, invitation.workspace_id)
        # Someone already in (added directly meanwhile) keeps the role they have.
        if await workspaces.membership_of(session, workspace.id, user.id) is None:
            await workspaces.add_member(session, workspace, user, invitation.role)
    invitation.status = InvitationStatus.ACCEPTED if accept else InvitationStatus.DECLINED
    invitation.responded_at = utcnow()
    session.add(invitation)
    await session.flush()
    action = AuditAction.ACCEPT if accept else AuditAction.DECLINE
    audit.record(session, principal, action, invitation, role=invitation.role)
    return invitation


async def revoke_invitation(
    session: AsyncSession, principal: Principal, invitation_id: uuid.UUID | int
) -> Invitation:
    invitation = await get_visible(
        session, principal, Invitation, invitation_id, "member:write", "Invitation"
    )
    if invitation.role == Role.OWNER:
        workspaces.require_owner_rights(principal, invitation.workspace_id, "id")
    if not invitation_open(invitation):
        raise ValidationFailed.one("id", "this invitation is no longer open")
    invitation.status = InvitationStatus.REVOKED
    invitation.responded_at = utcnow()
    session.add(invitation)
    await session.flush()
    audit.record(session, principal, AuditAction.REVOKE, invitation, email=invitation.email)
    return invitation


async def workspace_invitations(
    session: AsyncSession, principal: Principal, workspace_id: uuid.UUID, open_only: bool
) -> list[Invitation]:
    principal.require(workspace_id, "member:write", "Workspace")
    stmt = select(Invitation).where(Invitation.workspace_id == workspace_id)
    if open_only:
        stmt = stmt.where(Invitation.status == InvitationStatus.PENDING).where(
            col(Invitation.expires_at) > utcnow()
        )
    stmt = stmt.order_by(col(Invitation.number).desc()).limit(MAX_OPEN_INVITATIONS)
    return list((await session.exec(stmt)).all())
