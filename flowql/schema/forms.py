"""Forms and their submissions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from flowql import models
from flowql.resolvers import forms as resolve
from flowql.schema.base import JSON, Connection, FromRow, Info, ident, page_args
from flowql.schema.filters import FilterInput, filter_input
from flowql.services.form_fields import FieldType
from flowql.services.forms import FormFilter
from flowql.services.triggers import form_url

if TYPE_CHECKING:
    from flowql.schema.processes import Process
    from flowql.schema.workflows import Workflow

ProcessRef = Annotated["Process", strawberry.lazy("flowql.schema.processes")]
WorkflowRef = Annotated["Workflow", strawberry.lazy("flowql.schema.workflows")]
FIELD_TYPES = ", ".join(FieldType)


@strawberry.type
class FormField:
    name: str
    type: str = strawberry.field(description=f"One of: {FIELD_TYPES}.")
    required: bool
    label: str | None
    options: list[str] | None = strawberry.field(description="The choices of a select field.")

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> FormField:
        return cls(
            name=spec["name"],
            type=spec["type"],
            required=bool(spec.get("required")),
            label=spec.get("label"),
            options=spec.get("options"),
        )


@strawberry.type
class FormSubmission(FromRow):
    id: uuid.UUID
    number: int
    form_id: uuid.UUID
    data: JSON
    process_id: uuid.UUID | None
    created_at: datetime

    @strawberry.field(description="The number of the form submitted to.")
    async def form_number(self, info: Info) -> int:
        row = await info.context.loaders.by_id(models.Form).load(self.form_id)
        return 0 if row is None else row.number or 0

    @strawberry.field(description="The process the submission started (null without process:read).")
    async def process(self, info: Info) -> ProcessRef | None:
        from flowql.schema.processes import Process

        if self.process_id is None:
            return None
        row = await info.context.loaders.by_id(models.Process).load(self.process_id)
        if row is None or not info.context.principal.can(row.workspace_id, "process:read"):
            return None
        return Process.from_row(row)


@strawberry.type
class Form(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID | None
    name: str
    description: str
    fields: list[FormField]
    created_at: datetime
    public: bool = strawberry.field(
        description="Anyone with the link may open and submit it, without a token."
    )

    @classmethod
    def from_row(cls, row: Any) -> Form:
        return cls(
            id=row.id,
            number=row.number or 0,
            workspace_id=row.workspace_id,
            workflow_id=row.workflow_id,
            name=row.name,
            description=row.description,
            fields=[FormField.from_dict(f) for f in row.fields],
            created_at=row.created_at,
            public=bool(row.public),
        )

    @strawberry.field(
        description="The form's page (GET: an HTML form of its fields; POST: a submission, "
        "urlencoded, multipart or JSON). A public form needs no token there."
    )
    def public_url(self, info: Info) -> str:
        return form_url(info.context.runtime.settings.base_url, self.id)

    @strawberry.field
    async def submissions_count(self, info: Info) -> int:
        loader = info.context.loaders.count(models.FormSubmission, "form_id")
        count: int = await loader.load(self.id)
        return count

    @strawberry.field(description="The workflow a submission starts (null without workflow:read).")
    async def workflow(self, info: Info) -> WorkflowRef | None:
        from flowql.schema.workflows import Workflow

        if self.workflow_id is None:
            return None
        row = await info.context.loaders.by_id(models.Workflow).load(self.workflow_id)
        if row is None or not info.context.principal.can(row.workspace_id, "workflow:read"):
            return None
        return Workflow.from_row(row)

    @strawberry.field(description="Submissions, newest first.")
    async def submissions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
    ) -> Connection[FormSubmission]:
        page = await resolve.list_submissions(
            info.context, self.id, page_args(first, after, offset)
        )
        return Connection.of(page, FormSubmission.from_row)


# -- inputs ------------------------------------------------------------------------------------


@strawberry.input
class FormFieldInput:
    name: str
    type: str = strawberry.field(description=f"One of: {FIELD_TYPES}.")
    required: bool = False
    label: str | None = None
    options: list[str] | None = None

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "label": self.label,
            "options": self.options,
        }


@filter_input(FormFilter)
class FormFilterInput(FilterInput[FormFilter]):
    pass


@strawberry.input
class CreateFormInput:
    name: str
    workspace_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = strawberry.field(
        default=None, description="The workflow a submission starts."
    )
    workflow_number: int | None = strawberry.field(
        default=None, description="The workflow a submission starts, by number."
    )
    description: str = ""
    fields: list[FormFieldInput] = strawberry.field(default_factory=list)
    public: bool = strawberry.field(
        default=False, description="Anyone with its publicUrl may open and submit it."
    )


@strawberry.input
class UpdateFormInput:
    name: str | None = None
    workflow_id: uuid.UUID | None = None
    workflow_number: int | None = None
    description: str | None = None
    fields: list[FormFieldInput] | None = strawberry.field(
        default=None, description="Replaces all fields."
    )
    public: bool | None = None


def _workflow_ref(id: uuid.UUID | None, number: int | None) -> uuid.UUID | int | None:
    return id if id is not None else number


def _specs(fields: list[FormFieldInput] | None) -> list[dict[str, Any]] | None:
    return None if fields is None else [f.spec() for f in fields]


@strawberry.type
class Query:
    @strawberry.field
    async def forms(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
        filter: FormFilterInput | None = None,
    ) -> Connection[Form]:
        filters = (filter or FormFilterInput()).to_filter()
        page = await resolve.list_forms(info.context, filters, page_args(first, after, offset))
        return Connection.of(page, Form.from_row)

    @strawberry.field
    async def form(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Form:
        return Form.from_row(await resolve.form(info.context, ident(id, number)))


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_form(self, info: Info, input: CreateFormInput) -> Form:
        row = await resolve.create_form(
            info.context,
            workspace_id=input.workspace_id,
            workflow_id=_workflow_ref(input.workflow_id, input.workflow_number),
            name=input.name,
            description=input.description,
            fields=_specs(input.fields),
            public=input.public,
        )
        return Form.from_row(row)

    @strawberry.mutation
    async def update_form(
        self,
        info: Info,
        id: uuid.UUID | None = None,
        number: int | None = None,
        *,
        input: UpdateFormInput,
    ) -> Form:
        row = await resolve.update_form(
            info.context,
            ident(id, number),
            workflow_id=_workflow_ref(input.workflow_id, input.workflow_number),
            name=input.name,
            description=input.description,
            fields=_specs(input.fields),
            public=input.public,
        )
        return Form.from_row(row)

    @strawberry.mutation
    async def delete_form(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Form:
        return Form.from_row(await resolve.delete_form(info.context, ident(id, number)))

    @strawberry.mutation(
        description="Submit data checked against the form's fields; starts the form's workflow."
    )
    async def submit_form(
        self,
        info: Info,
        form_id: uuid.UUID | None = None,
        form_number: int | None = None,
        *,
        data: JSON,
    ) -> FormSubmission:
        form = ident(form_id, form_number, "formId", "formNumber")
        return FormSubmission.from_row(await resolve.submit_form(info.context, form, data))
