"""Login and refresh-token rotation."""

from __future__ import annotations

import strawberry

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
