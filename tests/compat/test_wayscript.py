"""Documents 000 (WayScript HTTP API) and 001 (Run Program) served at /compat/wayscript, called
the way the documents' examples do: bearer + content-type headers, query parameters for 001."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import text

from tests.conftest import Account, Factory, LiveServer
from tests.engine.conftest import create_workflow, execute, wait_status

BASE = "/compat/wayscript"
SECRET = "sk-lair-secret-7f3a19"


def headers(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and str(uuid.UUID(value)) == value


def is_time(value: Any) -> bool:
    return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None


async def issue_token(server: LiveServer, account: Account, process_id: str) -> dict[str, str]:
    body = await server.gql(
        "mutation($id: UUID!) { issueExecutionToken(id: $id) { accessToken refreshToken } }",
        {"id": process_id},
        token=account.token,
    )
    tokens: dict[str, str] = body["data"]["issueExecutionToken"]
    return tokens


async def hook(server: LiveServer, workflow: dict[str, Any], path: str, data: Any) -> str:
    response = await server.client.post(f"/hooks/{workflow['id']}/{path}", json=data)
    assert response.status_code == 202, response.text
    process_id: str = response.json()["process_id"]
    return process_id


@pytest.fixture
async def world(server: LiveServer, factory: Factory) -> dict[str, Any]:
    owner = await factory.account()
    greeter = await create_workflow(
        server,
        owner.token,
        "Greeter Bot",
        [
            {
                "name": "greet",
                "type": "webhook",
                "options": {"path": "greet", "outputs": ["name", "greeting"]},
            },
            {
                "name": "compose",
                "type": "transform",
                "sources": ["greet"],
                "options": {"payload": {"text": "{{ message.greeting }}, {{ message.name }}!"}},
            },
            {"name": "shout", "type": "webhook", "options": {"path": "shout", "outputs": ["word"]}},
            {"name": "sleeping", "type": "webhook", "disabled": True, "options": {"path": "zzz"}},
        ],
    )
    process_id = await hook(server, greeter, "greet", {"name": "Ada", "greeting": "Hi"})
    await wait_status(server, owner.token, process_id, {"COMPLETED"})
    tokens = await issue_token(server, owner, process_id)
    return {"owner": owner, "greeter": greeter, "process_id": process_id, "tokens": tokens}


# -- document 000 ------------------------------------------------------------------------------


async def test_process_detail_as_the_running_process_sees_it(
    server: LiveServer, world: dict[str, Any]
) -> None:
    token = world["tokens"]["accessToken"]
    response = await server.client.get(
        f"{BASE}/processes/{world['process_id']}/detail", headers=headers(token)
    )
    assert response.status_code == 200, response.text
    detail = response.json()
    assert set(detail) == {"event", "process", "lair_trigger"}
    event, process, trigger = detail["event"], detail["process"], detail["lair_trigger"]
    assert set(event) == {"id", "trigger_type", "data", "meta", "created_date"}
    assert is_uuid(event["id"]) and event["trigger_type"] == "webhook"
    assert event["data"] == {"name": "Ada", "greeting": "Hi"} and event["meta"]["method"] == "POST"
    assert set(process) == {
        "id", "lair_id", "trigger_id", "service_id", "event_id", "workspace_id", "user_id",
        "command", "port", "created_date", "commpleted_date", "completed_date", "last_activity",
    }  # fmt: skip
    assert process["id"] == world["process_id"] and process["event_id"] == event["id"]
    assert process["lair_id"] == world["greeter"]["id"]
    assert process["workspace_id"] == str(world["owner"].workspace_id)
    assert process["user_id"] is None  # started by a webhook, not by a user
    assert is_time(process["created_date"]) and is_time(process["last_activity"])
    assert is_time(process["commpleted_date"])
    assert process["completed_date"] == process["commpleted_date"]
    assert set(trigger) == {
        "trigger_id", "lair_id", "workspace_id", "type", "test_event", "command",
        "workspace_integration_id", "settings", "data", "created_date", "archived_date",
    }  # fmt: skip
    assert trigger["trigger_id"] == process["trigger_id"] and is_uuid(trigger["trigger_id"])
    assert trigger["lair_id"] == world["greeter"]["id"] and trigger["type"] == "webhook"
    assert trigger["settings"]["path"] == "greet" and trigger["archived_date"] is None
    assert trigger["data"]["outputs"] == ["name", "greeting"] and is_time(trigger["created_date"])


async def test_workspace_details_with_a_stable_account_tier(
    server: LiveServer, world: dict[str, Any], factory: Factory
) -> None:
    owner = world["owner"]
    response = await server.client.get(
        f"{BASE}/workspaces/{owner.workspace_id}", headers=headers(world["tokens"]["accessToken"])
    )
    assert response.status_code == 200
    workspace = response.json()
    assert set(workspace) == {
        "id", "name", "owner_id", "account_tier_id", "cron_timezone", "created_date"
    }  # fmt: skip
    assert workspace["id"] == str(owner.workspace_id) and workspace["owner_id"] == str(
        owner.user_id
    )
    assert workspace["cron_timezone"] == "UTC" and is_time(workspace["created_date"])
    other = await factory.account()
    theirs = await server.client.get(
        f"{BASE}/workspaces/{other.workspace_id}", headers=headers(other.token)
    )
    assert theirs.json()["account_tier_id"] == workspace["account_tier_id"]  # same plan
    assert is_uuid(workspace["account_tier_id"])


async def test_users_self_with_an_application_key(
    server: LiveServer, world: dict[str, Any], factory: Factory
) -> None:
    owner = world["owner"]
    group = await server.gql(
        'mutation($ws: UUID!) { createGroup(workspaceId: $ws, name: "Ops") { id } }',
        {"ws": str(owner.workspace_id)},
        token=owner.token,
    )
    group_id = group["data"]["createGroup"]["id"]
    await server.gql(
        "mutation($g: UUID!, $u: UUID!) { addGroupMember(groupId: $g, userId: $u) { id } }",
        {"g": group_id, "u": str(owner.user_id)},
        token=owner.token,
    )
    key = await factory.api_key(owner)
    url = f"{BASE}/workspaces/{owner.workspace_id}/users/self"
    response = await server.client.get(url, headers=headers(key))
    assert response.status_code == 200, response.text
    user = response.json()
    assert set(user) == {
        "id", "email", "first_name", "last_name", "avatar", "created_date", "last_login", "groups"
    }  # fmt: skip
    assert user["id"] == str(owner.user_id) and user["email"] == owner.email
    assert isinstance(user["created_date"], str) and isinstance(user["last_login"], str)
    ops = [g for g in user["groups"] if g["name"] == "Ops"]
    assert ops == [
        {
            "id": group_id,
            "name": "Ops",
            "workspace_id": str(owner.workspace_id),
            "owner_id": ops[0]["owner_id"],
            "system_managed": False,
        }
    ]
    assert (await server.client.get(url, headers=headers(owner.token))).json() == user
    stranger = await factory.account()
    elsewhere = f"{BASE}/workspaces/{stranger.workspace_id}/users/self"
    assert (await server.client.get(elsewhere, headers=headers(key))).status_code == 404


async def test_lair_details(server: LiveServer, world: dict[str, Any]) -> None:
    greeter = world["greeter"]
    response = await server.client.get(
        f"{BASE}/lairs/{greeter['id']}", headers=headers(world["tokens"]["accessToken"])
    )
    assert response.status_code == 200
    lair = response.json()
    documented = {
        "id", "internal_id", "name", "friendly_name", "workspace_id", "manager_id",
        "last_run_date", "is_public", "endpoints_are_private", "created_date", "default_path",
        "environment", "last_deployed", "endpoint",
    }  # fmt: skip
    assert documented <= set(lair)
    assert lair["internal_id"] == greeter["number"] and lair["friendly_name"] == "Greeter Bot"
    assert lair["name"] == "greeter-bot" and lair["workspace_id"] == str(
        world["owner"].workspace_id
    )
    assert is_time(lair["last_run_date"]) and is_time(lair["created_date"])
    assert isinstance(lair["is_public"], bool) and isinstance(lair["endpoints_are_private"], bool)
    assert lair["endpoint"] == f"{server.url}/hooks/{greeter['id']}"


async def test_integration_credentials_go_only_to_the_running_process(
    server: LiveServer, world: dict[str, Any]
) -> None:
    owner = world["owner"]
    created = await server.gql(
        """mutation { createIntegration(input: {name: "Slack", type: "slack",
             settings: {channel: "#ops"}, credentials: {token: "xoxb-1"}}) { id } }""",
        token=owner.token,
    )
    integration_id = created["data"]["createIntegration"]["id"]
    process = headers(world["tokens"]["accessToken"])
    response = await server.client.get(
        f"{BASE}/workspace-integrations/{integration_id}", headers=process
    )
    assert response.status_code == 200
    integration = response.json()
    assert set(integration) == {
        "id", "name", "user_id", "workspace_id", "type", "credentials", "credentials_state",
        "external_account_id", "settings",
    }  # fmt: skip
    assert json.loads(integration["credentials"]) == {"token": "xoxb-1"}
    assert json.loads(integration["settings"]) == {"channel": "#ops"}
    assert integration["credentials_state"] == "set" and integration["user_id"] == str(
        owner.user_id
    )
    as_user = await server.client.get(
        f"{BASE}/workspace-integrations/{integration_id}", headers=headers(owner.token)
    )
    assert as_user.json() == {**integration, "credentials": None}
    listed = await server.client.get(
        f"{BASE}/workspace-integrations/workspace/{owner.workspace_id}", headers=process
    )
    assert listed.status_code == 200 and listed.json() == [integration]
    missing = await server.client.get(
        f"{BASE}/workspace-integrations/workspace/{uuid.uuid4()}", headers=process
    )
    assert missing.status_code == 404


async def test_http_trigger_response_reaches_the_waiting_caller(
    server: LiveServer, world: dict[str, Any]
) -> None:
    owner = world["owner"]
    workflow = await create_workflow(
        server,
        owner.token,
        "Answered by a script",
        [
            {"name": "endpoint", "type": "http", "options": {"path": "ask", "timeout_seconds": 15}},
            {"name": "think", "type": "delay", "options": {"seconds": 30}, "sources": ["endpoint"]},
        ],
    )
    caller = asyncio.create_task(server.client.post(f"/hooks/{workflow['id']}/ask", json={"q": 1}))
    query = "query($w: UUID!) { processes(filter: {workflowId: $w}) { nodes { id } } }"
    nodes: list[dict[str, str]] = []
    for _ in range(100):
        listed = await server.gql(query, {"w": workflow["id"]}, token=owner.token)
        nodes = listed["data"]["processes"]["nodes"]
        if nodes:
            break
        await asyncio.sleep(0.05)
    process_id = nodes[0]["id"]
    tokens = await issue_token(server, owner, process_id)
    url = f"{BASE}/webhooks/http-trigger/response/{process_id}"
    payload = {"data": {"answer": 42}, "headers": {"X-Answer": "yes"}, "status_code": 201}
    posted = await server.client.post(url, json=payload, headers=headers(tokens["accessToken"]))
    assert posted.status_code == 200 and posted.json() == {}
    answer = await asyncio.wait_for(caller, 10)
    assert answer.status_code == 201 and answer.headers["x-answer"] == "yes"
    assert answer.json() == {"answer": 42}
    again = await server.client.post(url, json=payload, headers=headers(tokens["accessToken"]))
    assert again.status_code == 400
    unknown = f"{BASE}/webhooks/http-trigger/response/{uuid.uuid4()}"
    assert (
        await server.client.post(unknown, json=payload, headers=headers(owner.token))
    ).status_code == 404
    bad = await server.client.post(
        url, json={**payload, "status_code": 99999}, headers=headers(owner.token)
    )
    assert bad.status_code == 400


async def test_lair_secret_is_stored_encrypted_and_needs_edit_rights(
    server: LiveServer, world: dict[str, Any], factory: Factory
) -> None:
    owner, greeter = world["owner"], world["greeter"]
    started_by_owner = await execute(server, owner.token, greeter["id"])
    tokens = await issue_token(server, owner, started_by_owner["id"])
    url = f"{BASE}/files/lairs/{greeter['id']}/secrets"
    secret = {"key": "API_TOKEN", "value": SECRET}
    # A running process's token never manages credentials, whoever started it (issue 12).
    process = headers(tokens["accessToken"])
    assert (await server.client.post(url, json=secret, headers=process)).status_code == 403
    response = await server.client.post(url, json=secret, headers=headers(owner.token))
    assert response.status_code == 200 and response.json() == {}
    async with server.runtime.db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM credentials"))).all()
    assert len(rows) == 1 and SECRET not in repr(tuple(rows[0]))
    listed = await server.gql(
        "query($w: UUID!) { credentials(filter: {workflowId: $w}) { nodes { name } } }",
        {"w": greeter["id"]},
        token=owner.token,
    )
    assert listed["data"]["credentials"]["nodes"] == [{"name": "API_TOKEN"}]
    webhook_process = headers(world["tokens"]["accessToken"])
    assert (await server.client.post(url, json=secret, headers=webhook_process)).status_code == 403
    reader = await factory.api_key(owner, privileges=["workflow:read"])
    assert (await server.client.post(url, json=secret, headers=headers(reader))).status_code == 403
    unknown = f"{BASE}/files/lairs/{uuid.uuid4()}/secrets"
    assert (
        await server.client.post(unknown, json=secret, headers=headers(owner.token))
    ).status_code == 404
    stranger = await factory.account()
    assert (
        await server.client.post(url, json=secret, headers=headers(stranger.token))
    ).status_code == 404
    no_value = await server.client.post(url, json={"key": "X"}, headers=headers(owner.token))
    assert no_value.status_code == 400


def expired_execution_token(server: LiveServer, account: Account, process_id: str) -> str:
    settings = server.runtime.settings
    now = datetime.now(UTC)
    claims = {
        "sub": process_id,
        "iat": now - timedelta(hours=2),
        "nbf": now - timedelta(hours=2),
        "exp": now - timedelta(hours=1),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience + "-exec",
        "typ": "execution",
        "jti": uuid.uuid4().hex,
        "ws": str(account.workspace_id),
        "usr": None,
    }
    assert settings.secret_key
    return jwt.encode(claims, settings.secret_key, algorithm="HS256")


async def test_expired_token_is_401_and_refresh_rotates_it(
    server: LiveServer, world: dict[str, Any]
) -> None:
    expired = expired_execution_token(server, world["owner"], world["process_id"])
    detail = f"{BASE}/processes/{world['process_id']}/detail"
    refused = await server.client.get(detail, headers=headers(expired))
    assert refused.status_code == 401 and "expired" in refused.json()["error"]
    old_refresh = world["tokens"]["refreshToken"]
    response = await server.client.post(
        f"{BASE}/auth/refresh", json={"refresh_token": old_refresh}, headers=headers(expired)
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert set(tokens) == {"refresh_token", "access_token"}
    assert tokens["refresh_token"] != old_refresh
    assert (
        await server.client.get(detail, headers=headers(tokens["access_token"]))
    ).status_code == 200
    reused = await server.client.post(f"{BASE}/auth/refresh", json={"refresh_token": old_refresh})
    assert reused.status_code == 401
    missing = await server.client.post(f"{BASE}/auth/refresh", json={})
    assert missing.status_code == 400


async def test_missing_or_bad_credentials_and_unknown_ids(
    server: LiveServer, world: dict[str, Any], factory: Factory
) -> None:
    owner = world["owner"]
    routes = [
        ("GET", f"/processes/{world['process_id']}/detail"),
        ("GET", f"/workspaces/{owner.workspace_id}"),
        ("GET", f"/workspaces/{owner.workspace_id}/users/self"),
        ("GET", f"/lairs/{world['greeter']['id']}"),
        ("GET", f"/workspace-integrations/{uuid.uuid4()}"),
        ("GET", f"/workspace-integrations/workspace/{owner.workspace_id}"),
        ("POST", f"/webhooks/http-trigger/response/{world['process_id']}"),
        ("POST", f"/files/lairs/{world['greeter']['id']}/secrets"),
    ]
    for method, path in routes:
        for auth in ({}, headers("nonsense"), {"authorization": "Basic abc"}):
            response = await server.client.request(method, BASE + path, headers=auth, json={})
            assert response.status_code == 401, (method, path, auth)
            assert set(response.json()) == {"error", "code"}
    stranger = await factory.account()
    for path in (
        f"/processes/{uuid.uuid4()}/detail",
        f"/processes/{world['process_id']}/detail",  # another tenant's: as good as missing
        f"/workspaces/{owner.workspace_id}",
        f"/lairs/{world['greeter']['id']}",
        f"/workspace-integrations/{uuid.uuid4()}",
        "/lairs/not-a-uuid",
    ):
        response = await server.client.get(BASE + path, headers=headers(stranger.token))
        assert response.status_code == 404, path


async def test_openapi_describes_the_mount(server: LiveServer) -> None:
    spec = (await server.client.get(f"{BASE}/openapi.json")).json()
    assert spec["openapi"] == "3.1.0" and "commpleted_date" in spec["info"]["description"]
    assert set(spec["paths"]) == {
        "/processes/{process_id}/detail",
        "/workspaces/{workspace_id}",
        "/workspaces/{workspace_id}/users/self",
        "/lairs/{lair_id}",
        "/workspace-integrations/{workspace_integration_id}",
        "/workspace-integrations/workspace/{workspace_id}",
        "/webhooks/http-trigger/response/{process_id}",
        "/files/lairs/{lair_id}/secrets",
        "/auth/refresh",
        "/api",
    }
