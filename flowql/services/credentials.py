"""Credentials: named, write-only secret values for a whole workspace or for one workflow."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal
from flowql.auth.secrets_box import SecretBox
from flowql.errors import NotFound, ValidationFailed
from flowql.models import AuditAction, Credential, Workflow, utcnow
from flowql.services import audit
from flowql.services.common import apply_common_filters, get_visible, require_name, visible

MAX_VALUE_LENGTH = 64 * 1024
TYPE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,49}$")


@dataclass
class CredentialFilter:
    workspace_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    search: str | None = None


def list_statement(principal: Principal, filters: CredentialFilter) -> SelectOfScalar[Credential]:
    stmt = visible(principal, Credential, "credential:read", filters.workspace_id)
    if filters.workflow_id is not None:
        stmt = stmt.where(col(Credential.workflow_id) == filters.workflow_id)
    return apply_common_filters(stmt, Credential, search=filters.search)


async def get_credential(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    privilege: str = "credential:read",
) -> Credential:
    return await get_visible(session, principal, Credential, ident, privilege, "Credential")


def check_value(value: str | None, field: str = "value") -> str:
    if value is None or value == "":
        raise ValidationFailed.one(field, "must not be empty")
    if len(value) > MAX_VALUE_LENGTH:
        raise ValidationFailed.one(field, f"must be at most {MAX_VALUE_LENGTH} characters")
    return value


def check_type(value: str | None) -> str:
    value = (value or "").strip()
    if not TYPE_PATTERN.match(value):
        raise ValidationFailed.one(
            "type", "must be 1-50 letters, digits, '_', '.', ':' or '-', starting alphanumeric"
        )
    return value


async def _find(
    session: AsyncSession, workspace_id: uuid.UUID, workflow_id: uuid.UUID | None, name: str
) -> Credential | None:
    column = col(Credential.workflow_id)
    scope = column.is_(None) if workflow_id is None else column == workflow_id
    stmt = (
        select(Credential)
        .where(col(Credential.workspace_id) == workspace_id)
        .where(scope)
        .where(col(Credential.name) == name)
    )
    return (await session.exec(stmt)).first()


async def _check_unique(session: AsyncSession, credential: Credential, name: str) -> None:
    clash = await _find(session, credential.workspace_id, credential.workflow_id, name)
    if clash is not None and clash.id != credential.id:
        raise ValidationFailed.one("name", "a credential with this name exists in this scope")


async def _workflow_in(
    session: AsyncSession, principal: Principal, workflow_id: uuid.UUID
) -> Workflow:
    """A workflow the caller may read, for scoping a credential; VALIDATION_ERROR otherwise."""
    row = (await session.exec(select(Workflow).where(Workflow.id == workflow_id))).first()
    if row is None or not principal.can(row.workspace_id, "workflow:read"):
        raise ValidationFailed.one("workflowId", "no such workflow")
    return row


async def create_credential(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    *,
    workspace_id: uuid.UUID | None,
    workflow_id: uuid.UUID | None = None,
    name: str,
    type: str = "secret",
    value: str,
) -> Credential:
    if workflow_id is not None:
        workflow = await _workflow_in(session, principal, workflow_id)
        if workspace_id is not None and workspace_id != workflow.workspace_id:
            raise ValidationFailed.one("workflowId", "belongs to another workspace")
        workspace_id = workflow.workspace_id
    workspace_id = workspace_id or principal.default_workspace("credential:write")
    principal.require(workspace_id, "credential:write", "Workspace")
    credential = Credential(
        workspace_id=workspace_id,
        workflow_id=workflow_id,
        name=require_name(name),
        type=check_type(type),
        value_encrypted=box.encrypt(check_value(value)),
        updated_at=utcnow(),
    )
    await _check_unique(session, credential, credential.name)
    session.add(credential)
    await session.flush()
    audit.record(session, principal, AuditAction.CREATE, credential, name=credential.name)
    return credential


async def update_credential(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    ident: uuid.UUID | int,
    *,
    name: str | None = None,
    value: str | None = None,
) -> Credential:
    credential = await get_credential(session, principal, ident, "credential:write")
    if name is not None:
        name = require_name(name)
        await _check_unique(session, credential, name)
        credential.name = name
    if value is not None:
        credential.value_encrypted = box.encrypt(check_value(value))
    credential.updated_at = utcnow()
    session.add(credential)
    await session.flush()
    fields = audit.given(name=name, value=value)
    audit.record(session, principal, AuditAction.UPDATE, credential, fields=fields)
    return credential


async def delete_credential(
    session: AsyncSession, principal: Principal, ident: uuid.UUID | int
) -> Credential:
    credential = await get_credential(session, principal, ident, "credential:write")
    await session.delete(credential)
    await session.flush()
    audit.record(session, principal, AuditAction.DELETE, credential, name=credential.name)
    return credential


async def set_workflow_secret(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    workflow_id: uuid.UUID | int,
    key: str,
    value: str,
) -> Credential:
    """Create or replace the workflow's secret `key` (WayScript's lair secrets)."""
    workflow = await get_visible(
        session, principal, Workflow, workflow_id, "workflow:write", "Workflow"
    )
    key = require_name(key, "key")
    sealed = box.encrypt(check_value(value))
    credential = await _find(session, workflow.workspace_id, workflow.id, key)
    if credential is None:
        credential = Credential(
            workspace_id=workflow.workspace_id,
            workflow_id=workflow.id,
            name=key,
            type="secret",
            value_encrypted=sealed,
        )
    credential.value_encrypted = sealed
    credential.updated_at = utcnow()
    session.add(credential)
    await session.flush()
    audit.record(session, principal, AuditAction.UPDATE, credential, name=key, fields=["value"])
    return credential


async def resolve_credential_value(
    session: AsyncSession,
    box: SecretBox,
    workspace_id: uuid.UUID,
    name: str,
    workflow_id: uuid.UUID | None = None,
) -> str:
    """For the engine: the plaintext of `name`, the workflow's own first, then the workspace's."""
    credential = None
    if workflow_id is not None:
        credential = await _find(session, workspace_id, workflow_id, name)
    if credential is None:
        credential = await _find(session, workspace_id, None, name)
    if credential is None:
        raise NotFound("Credential")
    return box.decrypt(credential.value_encrypted)
