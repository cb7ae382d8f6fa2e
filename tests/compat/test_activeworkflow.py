"""Document 002 (ActiveWorkflow REST API v1) served at /compat/activeworkflow, called the way the
document's examples do."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Account, Factory, LiveServer
from tests.engine.conftest import create_workflow, execute

BASE = "/compat/activeworkflow/api/v1"


@pytest.fixture
async def world(server: LiveServer, factory: Factory) -> dict[str, Any]:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "Statistics",
        [
            {"name": "RetrieveStatistics", "type": "message", "keepMessagesFor": 86400},
            {
                "name": "EmailStatistics",
                "type": "transform",
                "sources": ["RetrieveStatistics"],
                "options": {"payload": {"title": "{{ message.title }}"}},
            },
        ],
    )
    await server.gql(
        'mutation($id: UUID!) { updateWorkflow(id: $id, input: {description: "This workflow does something."}) { id } }',
        {"id": workflow["id"]},
        token=account.token,
    )
    for title in ("Latest news", "Older news"):
        await execute(
            server, account.token, workflow["id"], {"title": title, "author": "John Snow"}
        )
    return {"account": account, "workflow": workflow}


def auth(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.token}"}


async def test_get_agents_lists_the_users_agents(server: LiveServer, world: dict[str, Any]) -> None:
    response = await server.client.get(f"{BASE}/agents", headers=auth(world["account"]))
    assert response.status_code == 200
    agents = response.json()
    assert [a["name"] for a in agents] == ["RetrieveStatistics", "EmailStatistics"]
    first, second = agents
    assert set(first) == {"id", "name", "type", "disabled", "messages_count", "sources"}
    assert isinstance(first["id"], int) and first["type"] == "Agents::MessageAgent"
    assert first["disabled"] is False and first["messages_count"] == 2 and first["sources"] == []
    assert second["type"] == "Agents::TransformAgent" and second["sources"] == [{"id": first["id"]}]


async def test_get_agent_by_id(server: LiveServer, world: dict[str, Any]) -> None:
    agents = (await server.client.get(f"{BASE}/agents", headers=auth(world["account"]))).json()
    response = await server.client.get(
        f"{BASE}/agents/{agents[1]['id']}", headers=auth(world["account"])
    )
    assert response.status_code == 200
    assert response.json() == agents[1]


async def test_agent_messages_with_limit_and_after(
    server: LiveServer, world: dict[str, Any]
) -> None:
    headers = auth(world["account"])
    agent_id = (await server.client.get(f"{BASE}/agents", headers=headers)).json()[0]["id"]
    everything = (
        await server.client.get(f"{BASE}/agents/{agent_id}/messages", headers=headers)
    ).json()
    assert len(everything) == 2
    assert everything[0]["id"] < everything[1]["id"]
    for message in everything:
        assert set(message) == {"id", "agent_id", "created_at", "expires_at"}
        assert message["agent_id"] == agent_id and message["expires_at"] is not None
    latest = (
        await server.client.get(f"{BASE}/agents/{agent_id}/messages?limit=1", headers=headers)
    ).json()
    assert [m["id"] for m in latest] == [everything[1]["id"]]
    after = everything[0]["created_at"]
    newer = await server.client.get(
        f"{BASE}/agents/{agent_id}/messages", params={"after": after}, headers=headers
    )
    assert [m["id"] for m in newer.json()] == [everything[1]["id"]]
    bad = await server.client.get(f"{BASE}/agents/{agent_id}/messages?limit=lots", headers=headers)
    assert bad.status_code == 400 and bad.json() == {"error": "400 Bad Request"}


async def test_get_message_with_payload(server: LiveServer, world: dict[str, Any]) -> None:
    headers = auth(world["account"])
    agent_id = (await server.client.get(f"{BASE}/agents", headers=headers)).json()[0]["id"]
    first = (await server.client.get(f"{BASE}/agents/{agent_id}/messages", headers=headers)).json()[
        0
    ]
    response = await server.client.get(f"{BASE}/messages/{first['id']}", headers=headers)
    assert response.status_code == 200
    message = response.json()
    assert message["payload"] == {"title": "Latest news", "author": "John Snow"}
    assert {k: message[k] for k in first} == first


async def test_workflows_list_and_detail(server: LiveServer, world: dict[str, Any]) -> None:
    headers = auth(world["account"])
    listed = (await server.client.get(f"{BASE}/workflows", headers=headers)).json()
    assert listed == [
        {
            "id": world["workflow"]["number"],
            "name": "Statistics",
            "description": "This workflow does something.",
        }
    ]
    detail = (
        await server.client.get(f"{BASE}/workflows/{listed[0]['id']}", headers=headers)
    ).json()
    assert {k: detail[k] for k in ("id", "name", "description")} == listed[0]
    assert [a["name"] for a in detail["agents"]] == ["RetrieveStatistics", "EmailStatistics"]


async def test_export_downloads_a_file_that_imports_back_equal(
    server: LiveServer, world: dict[str, Any]
) -> None:
    headers = auth(world["account"])
    number = world["workflow"]["number"]
    response = await server.client.get(f"{BASE}/workflows/{number}/export", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="statistics.json"'
    exported = response.json()
    assert exported["schema_version"] == 1 and len(exported["agents"]) == 2
    assert exported["links"] == [
        {"source": s, "receiver": r}
        for s, r in [
            (
                next(
                    i for i, a in enumerate(exported["agents"]) if a["name"] == "RetrieveStatistics"
                ),
                next(i for i, a in enumerate(exported["agents"]) if a["name"] == "EmailStatistics"),
            )
        ]
    ]
    imported = await server.gql(
        "mutation($d: JSON!) { importWorkflow(definition: $d) { number } }",
        {"d": exported},
        token=world["account"].token,
    )
    again = (
        await server.client.get(
            f"{BASE}/workflows/{imported['data']['importWorkflow']['number']}/export",
            headers=headers,
        )
    ).json()

    def comparable(export: dict[str, Any]) -> dict[str, Any]:
        agents = sorted(
            ({k: v for k, v in a.items() if k != "guid"} for a in export["agents"]),
            key=lambda a: a["name"],
        )
        names = [a["name"] for a in export["agents"]]
        links = sorted((names[link["source"]], names[link["receiver"]]) for link in export["links"])
        return {
            "name": export["name"],
            "description": export["description"],
            "agents": agents,
            "links": links,
        }

    assert comparable(again) == comparable(exported)


async def test_errors_in_the_documented_format(
    server: LiveServer, world: dict[str, Any], factory: Factory
) -> None:
    missing = await server.client.get(f"{BASE}/workflows")
    assert missing.status_code == 401 and missing.json() == {"error": "401 Unauthorized"}
    bad = await server.client.get(f"{BASE}/workflows", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401 and bad.json() == {"error": "401 Unauthorized"}
    headers = auth(world["account"])
    for path in (
        "/agents/999999",
        "/messages/999999",
        "/workflows/999999",
        "/workflows/999999/export",
    ):
        response = await server.client.get(BASE + path, headers=headers)
        assert response.status_code == 404 and response.json() == {"error": "404 Not Found"}, path
    # Another user's workflow is as good as missing.
    stranger = await factory.account()
    other = await server.client.get(
        f"{BASE}/workflows/{world['workflow']['number']}", headers=auth(stranger)
    )
    assert other.status_code == 404
    assert (await server.client.get(f"{BASE}/agents", headers=auth(stranger))).json() == []


async def test_openapi_describes_the_mount(server: LiveServer) -> None:
    spec = (await server.client.get("/compat/activeworkflow/openapi.json")).json()
    assert spec["openapi"] == "3.1.0"
    assert set(spec["paths"]) == {
        "/api/v1/agents",
        "/api/v1/agents/{agent_id}",
        "/api/v1/agents/{agent_id}/messages",
        "/api/v1/messages/{message_id}",
        "/api/v1/workflows",
        "/api/v1/workflows/{workflow_id}",
        "/api/v1/workflows/{workflow_id}/export",
    }
