"""Messages: kept for the agent's keep_messages_for, deleted by the periodic expiry job; listed
newest first through GraphQL."""

from __future__ import annotations

from datetime import timedelta

from flowql.engine.scheduler import delete_expired_messages
from flowql.models import utcnow
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute

MESSAGES = """
query($agent: UUID!) {
  messages(filter: {agentId: $agent}) { totalCount nodes { payload expiresAt agent { name } } }
}
"""


async def test_expired_messages_are_deleted_and_others_kept(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "ephemeral",
        [
            {"name": "short", "type": "message", "keepMessagesFor": 60},
            {"name": "forever", "type": "message", "sources": ["short"]},
        ],
    )
    for n in range(3):
        assert (await execute(server, account.token, workflow["id"], {"n": n}))[
            "status"
        ] == "COMPLETED"
    short, forever = (a["id"] for a in workflow["agents"])
    listed = (await server.gql(MESSAGES, {"agent": short}, token=account.token))["data"]["messages"]
    assert listed["totalCount"] == 3
    assert [m["payload"]["n"] for m in listed["nodes"]] == [2, 1, 0]
    assert all(m["expiresAt"] is not None for m in listed["nodes"])

    assert await delete_expired_messages(server.runtime, utcnow() + timedelta(seconds=30)) == 0
    assert await delete_expired_messages(server.runtime, utcnow() + timedelta(seconds=61)) == 3
    gone = (await server.gql(MESSAGES, {"agent": short}, token=account.token))["data"]["messages"]
    kept = (await server.gql(MESSAGES, {"agent": forever}, token=account.token))["data"]["messages"]
    assert gone["totalCount"] == 0
    assert kept["totalCount"] == 3 and all(m["expiresAt"] is None for m in kept["nodes"])


async def test_disabled_agents_receive_nothing(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "partly-off",
        [
            {"name": "start", "type": "message"},
            {"name": "on", "type": "message", "sources": ["start"]},
            {"name": "off", "type": "message", "sources": ["start"], "disabled": True},
        ],
    )
    process = await execute(server, account.token, workflow["id"], {"x": 1})
    detail = await server.gql(
        "query($id: UUID!) { process(id: $id) { steps { agent { name } } } }",
        {"id": process["id"]},
        token=account.token,
    )
    assert [s["agent"]["name"] for s in detail["data"]["process"]["steps"]] == ["start", "on"]
