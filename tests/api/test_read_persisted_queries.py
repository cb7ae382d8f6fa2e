"""Automatic persisted queries (Apollo's `extensions.persistedQuery`) and the per-schema cache of
parsed, validated documents, over real HTTP. Neither touches storage, so SQLite only."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from flowql.schema import FlowqlSchema, build_schema
from tests.conftest import Factory, LiveServer, error_of

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])

QUERY = "query Mine { viewer { kind user { email } } }"


def persisted(query: str, version: int = 1) -> dict[str, Any]:
    digest = hashlib.sha256(query.encode()).hexdigest()
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def post(server: LiveServer, token: str, **body: Any) -> dict[str, Any]:
    response = await server.client.post(
        "/graphql", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@SQLITE_ONLY
async def test_an_unknown_hash_asks_for_the_document_then_the_hash_alone_runs_it(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()

    missing = await post(server, account.token, extensions=persisted(QUERY))
    assert missing["errors"][0]["message"] == "PersistedQueryNotFound"
    assert error_of(missing) == {
        "code": "VALIDATION_ERROR",
        "reason": "PERSISTED_QUERY_NOT_FOUND",
    }

    registered = await post(server, account.token, query=QUERY, extensions=persisted(QUERY))
    assert registered["data"]["viewer"]["user"]["email"] == account.email

    by_hash = await post(server, account.token, extensions=persisted(QUERY))
    assert by_hash == registered

    # ... also as a GET a cache may keep: no document in the URL, only its hash.
    response = await server.client.get(
        "/graphql",
        params={"extensions": json.dumps(persisted(QUERY))},
        headers={"Authorization": f"Bearer {account.token}", "Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == registered


@SQLITE_ONLY
async def test_the_registered_document_runs_as_each_caller(
    server: LiveServer, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    await post(server, alice.token, query=QUERY, extensions=persisted(QUERY))
    answer = await post(server, bob.token, extensions=persisted(QUERY))
    assert answer["data"]["viewer"]["user"]["email"] == bob.email


@SQLITE_ONLY
async def test_a_hash_that_does_not_match_its_document_is_refused(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    other = "{ viewer { kind } }"
    refused = await post(server, account.token, query=other, extensions=persisted(QUERY))
    assert error_of(refused)["reason"] == "PERSISTED_QUERY_HASH_MISMATCH"
    assert "data" not in refused or refused["data"] is None
    # ... and registered nothing under that hash.
    missing = await post(server, account.token, extensions=persisted(QUERY))
    assert error_of(missing)["reason"] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    ("extensions", "reason"),
    [
        (persisted(QUERY, version=2), "PERSISTED_QUERY_VERSION"),
        ({"persistedQuery": {"version": 1, "sha256Hash": "abc"}}, "PERSISTED_QUERY_HASH"),
        ({"persistedQuery": "yes"}, "PERSISTED_QUERY_VERSION"),
    ],
)
@SQLITE_ONLY
async def test_malformed_persisted_query_extensions_are_validation_errors(
    server: LiveServer, factory: Factory, extensions: dict[str, Any], reason: str
) -> None:
    account = await factory.account()
    refused = await post(server, account.token, extensions=extensions)
    assert error_of(refused) == {"code": "VALIDATION_ERROR", "reason": reason}


@SQLITE_ONLY
async def test_a_cached_document_is_not_reparsed_and_an_invalid_one_is_never_cached(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    first = await post(server, account.token, query=QUERY)
    again = await post(server, account.token, query=QUERY)
    assert first == again

    too_deep = "{ viewer { " + "user { " * 1 + "email } } }"
    deep = "query { " + "workflows { edges { node { " * 6 + "name" + " } } }" * 6 + " }"
    for _ in range(2):  # refused the second time too: a failure is not remembered as a pass
        refused = await post(server, account.token, query=deep)
        assert error_of(refused)["code"] == "VALIDATION_ERROR"
    assert (await post(server, account.token, query=too_deep))["data"]["viewer"]["user"]


async def test_the_schema_keeps_each_valid_document_once_and_no_invalid_one() -> None:
    schema = build_schema()
    assert isinstance(schema, FlowqlSchema) and schema.documents is not None
    for _ in range(3):
        result = await schema.execute("{ __typename }")
        assert result.data == {"__typename": "Query"}
    assert len(schema.documents) == 1

    for _ in range(2):
        result = await schema.execute("{ noSuchField }")
        assert result.errors and result.errors[0].extensions == {"code": "VALIDATION_ERROR"}
    assert len(schema.documents) == 1
