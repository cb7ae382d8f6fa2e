"""JWTs are verified strictly: pinned HS256, exp/iat/iss/aud/sub/typ required, no `none`."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from flowql.auth.tokens import (
    ALGORITHM,
    TokenIssuer,
    hash_token,
    looks_like_jwt,
    new_opaque_token,
)
from flowql.errors import ErrorCode, Unauthorized

SECRET = "unit-test-secret-" + "k" * 60
ISSUER = TokenIssuer(SECRET, "flowql", "flowql-api")


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "user-1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": "flowql",
        "aud": "flowql-api",
        "typ": "access",
        "jti": "j1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def refused(token: str, typ: str = "access", issuer: TokenIssuer = ISSUER) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        issuer.verify(token, typ=typ)
    assert caught.value.code is ErrorCode.UNAUTHORIZED
    return caught.value


def test_issued_access_token_verifies_with_its_claims() -> None:
    token = ISSUER.issue("user-1", ttl=60, role="tester")
    assert looks_like_jwt(token)
    assert jwt.get_unverified_header(token)["alg"] == ALGORITHM
    verified = ISSUER.verify(token)
    assert verified["sub"] == "user-1"
    assert verified["typ"] == "access"
    assert verified["iss"] == "flowql"
    assert verified["aud"] == "flowql-api"
    assert verified["role"] == "tester"
    assert verified["exp"] - verified["iat"] == 60


def test_every_token_has_its_own_id() -> None:
    first, second = ISSUER.issue("user-1", ttl=60), ISSUER.issue("user-1", ttl=60)
    assert first != second
    assert ISSUER.verify(first)["jti"] != ISSUER.verify(second)["jti"]


def test_execution_tokens_have_their_own_audience() -> None:
    execution = ISSUER.issue("process-1", ttl=60, typ="execution", ws="w1")
    assert ISSUER.verify(execution, typ="execution")["aud"] == "flowql-api-exec"
    refused(execution, typ="access")  # an execution token is not an access token
    refused(ISSUER.issue("user-1", ttl=60), typ="execution")


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none")
    assert "algorithm" in refused(unsigned).message
    handmade = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    refused(handmade)
    for alg in ("None", "NONE", "nOnE"):
        refused(f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims())}.")


def test_alg_none_header_over_a_real_signature_is_refused() -> None:
    genuine = ISSUER.issue("user-1", ttl=60)
    _, payload, signature = genuine.split(".")
    refused(f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}")


def test_other_algorithms_with_the_same_secret_are_refused() -> None:
    for alg in ("HS384", "HS512"):
        refused(jwt.encode(claims(), SECRET, algorithm=alg))


def test_wrong_audience_is_refused() -> None:
    refused(jwt.encode(claims(aud="someone-else"), SECRET, algorithm=ALGORITHM))
    other_audience = TokenIssuer(SECRET, "flowql", "another-api")
    refused(ISSUER.issue("user-1", ttl=60), issuer=other_audience)


def test_wrong_issuer_is_refused() -> None:
    refused(jwt.encode(claims(iss="evil"), SECRET, algorithm=ALGORITHM))


def test_expired_token_is_refused() -> None:
    expired = ISSUER.issue("user-1", ttl=-60)
    assert "expired" in refused(expired).message
    past = int(time.time()) - 3600
    refused(jwt.encode(claims(iat=past, nbf=past, exp=past + 60), SECRET, algorithm=ALGORITHM))


def test_token_issued_in_the_future_is_refused() -> None:
    future = int(time.time()) + 3600
    refused(jwt.encode(claims(iat=future, nbf=None, exp=future + 600), SECRET, algorithm=ALGORITHM))


def test_type_mismatch_is_refused() -> None:
    refresh_typed = ISSUER.issue("user-1", ttl=60, typ="refresh")
    assert "type" in refused(refresh_typed).message
    refused(ISSUER.issue("user-1", ttl=60), typ="refresh")


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud", "sub", "typ"])
def test_a_missing_required_claim_is_refused(missing: str) -> None:
    refused(jwt.encode(claims(**{missing: None}), SECRET, algorithm=ALGORITHM))


def test_tampered_payload_and_wrong_secret_are_refused() -> None:
    genuine = ISSUER.issue("user-1", ttl=60)
    header, _, signature = genuine.split(".")
    refused(f"{header}.{b64(claims(sub='admin'))}.{signature}")
    refused(ISSUER.issue("user-1", ttl=60), issuer=TokenIssuer("x" * 48, "flowql", "flowql-api"))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "eyJ.eyJ.", "eyJhbGciOiJIUzI1NiJ9..."])
def test_malformed_tokens_are_refused(garbage: str) -> None:
    refused(garbage)


def test_opaque_tokens_are_prefixed_unique_and_hashed_stably() -> None:
    tokens = {new_opaque_token("fqr") for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert token.startswith("fqr_")
    assert len(token) > 40
    assert not looks_like_jwt(token)
    assert hash_token(token) == hash_token(token)
    assert hash_token(token) != hash_token(token + "x")
    assert token not in hash_token(token)
