"""Document 003 at /compat/letsflow: info, demo accounts, API keys and their process scopes."""

from __future__ import annotations

import uuid
from datetime import datetime

from flowql.settings import Environment
from tests.compat.test_letsflow import (
    BASE,
    actor,
    assert_error,
    auth,
    get_process,
    pair,
    start,
    step,
    store_yaml,
)
from tests.conftest import Factory, LiveServer

APIKEY_KEYS = {
    "id",
    "token",
    "name",
    "description",
    "issued",
    "expirationDays",
    "expiration",
    "lastUsed",
    "revoked",
    "privileges",
    "processes",
}


async def test_info_is_public_and_describes_the_engine(server: LiveServer) -> None:
    response = await server.client.get(f"{BASE}/info")
    assert response.status_code == 200
    info = response.json()
    assert set(info) == {"name", "version", "description", "env"}
    assert (info["name"], info["env"]) == ("flowql", "development")


async def test_demo_accounts_log_in_only_in_development(server: LiveServer) -> None:
    settings = server.runtime.settings
    off = await server.client.get(f"{BASE}/demo-accounts")
    assert "disabled" in assert_error(off, 403, "FORBIDDEN")["message"]

    settings.demo_accounts = True
    response = await server.client.get(f"{BASE}/demo-accounts")
    assert response.status_code == 200, response.text
    [account] = response.json()
    assert set(account) == {"id", "name", "email", "roles", "token"}
    assert account["email"] == "demo@flowql.local"
    listed = await server.client.get(f"{BASE}/scenarios", headers=auth(account["token"]))
    assert listed.status_code == 200 and listed.json() == []

    settings.env = Environment.PRODUCTION
    assert_error(await server.client.get(f"{BASE}/demo-accounts"), 403, "FORBIDDEN")


async def test_api_keys_are_issued_once_listed_masked_and_revoked(
    server: LiveServer, factory: Factory
) -> None:
    bob, _ = await pair(factory)
    scenario = str(uuid.uuid4())
    body = {
        "name": "Bot",
        "description": "Acts for the bot",
        "privileges": ["scenario:read", "process:read", "process:step"],
        "processes": [{"scenario": scenario, "actors": ["bot"], "actions": ["reply"]}],
    }
    issued = await server.client.post(f"{BASE}/apikey", json=body, headers=auth(bob))
    assert issued.status_code == 201, issued.text
    key = issued.json()
    assert set(key) == APIKEY_KEYS
    secret = key["token"]
    assert secret.startswith("fql_") and key["name"] == "Bot"
    assert key["privileges"] == ["process:read", "process:start", "process:step", "scenario:read"]
    assert key["processes"] == [{"scenario": scenario, "actors": ["bot"], "actions": ["reply"]}]
    assert key["expirationDays"] == 30 and key["revoked"] is None and key["lastUsed"] is None
    assert datetime.fromisoformat(key["expiration"]) > datetime.fromisoformat(key["issued"])
    assert (await server.client.get(f"{BASE}/scenarios", headers=auth(secret))).status_code == 200

    listed = await server.client.get(f"{BASE}/apikey", headers=auth(bob))
    assert listed.status_code == 200 and secret not in listed.text
    [entry] = listed.json()
    assert set(entry) == APIKEY_KEYS and entry["id"] == key["id"]
    assert entry["token"].startswith("fql_") and entry["token"].endswith("_****")
    assert entry["lastUsed"] is not None

    revoked = await server.client.delete(f"{BASE}/apikey/{key['id']}", headers=auth(bob))
    assert revoked.status_code == 204 and revoked.content == b""
    assert_error(
        await server.client.get(f"{BASE}/scenarios", headers=auth(secret)), 401, "UNAUTHORIZED"
    )
    [entry] = (await server.client.get(f"{BASE}/apikey", headers=auth(bob))).json()
    assert entry["revoked"] is not None


async def test_issuing_an_api_key_validates_its_body(server: LiveServer, factory: Factory) -> None:
    bob, eve = await pair(factory)
    for body in [
        {"description": "no name"},
        {"name": ""},
        {"name": "k", "privileges": "scenario:read"},
        {"name": "k", "privileges": ["scenario:fly"]},
        {"name": "k", "processes": [{"scenario": "not-a-uuid"}]},
        {"name": "k", "processes": {"scenario": None}},
        {"name": "k", "expirationDays": "soon"},
        {"name": "k", "expiration": "2000-01-01T00:00:00Z"},
    ]:
        response = await server.client.post(f"{BASE}/apikey", json=body, headers=auth(bob))
        assert_error(response, 400, "VALIDATION_ERROR")
    # A member may not issue keys; nobody revokes an unknown one.
    denied = await server.client.post(f"{BASE}/apikey", json={"name": "k"}, headers=auth(eve))
    assert_error(denied, 403, "FORBIDDEN")
    unknown = await server.client.delete(f"{BASE}/apikey/{uuid.uuid4()}", headers=auth(bob))
    assert_error(unknown, 404, "NOT_FOUND")


async def test_a_scoped_api_key_is_refused_outside_its_scope(
    server: LiveServer, factory: Factory
) -> None:
    bob, member = await pair(factory)
    handshake = await store_yaml(server, bob, "handshake")
    basics = await store_yaml(server, bob, "basics")
    body = {
        "name": "Recipient bot",
        "description": "",
        "privileges": ["process:read", "process:start", "process:step"],
        "processes": [{"scenario": handshake, "actors": ["recipient"], "actions": ["reply"]}],
    }
    key = (await server.client.post(f"{BASE}/apikey", json=body, headers=auth(bob))).json()
    token = key["token"]
    actors = {"initiator": actor(bob, "Bob"), "recipient": {"id": "bot", "title": "Bot"}}
    pid = (await start(server, bob, {"scenario": handshake, "actors": actors})).json()["id"]
    other = (await start(server, bob, {"scenario": basics, "actors": {}})).json()["id"]
    theirs = (await start(server, member, {"scenario": handshake, "actors": actors})).json()["id"]

    assert_error(await start(server, token, {"scenario": basics}), 403, "FORBIDDEN")
    assert_error(await step(server, token, pid, "greet", as_actor="initiator"), 403, "FORBIDDEN")
    outside = await server.client.get(f"{BASE}/processes/{other}", headers=auth(token))
    assert_error(outside, 403, "FORBIDDEN")
    listed = (await server.client.get(f"{BASE}/processes", headers=auth(token))).json()
    assert {p["id"] for p in listed} == {pid, theirs}

    assert (await step(server, bob, pid, "greet")).status_code == 204
    not_now = await step(server, token, pid, "ignore")
    assert_error(not_now, 403, "FORBIDDEN")
    assert (await step(server, token, pid, "reply")).status_code == 204
    process = await get_process(server, token, pid)
    assert process["current"]["key"] == "wait_on_initiator"
    assert process["events"][-1]["actor"]["key"] == "recipient"
