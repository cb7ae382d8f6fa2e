"""API keys (LetsFlow model): privileges, process scopes, expiry, revocation, last use.

The secret token is returned once, by `createApiKey`; only its hash is stored and no field
of `ApiKey` exposes it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry

from flowql.resolvers import apikeys as resolve
from flowql.schema.base import Connection, FromRow, Info, ident, page_args
from flowql.schema.filters import FilterInput, filter_input
from flowql.services.apikeys import ApiKeyFilter, ApiKeySpec
from flowql.services.auth import IssuedApiKey


@strawberry.type(
    description="What a key may do in scenario processes: act as `actors`, perform `actions`."
)
class ProcessScope:
    scenario: uuid.UUID | None = strawberry.field(description="null: every scenario.")
    actors: list[str]
    actions: list[str]

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> ProcessScope:
        scenario = value.get("scenario")
        return cls(
            scenario=uuid.UUID(str(scenario)) if scenario else None,
            actors=list(value.get("actors") or []),
            actions=list(value.get("actions") or []),
        )


@strawberry.type
class ApiKey(FromRow):
    id: uuid.UUID
    number: int
    workspace_id: uuid.UUID
    user_id: uuid.UUID | None = strawberry.field(description="Who issued the key.")
    name: str
    description: str
    prefix: str = strawberry.field(description="The public part of the token, to recognise it.")
    privileges: list[str]
    process_scopes: list[ProcessScope]
    created_at: datetime = strawberry.field(description="When the key was issued.")
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> ApiKey:
        return cls(
            id=row.id,
            number=row.number or 0,
            workspace_id=row.workspace_id,
            user_id=row.user_id,
            name=row.name,
            description=row.description,
            prefix=row.prefix,
            privileges=list(row.privileges),
            process_scopes=[ProcessScope.from_value(s) for s in row.process_scopes or []],
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKey
    token: str = strawberry.field(
        description="The secret to send as `Authorization: Bearer …`. Shown only this once."
    )

    @classmethod
    def of(cls, issued: IssuedApiKey) -> CreateApiKeyPayload:
        return cls(api_key=ApiKey.from_row(issued.api_key), token=issued.token)


@strawberry.input
class ProcessScopeInput:
    scenario: uuid.UUID | None = None
    actors: list[str] = strawberry.field(default_factory=list)
    actions: list[str] = strawberry.field(default_factory=list)


@strawberry.input
class CreateApiKeyInput:
    name: str
    workspace_id: uuid.UUID | None = None
    description: str = ""
    privileges: list[str] | None = strawberry.field(
        default=None, description="Defaults to every privilege you hold in the workspace."
    )
    process_scopes: list[ProcessScopeInput] | None = None
    expires_at: datetime | None = None
    expiration_days: int | None = strawberry.field(
        default=None, description="Instead of expiresAt: days from now."
    )

    def spec(self) -> ApiKeySpec:
        scopes = None
        if self.process_scopes is not None:
            scopes = [
                {
                    "scenario": str(s.scenario) if s.scenario else None,
                    "actors": list(s.actors),
                    "actions": list(s.actions),
                }
                for s in self.process_scopes
            ]
        return ApiKeySpec(
            name=self.name,
            workspace_id=self.workspace_id,
            description=self.description,
            privileges=self.privileges,
            process_scopes=scopes,
            expires_at=self.expires_at,
            expiration_days=self.expiration_days,
        )


@filter_input(ApiKeyFilter, exclude=["workspace_id"])
class ApiKeyFilterInput(FilterInput[ApiKeyFilter]):
    pass


@strawberry.type
class Query:
    @strawberry.field
    async def api_keys(
        self,
        info: Info,
        workspace_id: uuid.UUID | None = None,
        first: int | None = None,
        after: str | None = None,
        offset: int | None = None,
        filter: ApiKeyFilterInput | None = None,
    ) -> Connection[ApiKey]:
        filters = (filter or ApiKeyFilterInput()).to_filter(workspace_id=workspace_id)
        page = await resolve.list_api_keys(info.context, filters, page_args(first, after, offset))
        return Connection.of(page, ApiKey.from_row)

    @strawberry.field
    async def api_key(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> ApiKey:
        return ApiKey.from_row(await resolve.api_key(info.context, ident(id, number)))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Issue an API key; its token is in the answer, only there.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        return CreateApiKeyPayload.of(await resolve.create_api_key(info.context, input.spec()))

    @strawberry.mutation(description="Revoke an API key; it is refused from then on.")
    async def revoke_api_key(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> ApiKey:
        return ApiKey.from_row(await resolve.revoke_api_key(info.context, ident(id, number)))
