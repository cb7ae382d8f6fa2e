"""Workspaces, users, members and groups; the viewer."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from flowql import models
from flowql.models import utcnow
from flowql.resolvers import auth as resolve_auth
from flowql.resolvers import workspaces as resolve
from flowql.schema.base import FromRow, Info, ident

strawberry.enum(models.Plan, name="Plan")
strawberry.enum(models.Role, name="Role")
strawberry.enum(models.InvitationStatus, name="InvitationStatus")
Plan = models.Plan
Role = models.Role
InvitationStatus = models.InvitationStatus
# Namespace of the stable per-plan ids served as WayScript's `account_tier_id`.
ACCOUNT_TIER_NAMESPACE = uuid.UUID("5d0b1c2e-8f3a-4b6e-9c1d-7a2f4e6b8c90")


@strawberry.type
class User(FromRow):
    id: uuid.UUID
    number: int
    email: str
    first_name: str
    last_name: str
    avatar: str
    created_at: datetime
    last_login: datetime | None


@strawberry.type
class Member(FromRow):
    user_id: uuid.UUID
    workspace_id: uuid.UUID
    role: Role
    created_at: datetime

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        return User.maybe(await info.context.loaders.by_id(models.User).load(self.user_id))


@strawberry.type
class Group(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    name: str
    owner_id: uuid.UUID | None
    system_managed: bool
    created_at: datetime

    @strawberry.field
    async def members(self, info: Info) -> list[User]:
        info.context.principal.require(self.workspace_id, "member:read", "Workspace")
        links = await info.context.loaders.children(models.GroupMember, "group_id").load(self.id)
        users = await info.context.loaders.by_id(models.User).load_many([m.user_id for m in links])
        return [User.from_row(u) for u in users if u is not None]


@strawberry.type(
    description="An offer of membership to an email address. Only a user signed in with that "
    "address sees it (`viewer.invitations`) and may accept or decline it; admins see and revoke "
    "their workspace's (`workspace.invitations`). It expires unanswered."
)
class Invitation:
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    email: str
    role: Role
    status: InvitationStatus
    invited_by_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None

    @classmethod
    def from_row(cls, row: models.Invitation) -> Invitation:
        expired = row.status == models.InvitationStatus.PENDING and row.expires_at <= utcnow()
        return cls(
            id=row.id,
            number=row.number or 0,
            workspace_id=row.workspace_id,
            email=row.email,
            role=row.role,
            status=models.InvitationStatus.EXPIRED if expired else row.status,
            invited_by_id=row.invited_by,
            created_at=row.created_at,
            expires_at=row.expires_at,
            responded_at=row.responded_at,
        )

    @strawberry.field(description="The inviting workspace's name, shown to the invitee.")
    async def workspace_name(self, info: Info) -> str:
        row = await info.context.loaders.by_id(models.Workspace).load(self.workspace_id)
        return row.name if row is not None else ""

    @strawberry.field(description="The workspace, once the caller is a member (after accepting).")
    async def workspace(self, info: Info) -> Workspace | None:
        if not info.context.principal.can(self.workspace_id, "workspace:read"):
            return None
        return Workspace.maybe(
            await info.context.loaders.by_id(models.Workspace).load(self.workspace_id)
        )

    @strawberry.field
    async def invited_by(self, info: Info) -> User | None:
        if self.invited_by_id is None:
            return None
        return User.maybe(await info.context.loaders.by_id(models.User).load(self.invited_by_id))


@strawberry.type
class Workspace(FromRow):
    id: uuid.UUID
    number: int
    name: str
    plan: Plan
    cron_timezone: str
    owner_id: uuid.UUID | None
    created_at: datetime

    @strawberry.field(
        description="A stable id of the workspace's plan (WayScript's account tier): the same "
        "for every workspace on that plan."
    )
    def account_tier_id(self) -> uuid.UUID:
        return uuid.uuid5(ACCOUNT_TIER_NAMESPACE, f"flowql:plan:{self.plan.value}")

    @strawberry.field(
        description="The groups of this workspace the caller's user belongs to (the API key's "
        "issuer, the process's user); empty without a user."
    )
    async def viewer_groups(self, info: Info) -> list[Group]:
        user_id = info.context.principal.user_id
        if user_id is None:
            return []
        links = await info.context.loaders.children(models.GroupMember, "user_id").load(user_id)
        groups = await info.context.loaders.by_id(models.Group).load_many(
            [link.group_id for link in links]
        )
        return [Group.from_row(g) for g in groups if g is not None and g.workspace_id == self.id]

    @strawberry.field(description="The caller's role here (None for API keys and processes).")
    def viewer_role(self, info: Info) -> Role | None:
        role = info.context.principal.roles.get(self.id)
        return models.Role(role) if role else None

    @strawberry.field(description="The caller's privileges in this workspace.")
    def viewer_privileges(self, info: Info) -> list[str]:
        return sorted(info.context.principal.grants.get(self.id, frozenset()))

    @strawberry.field
    async def members(self, info: Info) -> list[Member]:
        info.context.principal.require(self.id, "member:read", "Workspace")
        loader = info.context.loaders.children(models.Membership, "workspace_id")
        return Member.from_rows(await loader.load(self.id))

    @strawberry.field
    async def groups(self, info: Info) -> list[Group]:
        info.context.principal.require(self.id, "member:read", "Workspace")
        loader = info.context.loaders.children(models.Group, "workspace_id")
        return Group.from_rows(await loader.load(self.id))

    @strawberry.field(
        description="Invitations to this workspace (owners and admins), newest first."
    )
    async def invitations(self, info: Info, open_only: bool = True) -> list[Invitation]:
        rows = await resolve.workspace_invitations(info.context, self.id, open_only)
        return [Invitation.from_row(r) for r in rows]


@strawberry.type
class Viewer:
    user: User | None
    workspaces: list[Workspace]
    kind: str

    @strawberry.field(
        description="The user the credential acts for: the logged-in user, an API key's issuer, "
        "or the user who started the process of an execution token."
    )
    async def acting_user(self, info: Info) -> User | None:
        user_id = info.context.principal.user_id
        if user_id is None:
            return None
        return User.maybe(await info.context.loaders.by_id(models.User).load(user_id))

    @strawberry.field(
        description="Open invitations to the signed-in user's email address (empty for API keys "
        "and processes)."
    )
    async def invitations(self, info: Info) -> list[Invitation]:
        return [Invitation.from_row(r) for r in await resolve.my_invitations(info.context)]


@strawberry.type
class Query:
    @strawberry.field(description="Who is calling, with the workspaces the caller can see.")
    async def viewer(self, info: Info) -> Viewer:
        user, workspaces = await resolve_auth.viewer(info.context)
        return Viewer(
            user=User.maybe(user),
            workspaces=Workspace.from_rows(workspaces),
            kind=info.context.principal.kind.value,
        )

    @strawberry.field
    async def workspace(self, info: Info, id: uuid.UUID) -> Workspace:
        return Workspace.from_row(await resolve.workspace(info.context, id))


@strawberry.input
class UpdateWorkspaceInput:
    name: str | None = None
    plan: Plan | None = strawberry.field(
        default=None, description="Instance admins only (see assignWorkspacePlan)."
    )
    cron_timezone: str | None = strawberry.field(
        default=None, description="IANA name, e.g. Europe/Amsterdam; schedules run in it."
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Create a workspace; you become its owner. Only an instance admin may give "
        "a plan other than UNLIMITED."
    )
    async def create_workspace(
        self,
        info: Info,
        name: str,
        plan: Plan | None = None,
        cron_timezone: str | None = None,
    ) -> Workspace:
        row = await resolve.create_workspace(info.context, name, plan, cron_timezone)
        return Workspace.from_row(row)

    @strawberry.mutation
    async def update_workspace(
        self,
        info: Info,
        id: uuid.UUID | None = None,
        number: int | None = None,
        *,
        input: UpdateWorkspaceInput,
    ) -> Workspace:
        row = await resolve.update_workspace(
            info.context,
            ident(id, number),
            name=input.name,
            plan=input.plan,
            cron_timezone=input.cron_timezone,
        )
        return Workspace.from_row(row)

    @strawberry.mutation(
        description="Instance admins only: set any workspace's rate-limit plan (document 004). "
        "UNLIMITED (a self-hosted workspace's default) is no plan: its callers are never refused."
    )
    async def assign_workspace_plan(
        self,
        info: Info,
        workspace_id: uuid.UUID | None = None,
        workspace_number: int | None = None,
        *,
        plan: Plan,
    ) -> Workspace:
        ref = ident(workspace_id, workspace_number, "workspaceId", "workspaceNumber")
        return Workspace.from_row(await resolve.assign_workspace_plan(info.context, ref, plan))

    @strawberry.mutation(
        description="Invite an email address to a workspace. The answer is the same whether or "
        "not the address has an account; nothing changes for that user until they accept."
    )
    async def invite_member(
        self,
        info: Info,
        workspace_id: uuid.UUID | None = None,
        workspace_number: int | None = None,
        *,
        email: str,
        role: Role = models.Role.MEMBER,
    ) -> Invitation:
        ref = ident(workspace_id, workspace_number, "workspaceId", "workspaceNumber")
        return Invitation.from_row(await resolve.invite_member(info.context, ref, email, role))

    @strawberry.mutation(description="Join the workspace of an invitation to your address.")
    async def accept_invitation(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Invitation:
        row = await resolve.answer_invitation(info.context, ident(id, number), accept=True)
        return Invitation.from_row(row)

    @strawberry.mutation(description="Refuse an invitation to your address.")
    async def decline_invitation(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Invitation:
        row = await resolve.answer_invitation(info.context, ident(id, number), accept=False)
        return Invitation.from_row(row)

    @strawberry.mutation(description="Withdraw an open invitation (owners and admins).")
    async def revoke_invitation(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Invitation:
        return Invitation.from_row(await resolve.revoke_invitation(info.context, ident(id, number)))

    @strawberry.mutation
    async def update_member_role(
        self,
        info: Info,
        workspace_id: uuid.UUID | None = None,
        workspace_number: int | None = None,
        *,
        user_id: uuid.UUID,
        role: Role,
    ) -> Member:
        ref = ident(workspace_id, workspace_number, "workspaceId", "workspaceNumber")
        return Member.from_row(await resolve.update_member_role(info.context, ref, user_id, role))

    @strawberry.mutation(description="Remove a member; your own user id leaves the workspace.")
    async def remove_member(
        self,
        info: Info,
        workspace_id: uuid.UUID | None = None,
        workspace_number: int | None = None,
        *,
        user_id: uuid.UUID,
    ) -> Member:
        ref = ident(workspace_id, workspace_number, "workspaceId", "workspaceNumber")
        return Member.from_row(await resolve.remove_member(info.context, ref, user_id))

    @strawberry.mutation
    async def create_group(
        self,
        info: Info,
        workspace_id: uuid.UUID | None = None,
        workspace_number: int | None = None,
        *,
        name: str,
    ) -> Group:
        ref = ident(workspace_id, workspace_number, "workspaceId", "workspaceNumber")
        return Group.from_row(await resolve.create_group(info.context, ref, name))

    @strawberry.mutation
    async def add_group_member(
        self,
        info: Info,
        group_id: uuid.UUID | None = None,
        group_number: int | None = None,
        *,
        user_id: uuid.UUID,
    ) -> Group:
        ref = ident(group_id, group_number, "groupId", "groupNumber")
        return Group.from_row(await resolve.add_group_member(info.context, ref, user_id))

    @strawberry.mutation
    async def remove_group_member(
        self,
        info: Info,
        group_id: uuid.UUID | None = None,
        group_number: int | None = None,
        *,
        user_id: uuid.UUID,
    ) -> Group:
        ref = ident(group_id, group_number, "groupId", "groupNumber")
        return Group.from_row(await resolve.remove_group_member(info.context, ref, user_id))

    @strawberry.mutation(description="Delete a group; system-managed groups cannot be deleted.")
    async def delete_group(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Group:
        return Group.from_row(await resolve.delete_group(info.context, ident(id, number)))
