"""Login, access-token verification, refresh rotation, and API key authentication over HTTP."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import text
from sqlmodel import col, update

from flowql.models import ApiKey, Role, utcnow
from tests.conftest import PASSWORD, Account, Factory, LiveServer

VIEWER = "{ viewer { kind user { email } } }"
LOGIN = """
mutation ($email: String!, $password: String!) {
  login(email: $email, password: $password) { accessToken refreshToken expiresIn tokenType }
}"""
REFRESH = """
mutation ($token: String!) {
  refreshToken(refreshToken: $token) { accessToken refreshToken }
}"""


def first_error_code(body: dict[str, Any]) -> str:
    code: str = body["errors"][0]["extensions"]["code"]
    return code


async def assert_refused(server: LiveServer, token: str) -> None:
    """The bearer credential is refused before GraphQL runs: HTTP 401, code UNAUTHORIZED."""
    response = await server.client.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["data"] is None
    assert first_error_code(body) == "UNAUTHORIZED"


async def assert_accepted(server: LiveServer, token: str) -> dict[str, Any]:
    body = await server.gql(VIEWER, token=token)
    viewer: dict[str, Any] = body["data"]["viewer"]
    return viewer


def access_claims(server: LiveServer, account: Account, **overrides: Any) -> dict[str, Any]:
    """The claims of a valid access token for `account`; overrides replace (None removes)."""
    settings = server.runtime.settings
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(account.user_id),
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "typ": "access",
        "jti": uuid.uuid4().hex,
    }
    for key, value in overrides.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def sign(server: LiveServer, claims: dict[str, Any], key: str | None = None) -> str:
    secret = key or server.runtime.settings.secret_key
    assert secret
    return jwt.encode(claims, secret, algorithm="HS256")


# -- login -------------------------------------------------------------------------------------


async def test_login_returns_tokens_that_authenticate(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    body = await server.gql(LOGIN, {"email": account.email, "password": PASSWORD})
    tokens = body["data"]["login"]
    assert tokens["tokenType"] == "Bearer"
    assert tokens["expiresIn"] == server.runtime.settings.access_token_ttl
    viewer = await assert_accepted(server, tokens["accessToken"])
    assert viewer == {"kind": "user", "user": {"email": account.email}}


async def test_login_with_wrong_password_is_unauthorized(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    body = await server.gql(
        LOGIN, {"email": account.email, "password": "not-the-password"}, expect_errors=True
    )
    assert body["data"] is None
    assert first_error_code(body) == "UNAUTHORIZED"


async def test_login_with_unknown_email_is_unauthorized(server: LiveServer) -> None:
    body = await server.gql(
        LOGIN, {"email": "nobody@example.com", "password": PASSWORD}, expect_errors=True
    )
    assert first_error_code(body) == "UNAUTHORIZED"


# -- access tokens -----------------------------------------------------------------------------


async def test_token_built_with_the_test_key_is_accepted(
    server: LiveServer, factory: Factory
) -> None:
    """The control for the refusals below: the hand-built token itself is valid."""
    account = await factory.account()
    viewer = await assert_accepted(server, sign(server, access_claims(server, account)))
    assert viewer["user"] == {"email": account.email}


async def test_expired_access_token_is_refused(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    past = datetime.now(UTC) - timedelta(hours=1)
    claims = access_claims(server, account, iat=past, nbf=past, exp=past + timedelta(minutes=5))
    await assert_refused(server, sign(server, claims))


async def test_token_with_changed_signature_is_refused(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    header, payload, signature = account.token.split(".")
    changed = ("A" if signature[0] != "A" else "B") + signature[1:]
    await assert_refused(server, f"{header}.{payload}.{changed}")


async def test_token_with_forged_subject_and_old_signature_is_refused(
    server: LiveServer, factory: Factory
) -> None:
    victim = await factory.account()
    attacker = await factory.account()
    forged = sign(
        server, access_claims(server, victim), key="attacker-does-not-know-the-real-key-" + "z" * 16
    )
    header, payload, _ = forged.split(".")
    _, _, signature = attacker.token.split(".")
    await assert_refused(server, f"{header}.{payload}.{signature}")


async def test_unsigned_alg_none_token_is_refused(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    token = jwt.encode(access_claims(server, account), None, algorithm="none")
    await assert_refused(server, token)


async def test_token_signed_with_another_key_is_refused(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    token = sign(server, access_claims(server, account), key="another-secret-key-" + "y" * 32)
    await assert_refused(server, token)


async def test_token_for_another_audience_is_refused(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    await assert_refused(server, sign(server, access_claims(server, account, aud="other-api")))


async def test_token_from_another_issuer_is_refused(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    await assert_refused(server, sign(server, access_claims(server, account, iss="someone-else")))


async def test_token_without_expiry_is_refused(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    await assert_refused(server, sign(server, access_claims(server, account, exp=None)))


async def test_refresh_token_is_not_accepted_as_bearer(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    await assert_refused(server, account.refresh_token)


# -- refresh rotation --------------------------------------------------------------------------


async def test_refresh_rotates_and_old_access_token_stays_valid_until_expiry(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    body = await server.gql(REFRESH, {"token": account.refresh_token})
    pair = body["data"]["refreshToken"]
    assert pair["refreshToken"] != account.refresh_token
    assert pair["accessToken"] != account.token
    assert (await assert_accepted(server, pair["accessToken"]))["user"]["email"] == account.email
    # The access token issued before the rotation is not revoked; it simply runs out.
    assert (await assert_accepted(server, account.token))["user"]["email"] == account.email
    # The new refresh token rotates again.
    again = await server.gql(REFRESH, {"token": pair["refreshToken"]})
    assert again["data"]["refreshToken"]["refreshToken"] != pair["refreshToken"]


async def test_rotated_refresh_token_reuse_revokes_family(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    first = (await server.gql(REFRESH, {"token": account.refresh_token}))["data"]["refreshToken"]
    newest = (await server.gql(REFRESH, {"token": first["refreshToken"]}))["data"]["refreshToken"]

    reuse = await server.gql(REFRESH, {"token": account.refresh_token}, expect_errors=True)
    assert first_error_code(reuse) == "UNAUTHORIZED"

    after = await server.gql(REFRESH, {"token": newest["refreshToken"]}, expect_errors=True)
    assert first_error_code(after) == "UNAUTHORIZED"


async def test_reuse_does_not_touch_another_logins_family(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    other_login = (await server.gql(LOGIN, {"email": account.email, "password": PASSWORD}))["data"][
        "login"
    ]
    await server.gql(REFRESH, {"token": account.refresh_token})
    await server.gql(REFRESH, {"token": account.refresh_token}, expect_errors=True)
    body = await server.gql(REFRESH, {"token": other_login["refreshToken"]})
    assert body["data"]["refreshToken"]["accessToken"]


async def test_unknown_refresh_token_is_unauthorized(server: LiveServer) -> None:
    body = await server.gql(REFRESH, {"token": "fqr_not-a-real-token"}, expect_errors=True)
    assert first_error_code(body) == "UNAUTHORIZED"


# -- API keys ----------------------------------------------------------------------------------

CREATE_KEY = """
mutation ($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { token apiKey { id lastUsedAt } }
}"""
API_KEY = "query ($id: UUID!) { apiKey(id: $id) { id lastUsedAt revokedAt } }"


async def create_key(server: LiveServer, account: Account, **fields: Any) -> tuple[str, str]:
    body = await server.gql(CREATE_KEY, {"input": {"name": "k", **fields}}, token=account.token)
    created = body["data"]["createApiKey"]
    return created["apiKey"]["id"], created["token"]


async def test_api_key_authenticates_as_api_key(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    token = await factory.api_key(account, privileges=["workflow:read"])
    assert (await assert_accepted(server, token))["kind"] == "api_key"


async def test_revoked_api_key_is_refused(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    key_id, token = await create_key(server, account)
    await assert_accepted(server, token)
    await server.gql(
        "mutation ($id: UUID!) { revokeApiKey(id: $id) { revokedAt } }",
        {"id": key_id},
        token=account.token,
    )
    await assert_refused(server, token)


async def test_expired_api_key_is_refused(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    key_id, token = await create_key(server, account, expirationDays=1)
    await assert_accepted(server, token)
    async with server.runtime.db.transaction() as session:
        await session.exec(
            update(ApiKey)
            .where(col(ApiKey.id) == uuid.UUID(key_id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    await assert_refused(server, token)


async def test_api_key_with_wrong_secret_or_prefix_is_refused(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    _, token = await create_key(server, account)
    api, prefix, _ = token.split("_", 2)
    await assert_refused(server, f"{api}_{prefix}_{'x' * 43}")
    await assert_refused(server, f"{api}_nosuchprefix_{'x' * 43}")


async def test_api_key_of_a_removed_member_is_refused(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    admin = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    token = await factory.api_key(admin, privileges=["workflow:read"])
    await assert_accepted(server, token)
    await server.gql(
        "mutation ($ws: UUID!, $u: UUID!) { removeMember(workspaceId: $ws, userId: $u) { role } }",
        {"ws": str(owner.workspace_id), "u": str(admin.user_id)},
        token=owner.token,
    )
    await assert_refused(server, token)


async def test_last_used_at_is_set_when_a_key_is_used(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    key_id, token = await create_key(server, account)
    before = (await server.gql(API_KEY, {"id": key_id}, token=account.token))["data"]["apiKey"]
    assert before["lastUsedAt"] is None

    await assert_accepted(server, token)

    after = (await server.gql(API_KEY, {"id": key_id}, token=account.token))["data"]["apiKey"]
    assert after["lastUsedAt"] is not None
    used_at = datetime.fromisoformat(after["lastUsedAt"])
    assert abs((datetime.now(UTC) - used_at).total_seconds()) < 60


async def test_api_key_is_stored_only_hashed(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    _, token = await create_key(server, account, description="stored hashed")
    secret = token.split("_", 2)[2]
    async with server.runtime.db.read() as session:
        conn = await session.connection()
        result = await conn.execute(text("SELECT * FROM api_keys"))
        rows = [dict(row._mapping) for row in result]
    assert len(rows) == 1
    for column, value in rows[0].items():
        assert token not in str(value), column
        assert secret not in str(value), column
    assert rows[0]["key_hash"] == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.parametrize("bearer", ["fql_short", "not-a-token", "eyJ.broken.jwt"])
async def test_malformed_bearer_credentials_are_refused(server: LiveServer, bearer: str) -> None:
    await assert_refused(server, bearer)


async def test_non_bearer_authorization_is_refused(server: LiveServer) -> None:
    response = await server.client.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": "Basic YTpi"}
    )
    assert response.status_code == 401
    assert first_error_code(response.json()) == "UNAUTHORIZED"
