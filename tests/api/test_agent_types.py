"""The catalog of agent types, and a workflow's option errors reported all at once."""

from __future__ import annotations

from typing import Any

from flowql.agents.registry import REGISTRY, validate_options
from tests.conftest import Factory, LiveServer, error_of

CATALOG = """
query($trigger: Boolean) {
  agentTypes(trigger: $trigger) {
    name kind description isTrigger optionsSchema defaults example emits secretOptions
  }
}
"""


async def test_catalog_describes_every_type(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    body = await server.gql(CATALOG, token=account.token)
    types: dict[str, dict[str, Any]] = {t["name"]: t for t in body["data"]["agentTypes"]}
    assert set(types) == set(REGISTRY)
    for name, entry in types.items():
        assert entry["description"], name
        assert entry["isTrigger"] == (entry["kind"] == "trigger"), name
        schema = entry["optionsSchema"]
        assert schema["type"] == "object", name
        # Unknown options are refused, except where a type says otherwise (a script's own options).
        forbids = REGISTRY[name].options.model_config.get("extra") == "forbid"
        assert (schema.get("additionalProperties") is False) == forbids, name
        # Defaults are the options left out; none of them is required.
        assert not set(entry["defaults"]) & set(schema.get("required", [])), name
        # Every type shows an example that makes a working agent, and what it emits.
        assert entry["example"], name
        validate_options(name, entry["example"])
        assert entry["emits"].strip(), name
        assert entry["example"] == REGISTRY[name].example, name

    webhook = types["webhook"]
    assert webhook["isTrigger"] and webhook["kind"] == "trigger"
    assert webhook["optionsSchema"]["required"] == ["path"]
    defaults = webhook["defaults"]
    assert {"secret": None, "hmac_secret": None, "outputs": []}.items() <= defaults.items()
    assert defaults["verbs"] is None or isinstance(defaults["verbs"], str | list)  # Huginn's
    assert webhook["secretOptions"] == ["secret", "hmac_secret"]
    http_request = types["http_request"]
    assert http_request["defaults"]["method"] == "GET"
    assert http_request["defaults"]["timeout_seconds"] == 30
    assert set(http_request["optionsSchema"]["properties"]["method"]["enum"]) >= {"GET", "POST"}
    # Nested models come with their definitions.
    assert "SwitchCase" in types["switch"]["optionsSchema"]["$defs"]

    triggers = await server.gql(CATALOG, {"trigger": True}, token=account.token)
    assert {t["name"] for t in triggers["data"]["agentTypes"]} == {
        n for n, t in REGISTRY.items() if t.kind.value == "trigger"
    }
    actions = await server.gql(CATALOG, {"trigger": False}, token=account.token)
    assert all(not t["isTrigger"] for t in actions["data"]["agentTypes"])

    one = await server.gql(
        'query { agentType(name: "filter") { name example } none: agentType(name: "nope") { name } }',
        token=account.token,
    )
    assert one["data"]["agentType"]["example"] == {"condition": "message.amount > 10"}
    assert one["data"]["none"] is None


async def test_catalog_needs_a_caller(server: LiveServer) -> None:
    body = await server.gql(CATALOG, expect_errors=True)
    assert error_of(body)["code"] == "UNAUTHORIZED"


async def test_every_option_error_of_a_workflow_at_once(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    agents = [
        {"name": "in", "type": "webhook", "options": {"path": "has spaces", "extra": 1}},
        {"name": "call", "type": "http_request", "sources": ["in"], "options": {"method": "GO"}},
        {
            "name": "route",
            "type": "switch",
            "sources": ["call"],
            "options": {
                "cases": [
                    {"condition": "message.x > 1"},
                    {"condition": "message.x >", "receiver": "shape"},
                ]
            },
        },
        {"name": "shape", "type": "transform", "options": {"payload": {"a": "{{ oops "}}},
        {"name": "what", "type": "no_such_type"},
        {"name": "late", "type": "delay", "sources": ["ghost"], "options": {"seconds": -1}},
        {"name": "", "type": "message"},
    ]
    body = await server.gql(
        "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { id } }",
        {"input": {"name": "broken", "agents": agents}},
        token=account.token,
        expect_errors=True,
    )
    error = error_of(body)
    assert error["code"] == "VALIDATION_ERROR"
    fields = error["fields"]
    assert set(fields) == {
        "agents.0.options.path",
        "agents.0.options.extra",
        "agents.1.options.url",
        "agents.1.options.method",
        "agents.2.options.cases.0.receiver",
        "agents.2.options.cases.1.condition",
        "agents.3.options.payload.a",
        "agents.4.type",
        "agents.5.options.seconds",
        "agents.5.sources",
        "agents.6.name",
    }, fields
    assert "Liquid" in fields["agents.3.options.payload.a"]
    assert "ghost" in fields["agents.5.sources"]
    # Nothing was written.
    listed = await server.gql("query { workflows { totalCount } }", token=account.token)
    assert listed["data"]["workflows"]["totalCount"] == 0

    # One agent: all of its problems too.
    created = await server.gql(
        'mutation { createWorkflow(input: {name: "ok"}) { id } }', token=account.token
    )
    body = await server.gql(
        """mutation($wf: UUID!) { createAgent(input: {workflowId: $wf, name: "c",
             type: "http_request", options: {method: "GO", timeout_seconds: 0}}) { id } }""",
        {"wf": created["data"]["createWorkflow"]["id"]},
        token=account.token,
        expect_errors=True,
    )
    assert set(error_of(body)["fields"]) == {
        "options.url",
        "options.method",
        "options.timeout_seconds",
    }


async def test_every_example_creates_an_agent(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    body = await server.gql(CATALOG, token=account.token)
    failures: dict[str, Any] = {}
    for entry in body["data"]["agentTypes"]:
        name = entry["name"]
        # The example as it is shown makes an agent in a new workflow.
        agents = [{"name": "agent", "type": name, "options": entry["example"]}]
        created = await server.gql(
            "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { id } }",
            {"input": {"name": f"example {name}", "agents": agents}},
            token=account.token,
            expect_errors=True,
        )
        if created.get("errors"):
            failures[name] = created["errors"]
        else:
            assert created["data"]["createWorkflow"]["id"], name
    assert len(body["data"]["agentTypes"]) == len(REGISTRY)
    assert not failures, failures
