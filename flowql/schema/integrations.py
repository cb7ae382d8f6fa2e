"""Integrations and credentials. Secret values go in; they never come out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry

from flowql.resolvers import credentials as resolve_credentials
from flowql.resolvers import integrations as resolve
from flowql.schema.base import JSON, Connection, FromRow, Info, ident, page_args
from flowql.schema.filters import FilterInput, filter_input
from flowql.services.credentials import CredentialFilter
from flowql.services.integrations import IntegrationFilter


@strawberry.type(description="A connected account. Its credentials are write-only.")
class Integration(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    user_id: uuid.UUID | None
    name: str
    type: str
    credentials_state: str
    external_account_id: str
    settings: JSON
    created_at: datetime
    last_tested_at: datetime | None
    last_test_result: JSON | None = strawberry.field(
        description="{ok, status, error} of the last testIntegration."
    )
    has_credentials: bool

    @classmethod
    def from_row(cls, row: Any) -> Integration:
        return cls(
            id=row.id,
            number=row.number or 0,
            workspace_id=row.workspace_id,
            user_id=row.user_id,
            name=row.name,
            type=row.type,
            credentials_state=row.credentials_state,
            external_account_id=row.external_account_id,
            settings=row.settings,
            created_at=row.created_at,
            last_tested_at=row.last_tested_at,
            last_test_result=row.last_test_result,
            has_credentials=row.credentials_encrypted is not None,
        )

    @strawberry.field(
        description="The decrypted credentials, handed only to a running process of this "
        "workspace (its execution token, as WayScript does); null for every other caller."
    )
    async def credentials(self, info: Info) -> JSON | None:
        return await resolve.credentials_for_process(info.context, self.id)


@strawberry.type(
    description="A named secret for a workspace or one workflow; its value is write-only."
)
class Credential(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID | None
    name: str
    type: str
    created_at: datetime
    updated_at: datetime | None


# -- inputs ------------------------------------------------------------------------------------


@filter_input(IntegrationFilter)
class IntegrationFilterInput(FilterInput[IntegrationFilter]):
    pass


@strawberry.input
class CreateIntegrationInput:
    name: str
    type: str = strawberry.field(description="e.g. http (settings.url is GET by testIntegration)")
    workspace_id: uuid.UUID | None = None
    settings: JSON | None = None
    credentials: JSON | None = strawberry.field(
        default=None,
        description="Write-only, stored encrypted. For http: {token} | {username, password}"
        " | {headers}.",
    )
    external_account_id: str = ""


@strawberry.input
class UpdateIntegrationInput:
    name: str | None = None
    type: str | None = None
    settings: JSON | None = None
    credentials: JSON | None = strawberry.field(
        default=None, description="Replaces the stored credentials (write-only)."
    )
    clear_credentials: bool = False
    external_account_id: str | None = None


@filter_input(CredentialFilter)
class CredentialFilterInput(FilterInput[CredentialFilter]):
    pass


@strawberry.input
class CreateCredentialInput:
    name: str
    value: str = strawberry.field(description="Write-only, stored encrypted.")
    type: str = "secret"
    workspace_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = strawberry.field(
        default=None, description="Scope the credential to one workflow (its secrets)."
    )


@strawberry.input
class UpdateCredentialInput:
    name: str | None = None
    value: str | None = strawberry.field(default=None, description="Write-only.")


@strawberry.type
class Query:
    @strawberry.field
    async def integrations(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
        filter: IntegrationFilterInput | None = None,
    ) -> Connection[Integration]:
        filters = (filter or IntegrationFilterInput()).to_filter()
        page = await resolve.list_integrations(
            info.context, filters, page_args(first, after, offset)
        )
        return Connection.of(page, Integration.from_row)

    @strawberry.field
    async def integration(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Integration:
        return Integration.from_row(await resolve.integration(info.context, ident(id, number)))

    @strawberry.field
    async def credentials(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
        filter: CredentialFilterInput | None = None,
    ) -> Connection[Credential]:
        filters = (filter or CredentialFilterInput()).to_filter()
        page = await resolve_credentials.list_credentials(
            info.context, filters, page_args(first, after, offset)
        )
        return Connection.of(page, Credential.from_row)

    @strawberry.field
    async def credential(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Credential:
        row = await resolve_credentials.credential(info.context, ident(id, number))
        return Credential.from_row(row)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_integration(self, info: Info, input: CreateIntegrationInput) -> Integration:
        row = await resolve.create_integration(
            info.context,
            workspace_id=input.workspace_id,
            name=input.name,
            type=input.type,
            settings=input.settings,
            credentials=input.credentials,
            external_account_id=input.external_account_id,
        )
        return Integration.from_row(row)

    @strawberry.mutation
    async def update_integration(
        self,
        info: Info,
        id: uuid.UUID | None = None,
        number: int | None = None,
        *,
        input: UpdateIntegrationInput,
    ) -> Integration:
        row = await resolve.update_integration(
            info.context,
            ident(id, number),
            name=input.name,
            type=input.type,
            settings=input.settings,
            credentials=input.credentials,
            clear_credentials=input.clear_credentials,
            external_account_id=input.external_account_id,
        )
        return Integration.from_row(row)

    @strawberry.mutation
    async def delete_integration(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Integration:
        return Integration.from_row(
            await resolve.delete_integration(info.context, ident(id, number))
        )

    @strawberry.mutation(
        description="Test for real (http: GET settings.url); the result is kept on the integration."
    )
    async def test_integration(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Integration:
        return Integration.from_row(await resolve.test_integration(info.context, ident(id, number)))

    @strawberry.mutation
    async def create_credential(self, info: Info, input: CreateCredentialInput) -> Credential:
        row = await resolve_credentials.create_credential(
            info.context,
            workspace_id=input.workspace_id,
            workflow_id=input.workflow_id,
            name=input.name,
            type=input.type,
            value=input.value,
        )
        return Credential.from_row(row)

    @strawberry.mutation
    async def update_credential(
        self,
        info: Info,
        id: uuid.UUID | None = None,
        number: int | None = None,
        *,
        input: UpdateCredentialInput,
    ) -> Credential:
        row = await resolve_credentials.update_credential(
            info.context, ident(id, number), name=input.name, value=input.value
        )
        return Credential.from_row(row)

    @strawberry.mutation
    async def delete_credential(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Credential:
        return Credential.from_row(
            await resolve_credentials.delete_credential(info.context, ident(id, number))
        )

    @strawberry.mutation(
        description="Create or replace a secret of one workflow (needs workflow:write)."
    )
    async def set_workflow_secret(
        self,
        info: Info,
        workflow_id: uuid.UUID | None = None,
        workflow_number: int | None = None,
        *,
        key: str,
        value: str,
    ) -> Credential:
        ref = ident(workflow_id, workflow_number, "workflowId", "workflowNumber")
        row = await resolve_credentials.set_workflow_secret(info.context, ref, key, value)
        return Credential.from_row(row)
