"""Forms: typed fields, submissions checked against them, and the hook that starts a workflow."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import ANONYMOUS, Principal
from flowql.errors import NotFound, ValidationFailed
from flowql.models import AuditAction, Form, FormSubmission, Workflow
from flowql.services import audit, outbox
from flowql.services.common import (
    apply_common_filters,
    check_length,
    get_visible,
    require_name,
    visible,
)
from flowql.services.form_fields import check_fields, check_submission
from flowql.services.processes import start_for_submission
from flowql.services.runtime import Runtime
from flowql.services.uow import UnitOfWork


@dataclass
class FormFilter:
    workspace_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    search: str | None = None


def list_statement(principal: Principal, filters: FormFilter) -> SelectOfScalar[Form]:
    stmt = visible(principal, Form, "form:read", filters.workspace_id)
    if filters.workflow_id is not None:
        stmt = stmt.where(col(Form.workflow_id) == filters.workflow_id)
    return apply_common_filters(stmt, Form, search=filters.search)


def submissions_statement(
    principal: Principal, form_id: uuid.UUID
) -> SelectOfScalar[FormSubmission]:
    stmt = visible(principal, FormSubmission, "form:read")
    return stmt.where(col(FormSubmission.form_id) == form_id)


async def get_form(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    privilege: str = "form:read",
) -> Form:
    return await get_visible(session, principal, Form, ident, privilege, "Form")


async def _check_workflow(
    session: AsyncSession,
    principal: Principal,
    workspace_id: uuid.UUID,
    workflow_id: uuid.UUID | int,
) -> uuid.UUID:
    """The UUID of the workflow (addressed by id or number) if it is in the form's workspace."""
    column = col(Workflow.id) if isinstance(workflow_id, uuid.UUID) else col(Workflow.number)
    row = (await session.exec(select(Workflow).where(column == workflow_id))).first()
    if (
        row is None
        or row.workspace_id != workspace_id
        or not principal.can(workspace_id, "workflow:read")
    ):
        field = "workflowId" if isinstance(workflow_id, uuid.UUID) else "workflowNumber"
        raise ValidationFailed.one(field, "no such workflow in the form's workspace")
    return row.id


async def create_form(
    session: AsyncSession,
    principal: Principal,
    *,
    workspace_id: uuid.UUID | None,
    name: str,
    description: str = "",
    fields: list[dict[str, Any]] | None = None,
    workflow_id: uuid.UUID | int | None = None,
    public: bool = False,
) -> Form:
    workspace_id = workspace_id or principal.default_workspace("form:write")
    principal.require(workspace_id, "form:write", "Workspace")
    form = Form(
        workspace_id=workspace_id,
        name=require_name(name),
        description=description or "",
        fields=check_fields(fields or []),
        public=public,
    )
    check_length(description, "description", 5000)
    if workflow_id is not None:
        form.workflow_id = await _check_workflow(session, principal, workspace_id, workflow_id)
    session.add(form)
    await session.flush()
    audit.record(session, principal, AuditAction.CREATE, form, name=form.name)
    return form


async def update_form(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    *,
    name: str | None = None,
    description: str | None = None,
    fields: list[dict[str, Any]] | None = None,
    workflow_id: uuid.UUID | int | None = None,
    public: bool | None = None,
) -> Form:
    form = await get_form(session, principal, ident, "form:write")
    check_length(description, "description", 5000)
    checked = None if fields is None else check_fields(fields)
    if workflow_id is not None:
        form.workflow_id = await _check_workflow(session, principal, form.workspace_id, workflow_id)
    if name is not None:
        form.name = require_name(name)
    if description is not None:
        form.description = description
    if checked is not None:
        form.fields = checked
    if public is not None:
        form.public = public
    session.add(form)
    await session.flush()
    changed = audit.given(name=name, description=description, fields=fields, workflow_id=workflow_id, public=public)  # fmt: skip
    audit.record(session, principal, AuditAction.UPDATE, form, fields=changed)
    return form


async def delete_form(session: AsyncSession, principal: Principal, ident: uuid.UUID | int) -> Form:
    form = await get_form(session, principal, ident, "form:write")
    await session.delete(form)
    await session.flush()
    audit.record(session, principal, AuditAction.DELETE, form, name=form.name)
    return form


async def submit_form(
    uow: UnitOfWork, runtime: Runtime, principal: Principal, ident: uuid.UUID | int, data: Any
) -> FormSubmission:
    """Store a submission that matches the form's fields, run the hooks, announce it."""
    form = await get_form(uow.session, principal, ident, "form:write")
    return await _submit(uow, runtime, principal, form, data)


async def get_public_form(session: AsyncSession, form_id: uuid.UUID) -> Form:
    """A form anyone may open and submit (`public`); any other: NOT_FOUND, as if none."""
    form = (await session.exec(select(Form).where(Form.id == form_id))).first()
    if form is None or not form.public:
        raise NotFound("Form")
    return form


async def submit_public_form(
    uow: UnitOfWork, runtime: Runtime, form_id: uuid.UUID, data: Any
) -> FormSubmission:
    """A submission from the form's public page: nobody's token, the same checks as submitForm;
    the workflow runs with what its last editor may do, as for a webhook."""
    form = await get_public_form(uow.session, form_id)
    return await _submit(uow, runtime, ANONYMOUS, form, data)


async def _submit(
    uow: UnitOfWork, runtime: Runtime, principal: Principal, form: Form, data: Any
) -> FormSubmission:
    submission = FormSubmission(
        workspace_id=form.workspace_id, form_id=form.id, data=check_submission(form.fields, data)
    )
    uow.session.add(submission)
    await uow.session.flush()
    # The form's workflow starts in the same transaction: no submission without its process.
    await start_for_submission(uow, runtime, form, submission, principal.user_id)
    audit.record(uow.session, principal, AuditAction.CREATE, submission, form_id=form.id)
    await outbox.enqueue(
        uow.session,
        form.workspace_id,
        "form.submitted",
        {
            "form_id": str(form.id),
            "submission": {
                "id": str(submission.id),
                "data": submission.data,
                "process_id": str(submission.process_id) if submission.process_id else None,
            },
        },
    )
    uow.publish(
        "form.submitted",
        form.workspace_id,
        form_id=str(form.id),
        submission_id=str(submission.id),
    )
    return submission
