"""The feeds over real WebSockets (both protocols) and multipart/SSE HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute, process_detail, wait_status
from tests.subscriptions.conftest import PROTOCOLS, QUICK, TRANSPORT_WS, WS, wait_subscribers

RANK = {"PENDING": 0, "RUNNING": 1, "WAITING": 1, "COMPLETED": 2, "FAILED": 2, "CANCELLED": 2}

PROCESS_UPDATED = """subscription($id: UUID!) {
  processUpdated(id: $id) { id status workflowId steps { status } }
}"""
PROCESS_EVENTS = """subscription($wf: UUID, $statuses: [ProcessStatus!]) {
  processEvents(workflowId: $wf, statuses: $statuses) { id status workspaceId workflowId }
}"""
PROCESS_LOGS = """subscription($id: UUID!, $fromStart: Boolean!) {
  processLogs(id: $id, fromStart: $fromStart) { id number message }
}"""
MESSAGE_CREATED = """subscription($wf: UUID) {
  messageCreated(workflowId: $wf) { id workflowId payload agent { name } }
}"""

SLOW_CHAIN = [
    {"name": "wait", "type": "delay", "options": {"seconds": 1}},
    *[
        {
            "name": f"t{i}",
            "type": "transform",
            "sources": ["wait" if i == 1 else f"t{i - 1}"],
            "options": {"payload": {"i": i}},
        }
        for i in range(1, 5)
    ],
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_process_updated_arrives_in_order_and_ends_with_completed(
    server: LiveServer, factory: Factory, protocol: str
) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "slow", SLOW_CHAIN)
    process = await execute(server, account.token, workflow["id"], wait=False)
    async with WS.open(server, protocol, token=account.token) as ws:
        await ws.subscribe("1", PROCESS_UPDATED, {"id": process["id"]})
        updates = await ws.collect("1", "processUpdated")
    statuses = [u["status"] for u in updates]
    assert statuses[-1] == "COMPLETED"
    assert "COMPLETED" not in statuses[:-1]
    assert [RANK[s] for s in statuses] == sorted(RANK[s] for s in statuses)
    assert len(updates) >= 6  # the current state, then every step change
    assert all(u["id"] == process["id"] and u["workflowId"] == workflow["id"] for u in updates)
    assert [s["status"] for s in updates[-1]["steps"]] == ["COMPLETED"] * 5


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_process_updated_of_an_ended_process_sends_its_state_and_completes(
    server: LiveServer, factory: Factory, protocol: str
) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "quick", QUICK)
    process = await execute(server, account.token, workflow["id"])
    async with WS.open(server, protocol, token=account.token) as ws:
        await ws.subscribe("a", PROCESS_UPDATED, {"id": process["id"]})
        updates = await ws.collect("a", "processUpdated")
    assert [u["status"] for u in updates] == ["COMPLETED"]


async def test_process_logs_from_start_during_a_run_have_no_gap_and_no_duplicate(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "logs", SLOW_CHAIN)
    process = await execute(server, account.token, workflow["id"], wait=False)
    await wait_status(server, account.token, process["id"], {"RUNNING", "WAITING"})

    async def follow(delay: float, protocol: str) -> list[dict[str, Any]]:
        await asyncio.sleep(delay)
        async with WS.open(server, protocol, token=account.token) as ws:
            await ws.subscribe("logs", PROCESS_LOGS, {"id": process["id"], "fromStart": True})
            return await ws.collect("logs", "processLogs")

    # Several subscribers joining at different moments of the run: each seam is elsewhere.
    followers = await asyncio.gather(*(follow(0.15 * i, PROTOCOLS[i % 2]) for i in range(8)))
    detail = await process_detail(server, account.token, process["id"])
    assert detail["status"] == "COMPLETED"
    body = await server.gql(
        "query($id: UUID!) { process(id: $id) { logs { id number message } } }",
        {"id": process["id"]},
        token=account.token,
    )
    written = body["data"]["process"]["logs"]
    assert written[-1]["message"] == "process completed"
    for lines in followers:
        assert lines == written


async def test_process_logs_without_from_start_sends_only_new_lines(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "live", SLOW_CHAIN)
    process = await execute(server, account.token, workflow["id"], wait=False)
    await wait_status(server, account.token, process["id"], {"RUNNING", "WAITING"})
    async with WS.open(server, TRANSPORT_WS, token=account.token) as ws:
        await ws.subscribe("live", PROCESS_LOGS, {"id": process["id"], "fromStart": False})
        lines = await ws.collect("live", "processLogs")
    detail = await process_detail(server, account.token, process["id"])
    messages = [line["message"] for line in detail["logs"]]
    assert lines and lines[-1]["message"] == "process completed"
    assert "process started" not in [line["message"] for line in lines]
    assert [line["message"] for line in lines] == messages[-len(lines) :]


async def test_a_second_workspace_receives_nothing_from_the_first(
    server: LiveServer, factory: Factory
) -> None:
    alice = await factory.account()
    bob = await factory.account()
    alices = await create_workflow(server, alice.token, "alice's", QUICK)
    bobs = await create_workflow(server, bob.token, "bob's", QUICK)
    async with (
        WS.open(server, TRANSPORT_WS, token=bob.token) as bob_ws,
        WS.open(server, TRANSPORT_WS, token=alice.token) as alice_ws,
    ):
        await bob_ws.subscribe("feed", PROCESS_EVENTS)
        await alice_ws.subscribe("feed", PROCESS_EVENTS)
        await wait_subscribers(server, 2)
        alice_process = await execute(server, alice.token, alices["id"])
        bob_process = await execute(server, bob.token, bobs["id"])
        seen_by_bob = await bob_ws.collect(
            "feed",
            "processEvents",
            until=lambda p: p["id"] == bob_process["id"] and p["status"] == "COMPLETED",
        )
        seen_by_alice = await alice_ws.collect(
            "feed",
            "processEvents",
            until=lambda p: p["id"] == alice_process["id"] and p["status"] == "COMPLETED",
        )
    assert {p["id"] for p in seen_by_bob} == {bob_process["id"]}
    assert {p["workspaceId"] for p in seen_by_bob} == {str(bob.workspace_id)}
    assert {p["id"] for p in seen_by_alice} == {alice_process["id"]}


async def test_process_events_are_filtered_server_side_by_workflow_and_status(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    watched = await create_workflow(server, account.token, "watched", QUICK)
    other = await create_workflow(server, account.token, "other", QUICK)
    async with WS.open(server, TRANSPORT_WS, token=account.token) as ws:
        await ws.subscribe("done", PROCESS_EVENTS, {"wf": watched["id"], "statuses": ["COMPLETED"]})
        await wait_subscribers(server, 1)
        await execute(server, account.token, other["id"])
        first = await execute(server, account.token, watched["id"])
        second = await execute(server, account.token, watched["id"])
        seen = await ws.collect("done", "processEvents", until=lambda p: p["id"] == second["id"])
    assert [(p["id"], p["status"]) for p in seen] == [
        (first["id"], "COMPLETED"),
        (second["id"], "COMPLETED"),
    ]


async def test_message_created_delivers_the_workflows_messages(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "talk", QUICK)
    async with WS.open(server, TRANSPORT_WS, token=account.token) as ws:
        await ws.subscribe("m", MESSAGE_CREATED, {"wf": workflow["id"]})
        await wait_subscribers(server, 1)
        await execute(server, account.token, workflow["id"])
        messages = await ws.collect(
            "m", "messageCreated", until=lambda m: m["payload"].get("n") == 2
        )
    assert [(m["agent"]["name"], m["payload"]) for m in messages] == [
        ("first", {"step": 1}),
        ("second", {"n": 2}),
    ]


def multipart_payloads(body: str) -> list[dict[str, Any]]:
    payloads = []
    for part in body.split("--graphql"):
        _, _, content = part.partition("\r\n\r\n")
        if content.strip():
            message = json.loads(content.strip())
            if "payload" in message:
                payloads.append(message["payload"])
    return payloads


async def test_subscription_over_multipart_http(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "http", SLOW_CHAIN)
    process = await execute(server, account.token, workflow["id"], wait=False)
    headers = {
        "Authorization": f"Bearer {account.token}",
        "Accept": 'multipart/mixed;subscriptionSpec="1.0", application/json',
    }
    query = {"query": PROCESS_UPDATED, "variables": {"id": process["id"]}}
    async with server.client.stream("POST", "/graphql", json=query, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("multipart/mixed")
        body = (await response.aread()).decode()
    assert body.rstrip().endswith("--graphql--")
    statuses = [p["data"]["processUpdated"]["status"] for p in multipart_payloads(body)]
    assert statuses[-1] == "COMPLETED" and len(statuses) >= 6


async def test_subscription_over_server_sent_events(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "sse", QUICK)
    process = await execute(server, account.token, workflow["id"])
    headers = {"Authorization": f"Bearer {account.token}", "Accept": "text/event-stream"}
    query = {"query": PROCESS_UPDATED, "variables": {"id": process["id"]}}
    async with server.client.stream("POST", "/graphql", json=query, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = (await response.aread()).decode()
    events = [block for block in body.split("\r\n\r\n") if block.startswith("event:")]
    assert events[-1].startswith("event: complete")
    data = json.loads(events[0].split("data: ", 1)[1])
    assert data["data"]["processUpdated"]["status"] == "COMPLETED"


async def test_multipart_subscription_without_credentials_is_refused(
    server: LiveServer, factory: Factory
) -> None:
    headers = {"Accept": 'multipart/mixed;subscriptionSpec="1.0", application/json'}
    query = {"query": PROCESS_EVENTS}
    async with server.client.stream("POST", "/graphql", json=query, headers=headers) as response:
        body = (await response.aread()).decode()
    (payload,) = multipart_payloads(body)
    assert payload["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"
