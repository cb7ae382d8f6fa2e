"""Document 003 (LetsFlow's engine API) at /compat/letsflow: scenarios and processes, called the
way the document shows (raw HTTP: bearer token, As-Actor, JSON or YAML bodies)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import yaml

from flowql.models import Role
from tests.conftest import Account, Factory, LiveServer
from tests.scenarios.conftest import DATA

BASE = "/compat/letsflow"
PROCESS_KEYS = {
    "id",
    "title",
    "tags",
    "scenario",
    "actors",
    "vars",
    "result",
    "current",
    "previous",
    "events",
}
STATE_KEYS = {"key", "title", "description", "instructions", "actions", "notify", "timestamp"}


def auth(account: Account | str, actor: str | None = None) -> dict[str, str]:
    token = account if isinstance(account, str) else account.token
    headers = {"Authorization": f"Bearer {token}"}
    if actor is not None:
        headers["As-Actor"] = actor
    return headers


def actor(account: Account, title: str) -> dict[str, Any]:
    return {"id": str(account.user_id), "title": title}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str), error
    assert isinstance(error["reason"], list)
    return error


async def store_yaml(server: LiveServer, account: Account, name: str) -> str:
    response = await server.client.post(
        f"{BASE}/scenarios",
        content=(DATA / f"{name}.yaml").read_text(),
        headers={**auth(account), "Content-Type": "application/yaml"},
    )
    assert response.status_code == 201, response.text
    ident: str = response.json()["id"]
    assert response.headers["location"] == f"{BASE}/scenarios/{ident}"
    return ident


async def start(
    server: LiveServer, account: Account | str, body: dict[str, Any], as_actor: str | None = None
) -> httpx.Response:
    return await server.client.post(f"{BASE}/processes", json=body, headers=auth(account, as_actor))


async def step(
    server: LiveServer,
    account: Account | str,
    process_id: str,
    action: str,
    response: Any = None,
    as_actor: str | None = None,
) -> httpx.Response:
    return await server.client.post(
        f"{BASE}/processes/{process_id}/{action}",
        content=b"" if response is None else json.dumps(response).encode(),
        headers={**auth(account, as_actor), "Content-Type": "application/json"},
    )


async def get_process(server: LiveServer, account: Account | str, pid: str) -> dict[str, Any]:
    response = await server.client.get(f"{BASE}/processes/{pid}", headers=auth(account))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def pair(factory: Factory) -> tuple[Account, Account]:
    bob = await factory.account(workspace="LetsFlow")
    eve = await factory.account(join=bob.workspace_id, role=Role.MEMBER)
    return bob, eve


async def test_routes_refuse_missing_and_invalid_credentials(server: LiveServer) -> None:
    for method, path in [
        ("GET", "/scenarios"),
        ("POST", "/scenarios"),
        ("GET", f"/scenarios/{uuid.uuid4()}"),
        ("GET", "/processes"),
        ("POST", f"/processes/{uuid.uuid4()}/go"),
        ("GET", "/apikey"),
    ]:
        response = await server.client.request(method, f"{BASE}{path}")
        assert_error(response, 401, "UNAUTHORIZED")
    invalid = await server.client.get(f"{BASE}/scenarios", headers=auth("fql_nope_nope"))
    assert_error(invalid, 401, "UNAUTHORIZED")


async def test_a_scenario_stored_as_yaml_and_as_json_has_one_id(
    server: LiveServer, factory: Factory
) -> None:
    bob, _ = await pair(factory)
    from_yaml = await store_yaml(server, bob, "conversation")
    response = await server.client.post(
        f"{BASE}/scenarios",
        content=(DATA / "conversation.json").read_text(),
        headers={**auth(bob), "Content-Type": "application/json"},
    )
    assert response.status_code == 201 and response.json() == {"id": from_yaml}
    assert await store_yaml(server, bob, "conversation") == from_yaml
    approval = await store_yaml(server, bob, "approval")

    listed = (await server.client.get(f"{BASE}/scenarios", headers=auth(bob))).json()
    assert {s["id"] for s in listed} == {from_yaml, approval}
    for summary in listed:
        assert {"id", "name", "title", "description"} <= set(summary)
    expense = next(s for s in listed if s["id"] == approval)
    assert (expense["name"], expense["title"]) == ("approval", "Expense approval")


async def test_a_scenario_round_trips_as_json_and_as_yaml(
    server: LiveServer, factory: Factory
) -> None:
    bob, _ = await pair(factory)
    ident = await store_yaml(server, bob, "approval")
    as_json = await server.client.get(f"{BASE}/scenarios/{ident}", headers=auth(bob))
    assert as_json.status_code == 200 and as_json.headers["content-type"] == "application/json"
    scenario = as_json.json()
    assert {"actors", "actions", "states"} <= set(scenario)
    assert scenario["title"] == "Expense approval" and "x-disabled" not in as_json.headers
    again = await server.client.post(f"{BASE}/scenarios", json=scenario, headers=auth(bob))
    assert again.json() == {"id": ident}

    as_yaml = await server.client.get(
        f"{BASE}/scenarios/{ident}", headers={**auth(bob), "Accept": "application/yaml"}
    )
    assert as_yaml.status_code == 200
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert "states:" in as_yaml.text and not as_yaml.text.lstrip().startswith("{")
    again = await server.client.post(
        f"{BASE}/scenarios",
        content=as_yaml.content,
        headers={**auth(bob), "Content-Type": "application/yaml"},
    )
    assert again.json() == {"id": ident}
    preferred = await server.client.get(
        f"{BASE}/scenarios/{ident}",
        headers={**auth(bob), "Accept": "application/json;q=0.5, application/yaml"},
    )
    assert preferred.headers["content-type"].startswith("application/yaml")


async def test_storing_an_invalid_scenario_is_400_naming_the_problem(
    server: LiveServer, factory: Factory
) -> None:
    bob, _ = await pair(factory)
    broken = {"states": {"initial": {"on": "go", "goto": "nowhere"}}}
    response = await server.client.post(f"{BASE}/scenarios", json=broken, headers=auth(bob))
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert any("nowhere" in reason for reason in error["reason"]), error
    for content, kind in [(b"{nope", "application/json"), (b"", "application/json")]:
        response = await server.client.post(
            f"{BASE}/scenarios", content=content, headers={**auth(bob), "Content-Type": kind}
        )
        assert_error(response, 400, "VALIDATION_ERROR")
    bad_yaml = await server.client.post(
        f"{BASE}/scenarios",
        content=b"states: [unclosed",
        headers={**auth(bob), "Content-Type": "application/yaml"},
    )
    assert_error(bad_yaml, 400, "VALIDATION_ERROR")


async def test_unknown_and_malformed_ids_are_404(server: LiveServer, factory: Factory) -> None:
    bob, _ = await pair(factory)
    stranger = await factory.account(workspace="Elsewhere")
    ident = await store_yaml(server, bob, "basics")
    for method, path in [
        ("GET", f"/scenarios/{uuid.uuid4()}"),
        ("GET", "/scenarios/not-a-uuid"),
        ("DELETE", f"/scenarios/{uuid.uuid4()}"),
        ("GET", f"/processes/{uuid.uuid4()}"),
        ("GET", "/processes/not-a-uuid"),
        ("POST", f"/processes/{uuid.uuid4()}/complete"),
    ]:
        response = await server.client.request(method, f"{BASE}{path}", headers=auth(bob))
        assert_error(response, 404, "NOT_FOUND")
    # Another tenant's scenario does not exist for the caller.
    other = await server.client.get(f"{BASE}/scenarios/{ident}", headers=auth(stranger))
    assert_error(other, 404, "NOT_FOUND")


async def test_a_disabled_scenario_refuses_new_processes_but_running_ones_go_on(
    server: LiveServer, factory: Factory
) -> None:
    bob, eve = await pair(factory)
    ident = await store_yaml(server, bob, "handshake")
    actors = {"initiator": actor(bob, "Bob"), "recipient": actor(eve, "Eve")}
    running = (await start(server, bob, {"scenario": ident, "actors": actors})).json()

    disabled = await server.client.delete(f"{BASE}/scenarios/{ident}", headers=auth(bob))
    assert disabled.status_code == 204 and disabled.content == b""
    fetched = await server.client.get(f"{BASE}/scenarios/{ident}", headers=auth(bob))
    assert fetched.status_code == 200 and fetched.headers["x-disabled"] == "true"
    listed = (await server.client.get(f"{BASE}/scenarios", headers=auth(bob))).json()
    assert ident not in {s["id"] for s in listed}

    refused = await start(server, bob, {"scenario": ident, "actors": actors})
    error = assert_error(refused, 400, "VALIDATION_ERROR")
    assert "disabled" in error["message"]
    assert (await step(server, bob, running["id"], "greet")).status_code == 204


async def test_the_handshake_tutorial_posted_as_yaml_runs_to_its_end_over_rest(
    server: LiveServer, factory: Factory
) -> None:
    bob, eve = await pair(factory)
    ident = await store_yaml(server, bob, "handshake")
    actors = {"initiator": actor(bob, "Bob"), "recipient": actor(eve, "Eve")}
    created = await start(
        server, bob, {"scenario": ident, "actors": actors, "action": "greet"}, "initiator"
    )
    assert created.status_code == 201, created.text
    process = created.json()
    assert created.headers["location"] == f"{BASE}/processes/{process['id']}"
    assert set(process) == PROCESS_KEYS and set(process["current"]) >= STATE_KEYS
    assert process["current"]["key"] == "wait_on_recipient"
    assert process["scenario"]["id"] == ident
    assert process["actors"]["recipient"] == {"id": str(eve.user_id), "title": "Eve"}
    assert [a["key"] for a in process["current"]["actions"]] == ["reply", "ignore"]

    assert (
        await step(server, eve, process["id"], "reply", as_actor="recipient")
    ).status_code == 204
    assert (await step(server, bob, process["id"], "complete")).status_code == 204
    ended = await get_process(server, eve, process["id"])
    assert ended["current"]["key"] == "(success)" and ended["current"]["actions"] == []
    assert [e.get("action") for e in ended["events"]] == [None, "greet", "reply", "complete"]
    assert [p["actor"]["key"] for p in ended["previous"]] == ["initiator", "recipient", "initiator"]

    as_yaml = await server.client.get(
        f"{BASE}/processes/{process['id']}", headers={**auth(bob), "Accept": "application/yaml"}
    )
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text) == ended


async def test_the_conversation_posted_as_json_records_a_refused_turn_as_skipped(
    server: LiveServer, factory: Factory
) -> None:
    bob, eve = await pair(factory)
    stored = await server.client.post(
        f"{BASE}/scenarios",
        content=(DATA / "conversation.json").read_text(),
        headers={**auth(bob), "Content-Type": "application/json"},
    )
    ident = stored.json()["id"]
    actors = {"initiator": actor(bob, "Bob"), "recipient": actor(eve, "Eve")}
    pid = (await start(server, bob, {"scenario": ident, "actors": actors})).json()["id"]
    assert (await step(server, bob, pid, "talk", "How are you?")).status_code == 204

    out_of_turn = await step(server, bob, pid, "talk", "Hello?")
    error = assert_error(out_of_turn, 400, "VALIDATION_ERROR")
    assert any("No transition found for action 'talk'" in r for r in error["reason"]), error
    skipped = [e for e in (await get_process(server, bob, pid))["events"] if e.get("skipped")]
    assert len(skipped) == 1 and skipped[0]["response"] == "Hello?"
    assert error["eventId"]

    for speaker, line in [(eve, "Fine"), (bob, "Good to hear")]:
        assert (await step(server, speaker, pid, "talk", line)).status_code == 204
    assert (await step(server, eve, pid, "end")).status_code == 204
    ended = await get_process(server, bob, pid)
    assert ended["current"]["key"] == "(done)"
    assert ended["result"] == ["How are you?", "Fine", "Good to hear"]


async def test_who_may_act_is_checked_and_as_actor_resolves_ambiguity(
    server: LiveServer, factory: Factory
) -> None:
    bob, eve = await pair(factory)
    outsider = await factory.account(join=bob.workspace_id, role=Role.MEMBER)
    ident = await store_yaml(server, bob, "approval")
    both = {"requester": actor(bob, "Bob"), "approver": actor(bob, "Bob as approver")}
    submit = {"key": "submit", "response": {"amount": 10, "reason": "Taxi"}}
    created = await start(
        server, bob, {"scenario": ident, "actors": both, "action": submit}, "requester"
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]

    ambiguous = await step(server, bob, pid, "comment", "Note")
    assert "As-Actor" in assert_error(ambiguous, 400, "VALIDATION_ERROR")["message"]
    assert (await step(server, bob, pid, "comment", "Note", as_actor="approver")).status_code == 204
    not_mine = await step(server, eve, pid, "approve")
    assert_error(not_mine, 403, "FORBIDDEN")
    other = await step(server, outsider, pid, "approve", as_actor="approver")
    assert_error(other, 403, "FORBIDDEN")
    assert_error(await step(server, bob, pid, "fly", as_actor="approver"), 404, "NOT_FOUND")
    invalid = await step(server, bob, pid, "reject", {"no": "comment"}, as_actor="approver")
    assert "comment" in " ".join(assert_error(invalid, 400, "VALIDATION_ERROR")["reason"])
    assert (await step(server, bob, pid, "approve", as_actor="approver")).status_code == 204
    process = await get_process(server, bob, pid)
    assert process["current"]["key"] == "(approved)"
    assert process["vars"]["comments"] == ["Bob as approver: Note"]


async def test_starting_a_process_validates_its_body_and_stores_nothing_when_refused(
    server: LiveServer, factory: Factory
) -> None:
    bob, eve = await pair(factory)
    ident = await store_yaml(server, bob, "handshake")
    actors = {"initiator": actor(bob, "Bob"), "recipient": actor(eve, "Eve")}
    for body in [
        {},
        {"scenario": "not-a-uuid"},
        {"scenario": str(uuid.uuid4())},
        {"scenario": ident, "actors": ["bob"]},
        {"scenario": ident, "action": 42},
        {"scenario": ident, "action": "fly"},
    ]:
        assert_error(await start(server, bob, body), 400, "VALIDATION_ERROR")
    refused = await start(server, bob, {"scenario": ident, "actors": actors, "action": "reply"})
    assert_error(refused, 400, "VALIDATION_ERROR")
    listed = await server.client.get(f"{BASE}/processes", params={"all": "true"}, headers=auth(bob))
    assert listed.json() == []


async def test_listing_processes_shows_mine_and_all_only_to_admins(
    server: LiveServer, factory: Factory
) -> None:
    bob, eve = await pair(factory)
    jack = await factory.account(join=bob.workspace_id, role=Role.MEMBER)
    ident = await store_yaml(server, bob, "handshake")
    with_eve = {"initiator": actor(bob, "Bob"), "recipient": actor(eve, "Eve")}
    with_jack = {"initiator": actor(bob, "Bob"), "recipient": actor(jack, "Jack")}
    first = (await start(server, bob, {"scenario": ident, "actors": with_eve})).json()
    second = (await start(server, bob, {"scenario": ident, "actors": with_jack})).json()

    mine = (await server.client.get(f"{BASE}/processes", headers=auth(eve))).json()
    assert [p["id"] for p in mine] == [first["id"]]
    summary = mine[0]
    assert set(summary) == {"id", "title", "tags", "scenario", "actors", "created", "lastUpdated"}
    assert summary["scenario"]["id"] == ident
    assert {"key": "recipient", **actor(eve, "Eve")} in summary["actors"]

    refused = await server.client.get(f"{BASE}/processes?all=true", headers=auth(eve))
    assert_error(refused, 403, "FORBIDDEN")
    everything = await server.client.get(f"{BASE}/processes?page=1&all=true", headers=auth(bob))
    assert [p["id"] for p in everything.json()] == [second["id"], first["id"]]
    later = await server.client.get(f"{BASE}/processes?page=2&all=true", headers=auth(bob))
    assert later.status_code == 200 and later.json() == []
    for query in ["page=0", "page=x", "all=maybe"]:
        response = await server.client.get(f"{BASE}/processes?{query}", headers=auth(bob))
        assert_error(response, 400, "VALIDATION_ERROR")
