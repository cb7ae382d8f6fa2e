"""Workspaces, users, members and groups; the viewer."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from flowql import models
from flowql.resolvers import auth as resolve_auth
from flowql.schema.base import FromRow, Info

strawberry.enum(models.Plan, name="Plan")
strawberry.enum(models.Role, name="Role")
Plan = models.Plan
Role = models.Role


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


@strawberry.type
class Workspace(FromRow):
    id: uuid.UUID
    number: int
    name: str
    plan: Plan
    cron_timezone: str
    owner_id: uuid.UUID | None
    created_at: datetime

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


@strawberry.type
class Viewer:
    user: User | None
    workspaces: list[Workspace]
    kind: str


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


@strawberry.type
class Mutation:
    pass
