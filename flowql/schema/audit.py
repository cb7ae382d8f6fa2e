"""The audit log: who created, changed, ran, revoked or deleted what, and with which credential."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from flowql import models
from flowql.resolvers import audit as resolve
from flowql.schema.base import JSON, Connection, FromRow, Info, page_args
from flowql.schema.filters import FilterInput, filter_input
from flowql.services.audit import AuditFilter

strawberry.enum(models.AuditAction, name="AuditAction")
AuditAction = models.AuditAction


@strawberry.type(
    description="One change: its action and target, when, and the credential behind it (the "
    "user, the API key and its issuer, or the process of an execution token). Never values."
)
class AuditEntry(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    action: AuditAction
    target_type: str = strawberry.field(description="The GraphQL type of the target: Workflow, …")
    target_id: uuid.UUID | None
    actor_kind: str = strawberry.field(description="user, api_key, execution or system.")
    actor_user_id: uuid.UUID | None
    actor_api_key_id: uuid.UUID | None
    actor_process_id: uuid.UUID | None
    details: JSON = strawberry.field(
        description="Names only: changed `fields`, a `name`, a `role`."
    )
    created_at: datetime


@filter_input(AuditFilter, exclude=["workspace_id"])
class AuditFilterInput(FilterInput[AuditFilter]):
    pass


@strawberry.type
class Query:
    @strawberry.field(
        description="The audit log of the workspaces where you hold `audit:read` (owners and "
        "admins), newest first."
    )
    async def audit_log(
        self,
        info: Info,
        workspace_id: uuid.UUID | None = None,
        first: int | None = None,
        after: str | None = None,
        filter: AuditFilterInput | None = None,
    ) -> Connection[AuditEntry]:
        filters = (filter or AuditFilterInput()).to_filter(workspace_id=workspace_id)
        page = await resolve.audit_log(info.context, filters, page_args(first, after))
        return Connection.of(page, AuditEntry.from_row)
