"""Issue 12, hole 2: a scope-limited API key sees and touches only the processes of its
scenarios, on every operation and REST route; a key manages only keys no wider than itself."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from flowql.models import utcnow
from tests.conftest import Factory, LiveServer, error_of
from tests.engine.conftest import create_workflow, execute
from tests.scenarios.conftest import scenario_text
from tests.subscriptions.conftest import TRANSPORT_WS, WS, wait_subscribers

SLOW = [{"name": "wait", "type": "delay", "options": {"seconds": 60}}]
QUICK = [{"name": "m", "type": "message", "options": {"payload": {"ok": True}}}]
STORE = "mutation($y: String!) { storeScenario(yaml: $y) { id } }"
START = """mutation($s: UUID!, $a: JSON) {
  startProcess(input: {scenarioId: $s, actors: $a}) { id } }"""
KEY_PRIVILEGES = ["process:read", "process:run", "process:write", "scenario:read", "workflow:read"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def scoped_world(server: LiveServer, factory: Factory) -> dict[str, Any]:
    owner = await factory.account()
    handshake = (await server.gql(STORE, {"y": scenario_text("handshake")}, token=owner.token))[
        "data"
    ]["storeScenario"]["id"]
    basics = (await server.gql(STORE, {"y": scenario_text("basics")}, token=owner.token))["data"][
        "storeScenario"
    ]["id"]
    actors = {"initiator": {"id": str(owner.user_id)}, "recipient": {"id": "bot"}}
    inside = (await server.gql(START, {"s": handshake, "a": actors}, token=owner.token))["data"][
        "startProcess"
    ]["id"]
    outside = (await server.gql(START, {"s": basics, "a": {}}, token=owner.token))["data"][
        "startProcess"
    ]["id"]
    workflow = await create_workflow(server, owner.token, "payroll", SLOW)
    running = await execute(server, owner.token, workflow["id"], wait=False)
    key = await factory.api_key(
        owner,
        privileges=KEY_PRIVILEGES,
        process_scopes=[{"scenario": handshake, "actors": ["recipient"], "actions": ["reply"]}],
    )
    return {
        "owner": owner,
        "key": key,
        "inside": inside,
        "outside": outside,
        "workflow": workflow,
        "running": running["id"],
        "handshake": handshake,
    }


async def test_a_scoped_key_reads_only_its_scenarios_processes(
    server: LiveServer, factory: Factory
) -> None:
    world = await scoped_world(server, factory)
    key, running = world["key"], world["running"]
    listed = await server.gql("{ processes { nodes { id } } }", token=key)
    assert [n["id"] for n in listed["data"]["processes"]["nodes"]] == [world["inside"]]
    for hidden in (running, world["outside"]):
        one = await server.gql(
            "query($id: UUID!) { process(id: $id) { id } }", {"id": hidden}, token=key,
            expect_errors=True,
        )  # fmt: skip
        assert error_of(one)["code"] == "FORBIDDEN" and one["data"] is None
    nested = await server.gql(
        "query($id: UUID!) { workflow(id: $id) { processes { id } } }",
        {"id": world["workflow"]["id"]},
        token=key,
    )
    assert nested["data"]["workflow"]["processes"] == []
    messages = await server.gql("{ messages { nodes { id } } }", token=key)
    assert messages["data"]["messages"]["nodes"] == []
    # The REST families answer the same.
    v1 = await server.client.get("/v1/executions", headers=auth(key))
    assert v1.status_code == 200, v1.text
    assert [e["workflow_id"] for e in v1.json()["data"]] == [None]  # the scenario process
    number = (
        await server.gql(
            "query($id: UUID!) { process(id: $id) { number } }",
            {"id": running},
            token=world["owner"].token,
        )
    )["data"]["process"]["number"]
    one = await server.client.get(f"/v1/executions/exec_{number}", headers=auth(key))
    assert one.status_code in (403, 404), one.text
    detail = await server.client.get(
        f"/compat/wayscript/processes/{running}/detail", headers=auth(key)
    )
    assert detail.status_code in (403, 404)
    letsflow = await server.client.get("/compat/letsflow/processes", headers=auth(key))
    assert {p["id"] for p in letsflow.json()} == {world["inside"]}


async def test_a_scoped_key_cannot_cancel_retry_or_answer_other_processes(
    server: LiveServer, factory: Factory
) -> None:
    world = await scoped_world(server, factory)
    key, running = world["key"], world["running"]
    for document in (
        "mutation($id: UUID!) { cancelProcess(id: $id) { id } }",
        "mutation($id: UUID!) { retryProcess(id: $id) { id } }",
        "mutation($id: UUID!) { respondToHttpTrigger(processId: $id, body: 1) { id } }",
        "mutation($id: UUID!) { issueExecutionToken(id: $id) { accessToken } }",
    ):
        refused = await server.gql(document, {"id": running}, token=key, expect_errors=True)
        assert error_of(refused)["code"] == "FORBIDDEN", document
    status = await server.gql(
        "query($id: UUID!) { process(id: $id) { status } }",
        {"id": running},
        token=world["owner"].token,
    )
    assert status["data"]["process"]["status"] in ("PENDING", "RUNNING", "WAITING")


async def test_a_scoped_keys_feed_carries_only_its_scenarios_processes(
    server: LiveServer, factory: Factory
) -> None:
    world = await scoped_world(server, factory)
    owner, key = world["owner"], world["key"]
    async with WS.open(server, TRANSPORT_WS, token=key) as ws:
        await ws.subscribe("feed", "subscription { processEvents { id } }")
        await wait_subscribers(server, 1)
        quick = await create_workflow(server, owner.token, "quick", QUICK)
        await execute(server, owner.token, quick["id"])
        actors = {"initiator": {"id": str(owner.user_id)}, "recipient": {"id": "bot"}}
        mine = (await server.gql(START, {"s": world["handshake"], "a": actors}, token=owner.token))[
            "data"
        ]["startProcess"]["id"]
        first = await ws.recv()
        assert first["payload"]["data"]["processEvents"]["id"] == mine


# -- keys deriving and managing keys ---------------------------------------------------------------

CREATE_KEY = """mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { token apiKey { id } } }"""
REVOKE = "mutation($id: UUID!) { revokeApiKey(id: $id) { id revokedAt } }"


async def key_id(server: LiveServer, owner_token: str, token: str) -> str:
    keys = await server.gql("{ apiKeys { nodes { id prefix } } }", token=owner_token)
    prefix = token.split("_")[1]
    (match,) = [k["id"] for k in keys["data"]["apiKeys"]["nodes"] if k["prefix"] == prefix]
    return match


async def test_a_scoped_key_cannot_revoke_a_wider_key(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    scenario = str(uuid.uuid4())
    scope = [{"scenario": scenario, "actors": ["a"], "actions": ["go"]}]
    manager = await factory.api_key(
        owner, privileges=["apikey:read", "apikey:write", "process:read"], process_scopes=scope
    )
    unscoped = await factory.api_key(owner, privileges=["process:read"])
    wider = await factory.api_key(
        owner, privileges=["process:read", "workflow:write"], process_scopes=scope
    )
    inside = await factory.api_key(owner, privileges=["process:read"], process_scopes=scope)
    for victim in (unscoped, wider):
        refused = await server.gql(
            REVOKE, {"id": await key_id(server, owner.token, victim)}, token=manager,
            expect_errors=True,
        )  # fmt: skip
        assert error_of(refused)["code"] == "FORBIDDEN"
        still = await server.gql("{ viewer { kind } }", token=victim)
        assert still["data"]["viewer"]["kind"] == "api_key"
    revoked = await server.gql(
        REVOKE, {"id": await key_id(server, owner.token, inside)}, token=manager
    )
    assert revoked["data"]["revokeApiKey"]["revokedAt"] is not None


@pytest.mark.parametrize(
    "ask",
    [
        {"privileges": ["process:read", "workflow:read"]},
        {"privileges": ["process:read"], "processScopes": []},
        {"privileges": ["process:read"], "processScopes": [{"scenario": None}]},
        {"privileges": ["process:read"], "expiresAt": "2999-01-01T00:00:00Z"},
    ],
)
async def test_a_key_issues_no_key_wider_or_longer_lived_than_itself(
    server: LiveServer, factory: Factory, ask: dict[str, Any]
) -> None:
    owner = await factory.account()
    scope = [{"scenario": str(uuid.uuid4()), "actors": ["a"], "actions": ["go"]}]
    parent = await factory.api_key(
        owner,
        privileges=["apikey:write", "process:read"],
        process_scopes=scope,
        expires_at=utcnow() + timedelta(days=1),
    )
    body = await server.gql(
        CREATE_KEY, {"input": {"name": "child", **ask}}, token=parent, expect_errors=True
    )
    assert error_of(body)["code"] == "FORBIDDEN", body
