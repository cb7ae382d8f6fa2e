"""YAML scenarios cannot cost more than their size suggests: deep nesting, alias bombs,
recursive aliases and `.nan` are refused before anything is built or stored, over REST (document
003) and GraphQL alike."""

from __future__ import annotations

import time

import pytest

from flowql.services.scenarios.loader import MAX_NODES, LoadError, parse_yaml
from tests.conftest import Factory, LiveServer
from tests.security.conftest import assert_family_error, stored

# 441 bytes: each line ten aliases of the one before, 10^6 strings once expanded.
BOMB = "\n".join(
    [
        "title: bomb",
        "actions: {go: {}}",
        "states: {initial: {on: go, goto: (done)}}",
        'a: &a ["x","x","x","x","x","x","x","x","x","x"]',
        *(
            f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]"
            for prev, name in zip("abcde", "bcdef", strict=True)
        ),
    ]
)
HOSTILE = {
    "alias bomb": (BOMB, "expand to more than"),
    "deep flow": ("title: x\nstates: " + "[" * 5000 + "]" * 5000, "depth"),
    "deep block": ("\n".join("  " * i + f"k{i}:" for i in range(150)) + " 1", "nested deeper"),
    "recursive alias": ("title: x\nstates: &s {initial: *s}", "contains it"),
    "nan": ("title: x\nvalue: .nan", "not a JSON number"),
    "infinity": ("title: x\nvalue: [-.inf]", "not a JSON number"),
}


def test_loader_refuses_each_hostile_document_quickly() -> None:
    for text, says in HOSTILE.values():
        started = time.perf_counter()
        with pytest.raises(LoadError, match=says):
            parse_yaml(text)
        assert time.perf_counter() - started < 2
    many = "\n".join(f"k{i}: [a, b]" for i in range(MAX_NODES))
    with pytest.raises(LoadError, match="more than"):
        parse_yaml(many)
    # Anchors and merge keys within bounds keep working.
    assert parse_yaml("a: &x {b: 1}\nc: *x\nd: {<<: *x, e: 2}") == {
        "a": {"b": 1},
        "c": {"b": 1},
        "d": {"b": 1, "e": 2},
    }


async def test_hostile_yaml_is_refused_over_rest_and_graphql(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    auth = {"Authorization": f"Bearer {account.token}"}
    before = await stored(server)
    for text, says in HOSTILE.values():
        response = await server.client.post(
            "/compat/letsflow/scenarios",
            content=text.encode(),
            headers={**auth, "Content-Type": "application/yaml"},
        )
        assert_family_error(response, 400, says)
        body = await server.gql(
            "mutation($y: String) { storeScenario(yaml: $y) { id } }",
            {"y": text},
            token=account.token,
            expect_errors=True,
        )
        error = body["errors"][0]
        assert error["extensions"]["code"] == "VALIDATION_ERROR", error
        assert says in error["message"], error
    assert await stored(server) == before
