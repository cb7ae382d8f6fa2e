"""Storing scenarios: validation naming the path, immutable hash ids, round-trips, disabling."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowql.services.runtime import Runtime
from flowql.services.scenarios import StateEntered
from tests.conftest import Factory, LiveServer
from tests.scenarios.conftest import DATA, ScenarioClient, error_of, scenario_text


async def test_storing_the_same_definition_again_gives_the_same_scenario(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    owner = await factory.account(workspace="Store")
    first = await scenarios.store_file(owner.token, "approval")
    again = await scenarios.store_file(owner.token, "approval")
    assert again["id"] == first["id"]
    as_json = await scenarios.store(owner.token, definition=first["definition"])
    assert as_json["id"] == first["id"]
    assert (first["name"], first["title"]) == ("approval", "Expense approval")
    elsewhere = await factory.account(workspace="Elsewhere")
    assert (await scenarios.store_file(elsewhere.token, "approval"))["id"] != first["id"]


async def test_yaml_and_json_forms_round_trip_to_the_same_id(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    owner = await factory.account(workspace="Round trips")
    from_yaml = await scenarios.store_file(owner.token, "conversation")
    document = json.loads((DATA / "conversation.json").read_text())
    from_json = await scenarios.store(owner.token, definition=document)
    assert from_json["id"] == from_yaml["id"]

    quote = await scenarios.store_file(owner.token, "quote")
    assert "!ref actors.customer" in quote["yaml"] and "!select" in quote["yaml"]
    assert (await scenarios.store(owner.token, yaml=quote["yaml"]))["id"] == quote["id"]
    again = await scenarios.store(owner.token, definition=quote["definition"])
    assert again["id"] == quote["id"]


async def test_the_normalised_definition_has_implicit_parts(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    owner = await factory.account(workspace="Normalised")
    basics = await scenarios.store_file(owner.token, "basics")
    definition = basics["definition"]
    assert definition["actors"]["actor"]["title"] == "actor"
    assert definition["states"]["initial"]["transitions"] == [
        {"on": "complete", "by": ["*"], "if": True, "goto": "(done)"}
    ]
    assert {"key": "(done)", "isEndState": True} in basics["states"]
    assert basics["actions"] == [{"key": "complete", "actors": ["*"]}]
    quote = await scenarios.store_file(owner.token, "quote")
    paths = {notice["path"] for notice in quote["notices"]}
    assert {"actions.request.schema", "actions.create_quote.schema"} <= paths


@pytest.mark.parametrize(
    ("text", "path", "problem"),
    [
        (
            "states:\n  initial:\n    on: go\n    goto: nowhere\n",
            "yaml.states.initial.goto",
            "transition to a missing state 'nowhere'",
        ),
        (
            "states:\n  start:\n    on: go\n    goto: (done)\n",
            "yaml.states.initial",
            "required: every scenario starts in `initial`",
        ),
        (
            "actions:\n  go:\n    actor: []\n"
            "states:\n  initial:\n    transitions:\n      - on: go\n        goto: (done)\n",
            "yaml.actions.go.actor",
            "an action needs at least one actor",
        ),
        (
            "actors:\n  a: {}\nstates:\n  initial:\n    on: go\n    by: b\n    goto: (done)\n",
            "yaml.states.initial.by",
            "unknown actor 'b'",
        ),
        (
            "states:\n  initial:\n    on: go\n    goto: (done)\n    if: !eval 'x'\n",
            "yaml",
            "unsupported tag !eval",
        ),
        (
            "states:\n  initial:\n    after: 2 months\n    goto: (done)\n",
            "yaml.states.initial.after",
            "unsupported time unit 'months'; use seconds to weeks",
        ),
        (
            "states:\n  initial:\n    transitions:\n      - on: go\n        goto: (done)\n"
            "        when: now\n",
            "yaml.states.initial.transitions.0.when",
            "unknown transition property 'when'",
        ),
        (
            "actors:\n  client: https://schemas.example.com/client.json\n"
            "states:\n  initial:\n    on: go\n    goto: (done)\n",
            "yaml.actors.client.$ref",
            "external schema references are not supported",
        ),
        (
            "actions:\n  go:\n    responses: {ok: {}}\n"
            "states:\n  initial:\n    on: go\n    goto: (done)\n",
            "yaml.actions.go.responses",
            "LetsFlow v0.x `responses` are not supported",
        ),
        (
            "actions:\n  go:\n    update: {set: scenario.title}\n"
            "states:\n  initial:\n    on: go\n    goto: (done)\n",
            "yaml.actions.go.update.set",
            "cannot set 'scenario.title'",
        ),
        (
            "states:\n  initial:\n    on: go\n    goto: (done)\n    if: !ref 'length(actors) >'\n",
            "yaml.states.initial.if",
            "invalid expression",
        ),
        (
            "states:\n  initial:\n    on: go\n    on: stop\n    goto: (done)\n",
            "yaml",
            "duplicate key 'on'",
        ),
    ],
)
async def test_invalid_definitions_are_refused_naming_the_path(
    scenarios: ScenarioClient, factory: Factory, text: str, path: str, problem: str
) -> None:
    owner = await factory.account(workspace="Invalid")
    body = await scenarios.store(owner.token, yaml=text, expect_errors=True)
    error = error_of(body)
    assert error["extensions"]["code"] == "VALIDATION_ERROR"
    assert path in error["extensions"]["fields"], error["extensions"]["fields"]
    assert problem in error["extensions"]["fields"][path]


async def test_json_definitions_name_the_path_too(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    owner = await factory.account(workspace="Invalid JSON")
    definition: dict[str, Any] = {
        "states": {
            "initial": {"transitions": [{"on": "go", "goto": "(done)"}, {"on": "x", "goto": "y"}]}
        }
    }
    error = error_of(await scenarios.store(owner.token, definition=definition, expect_errors=True))
    assert error["extensions"]["fields"] == {
        "definition.states.initial.transitions.1.goto": "transition to a missing state 'y'"
    }
    both = error_of(
        await scenarios.store(
            owner.token, definition=definition, yaml="states: {}", expect_errors=True
        )
    )
    assert "definition" in both["extensions"]["fields"]


async def test_a_disabled_scenario_refuses_new_processes_but_running_ones_go_on(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    owner = await factory.account(workspace="Disable")
    scenario = await scenarios.store_file(owner.token, "handshake")
    running = await scenarios.start(
        owner.token, scenario["id"], {"initiator": {"userId": str(owner.user_id)}}
    )
    body = await server.gql(
        "mutation($id: UUID!) { disableScenario(id: $id) { disabled } }",
        {"id": scenario["id"]},
        token=owner.token,
    )
    assert body["data"]["disableScenario"]["disabled"] is True
    refused = error_of(await scenarios.start(owner.token, scenario["id"], expect_errors=True))
    assert refused["extensions"]["fields"]["scenarioId"].startswith("the scenario is disabled")
    moved = await scenarios.act(owner.token, running["id"], "greet", actor="initiator")
    assert moved["process"]["state"] == "wait_on_recipient"
    listed = await server.gql(
        "{ scenarios(filter: {disabled: true}) { totalCount nodes { id } } }", token=owner.token
    )
    assert listed["data"]["scenarios"]["nodes"] == [{"id": scenario["id"]}]


async def test_scenarios_are_listed_and_searched_within_the_callers_workspaces(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    owner = await factory.account(workspace="Listing")
    quote = await scenarios.store_file(owner.token, "quote")
    await scenarios.store_file(owner.token, "basics")
    await scenarios.store_file((await factory.account(workspace="Other")).token, "quote")
    query = """query($s: String) { scenarios(filter: {search: $s}) { totalCount nodes { id } } }"""
    found = await server.gql(query, {"s": "quot"}, token=owner.token)
    assert found["data"]["scenarios"] == {"totalCount": 1, "nodes": [{"id": quote["id"]}]}
    everything = await server.gql(query, {"s": None}, token=owner.token)
    assert everything["data"]["scenarios"]["totalCount"] == 2
    one = await server.gql(
        "query($id: UUID!) { scenario(id: $id) { version tags states { key } } }",
        {"id": quote["id"]},
        token=owner.token,
    )
    assert one["data"]["scenario"]["version"] == "1.0"


async def test_state_entered_hooks_run_after_commit_with_the_notifications(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    entered: list[StateEntered] = []

    async def hook(runtime: Runtime, event: StateEntered) -> None:
        entered.append(event)

    async def broken(runtime: Runtime, event: StateEntered) -> None:
        raise RuntimeError("a failing hook does not undo the transition")

    hooks = scenarios.server.runtime.state_entered_hooks
    hooks.extend([broken, hook])
    try:
        alice = await factory.account(workspace="Hooks")
        scenario = await scenarios.store(alice.token, yaml=scenario_text("quote"))
        process = await scenarios.start(
            alice.token,
            scenario["id"],
            {"customer": {"userId": str(alice.user_id)}, "sales": {"userId": str(alice.user_id)}},
        )
        request = {
            "company": "Acme",
            "contact": "Alice",
            "email": "alice@example.com",
            "address": "Main St",
            "requirements": "X",
        }
        await scenarios.act(alice.token, process["id"], "request", request)
        await scenarios.act(alice.token, process["id"], "create_quote", "cms:q.pdf", actor="sales")
    finally:
        hooks.remove(hook)
        hooks.remove(broken)
    assert [e.state for e in entered] == ["initial", "requested", "quoted"]
    quoted = entered[-1]
    assert [n["service"] for n in quoted.notify] == ["email"]
    assert quoted.notify[0]["message"]["attachments"][0]["source"] == "cms:q.pdf"
    assert quoted.process["result"] == "cms:q.pdf" and not quoted.ended
