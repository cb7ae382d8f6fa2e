"""Login and refresh-token rotation."""

from __future__ import annotations

import uuid

import strawberry

from flowql import __version__
from flowql.resolvers import auth as resolve
from flowql.schema.base import Info
from flowql.services.auth import TokenPair


@strawberry.type
class AuthTokens:
    access_token: str
    refresh_token: str
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")
    token_type: str = "Bearer"

    @classmethod
    def of(cls, pair: TokenPair) -> AuthTokens:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )


@strawberry.type(description="What this server is (public).")
class ServerInfo:
    name: str
    version: str
    description: str
    env: str = strawberry.field(description="`development` or `production`.")


@strawberry.type(description="A development demo account with a fresh access token.")
class DemoAccount:
    id: uuid.UUID
    email: str
    name: str
    token: str = strawberry.field(description="An access token (send as Bearer).")
    expires_in: int


@strawberry.type
class Query:
    @strawberry.field(description="The server's name, version and environment (public).")
    def server_info(self, info: Info) -> ServerInfo:
        return ServerInfo(
            name="flowql",
            version=__version__,
            description="GraphQL-first automation backend",
            env=info.context.settings.env.value,
        )

    @strawberry.field(
        description="Development only: the demo accounts, each with a fresh access token. "
        'FORBIDDEN ("Demo accounts are disabled") when demo accounts are off or in production.'
    )
    async def demo_accounts(self, info: Info) -> list[DemoAccount]:
        return [
            DemoAccount(
                id=d.user_id, email=d.email, name=d.name, token=d.token, expires_in=d.expires_in
            )
            for d in await resolve.demo_accounts(info.context)
        ]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Exchange email and password for an access and a refresh token."
    )
    async def login(self, info: Info, email: str, password: str) -> AuthTokens:
        return AuthTokens.of(await resolve.login(info.context, email, password))

    @strawberry.mutation(
        description="Rotate a refresh token. Reusing a rotated one revokes every token of that login."
    )
    async def refresh_token(self, info: Info, refresh_token: str) -> AuthTokens:
        return AuthTokens.of(await resolve.refresh_token(info.context, refresh_token))
