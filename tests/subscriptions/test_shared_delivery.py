"""Subscribers of one event share one GraphQL execution per (event, audience, document,
variables), and sharing never lets an event or a result cross to another audience. Feeds that
follow the bus (processEvents, messageCreated) are served by one feed group per (document,
variables, audience): one execution and one encoding per event, one frame per subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from flowql.auth.principal import Principal, PrincipalKind
from flowql.resolvers.subscriptions import audience
from flowql.schema.subscriptions import FeedGroup, SharedEventExecution
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute
from tests.subscriptions.conftest import (
    LEGACY_WS,
    PROTOCOLS,
    QUICK,
    TRANSPORT_WS,
    WS,
    wait_dropped,
    wait_subscribers,
)

FEED = "subscription { processEvents { id status workspaceId workflowId } }"
ONLY_IDS = "subscription { processEvents { id } }"


async def _until_completed(ws: WS, process_id: str) -> list[dict[str, Any]]:
    return await ws.collect(
        "feed",
        "processEvents",
        until=lambda item: item["id"] == process_id and item.get("status") == "COMPLETED",
    )


async def test_two_workspaces_on_the_same_document_share_within_and_never_across(
    server: LiveServer, factory: Factory
) -> None:
    alice = await factory.account()
    bob = await factory.account()
    alices = await create_workflow(server, alice.token, "alice's", QUICK)
    bobs = await create_workflow(server, bob.token, "bob's", QUICK)
    async with contextlib.AsyncExitStack() as stack:
        alice_wss = [
            await stack.enter_async_context(WS.open(server, TRANSPORT_WS, token=alice.token))
            for _ in range(3)
        ]
        bob_wss = [
            await stack.enter_async_context(WS.open(server, TRANSPORT_WS, token=bob.token))
            for _ in range(2)
        ]
        for ws in [*alice_wss, *bob_wss]:
            await ws.subscribe("feed", FEED)  # the same document, the same (no) variables
        await wait_subscribers(server, 5)
        before = dict(SharedEventExecution.stats)
        fanned = dict(FeedGroup.stats)
        alice_process = await execute(server, alice.token, alices["id"])
        bob_process = await execute(server, bob.token, bobs["id"])
        seen_by_alice = [await _until_completed(ws, alice_process["id"]) for ws in alice_wss]
        seen_by_bob = [await _until_completed(ws, bob_process["id"]) for ws in bob_wss]

    # Each tenant receives its own process's changes only, complete and identical across its
    # subscribers; nothing of the other tenant.
    for items in seen_by_alice:
        assert items == seen_by_alice[0]
        assert {i["workspaceId"] for i in items} == {str(alice.workspace_id)}
        assert {i["id"] for i in items} == {alice_process["id"]}
    for items in seen_by_bob:
        assert items == seen_by_bob[0]
        assert {i["workspaceId"] for i in items} == {str(bob.workspace_id)}
        assert {i["id"] for i in items} == {bob_process["id"]}
    alice_events, bob_events = len(seen_by_alice[0]), len(seen_by_bob[0])
    assert alice_events >= 3 and bob_events >= 3

    # One execution and one encoding per event and tenant, one frame per subscriber: the
    # tenant's subscribers form one group each (none executes on its own).
    executed = SharedEventExecution.stats["executed"] - before["executed"]
    assert executed == alice_events + bob_events
    groups, encoded, frames = (
        FeedGroup.stats[k] - fanned[k] for k in ("groups", "encoded", "frames")
    )
    assert groups == 0  # both groups were formed when they subscribed, before `fanned`
    assert encoded == alice_events + bob_events
    assert frames == 3 * alice_events + 2 * bob_events


async def test_another_member_or_another_document_executes_on_its_own(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id)
    workflow = await create_workflow(server, owner.token, "shared workspace", QUICK)
    async with (
        WS.open(server, TRANSPORT_WS, token=owner.token) as full,
        WS.open(server, TRANSPORT_WS, token=owner.token) as ids,
        WS.open(server, TRANSPORT_WS, token=member.token) as other,
    ):
        await full.subscribe("feed", FEED)
        await ids.subscribe("feed", ONLY_IDS)
        await other.subscribe("feed", FEED)
        await wait_subscribers(server, 3)
        before = dict(SharedEventExecution.stats)
        fanned = dict(FeedGroup.stats)
        process = await execute(server, owner.token, workflow["id"])
        seen_full = await _until_completed(full, process["id"])
        seen_other = await _until_completed(other, process["id"])
        seen_ids = [await _next(ids) for _ in seen_full]

    assert seen_other == seen_full  # the same event, by its own execution
    assert all(item == {"id": process["id"]} for item in seen_ids)  # its own selection
    executed = SharedEventExecution.stats["executed"] - before["executed"]
    shared = SharedEventExecution.stats["shared"] - before["shared"]
    assert executed == 3 * len(seen_full)  # three audiences x documents: nothing shared
    assert shared == 0
    encoded, frames = (FeedGroup.stats[k] - fanned[k] for k in ("encoded", "frames"))
    assert encoded == frames == 3 * len(seen_full)  # three groups of one


@pytest.mark.settings(subscription_queue_size=4)
async def test_a_slow_subscriber_in_a_sharing_group_is_dropped_alone(
    server: LiveServer, factory: Factory
) -> None:
    """Two subscribers of one account on the same document share every execution; the one that
    stops reading is dropped (4008) by its own queue, the other receives every change."""
    account = await factory.account()
    steps = [
        {
            "name": f"s{i}",
            "type": "transform",
            **({"sources": [f"s{i - 1}"]} if i else {}),
            "options": {"payload": {"i": i}},
        }
        for i in range(12)
    ]
    workflow = await create_workflow(server, account.token, "many steps", steps)
    big = {"blob": "x" * 64_000}
    aliases = " ".join(f"a{i}: input" for i in range(40))  # 2.5 MB a message
    heavy = (
        f"subscription($wf: UUID) {{ processEvents(workflowId: $wf) {{ id status {aliases} }} }}"
    )
    async with (
        WS.open(
            server, TRANSPORT_WS, token=account.token, max_queue=1, max_size=None, compression=None
        ) as slow,
        WS.open(server, TRANSPORT_WS, token=account.token, max_size=None) as fast,
    ):
        await slow.subscribe("feed", heavy, {"wf": workflow["id"]})
        await fast.subscribe("feed", heavy, {"wf": workflow["id"]})
        await wait_subscribers(server, 2)
        slow.conn.transport.pause_reading()
        fanned = dict(FeedGroup.stats)
        process = await execute(server, account.token, workflow["id"], input=big, wait=False)
        seen = await fast.collect(
            "feed",
            "processEvents",
            until=lambda p: p["id"] == process["id"] and p["status"] == "COMPLETED",
            timeout=30,
        )
        statuses = [p["status"] for p in seen]
        assert statuses[0] == "PENDING" and statuses[-1] == "COMPLETED"
        assert len(statuses) == 2 + 2 * len(steps) + 1  # every change, none lost
        await wait_dropped(server, 1)
        encoded = FeedGroup.stats["encoded"] - fanned["encoded"]
        assert encoded == len(statuses)  # they did share: one encoding per event for both
        slow.conn.transport.resume_reading()
        messages = []
        code, reason = None, None
        deadline = time.monotonic() + 20
        while code is None and time.monotonic() < deadline:
            try:
                messages.append(json.loads(await asyncio.wait_for(slow.conn.recv(), 10)))
            except ConnectionClosed:
                code, reason = slow.conn.close_code, slow.conn.close_reason
    assert (code, reason) == (4008, "subscriber too slow: dropped")
    nexts = [m for m in messages if m["type"] == "next"]
    assert len(nexts) < len(statuses)
    assert nexts[-1]["payload"]["errors"][0]["extensions"]["code"] == "SUBSCRIBER_DROPPED"


async def _next(ws: WS) -> dict[str, Any]:
    async for kind, payload in ws.events("feed"):
        assert kind == "next" and payload is not None and not payload.get("errors"), payload
        item: dict[str, Any] = payload["data"]["processEvents"]
        return item
    raise AssertionError("the feed ended")


def test_the_audience_tells_apart_everything_that_decides_visibility() -> None:
    ws_a, ws_b, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    base = Principal(PrincipalKind.USER, {ws_a: frozenset({"process:read"})}, user_id=user)
    same = Principal(PrincipalKind.USER, {ws_a: frozenset({"process:read"})}, user_id=user)
    assert audience(base) == audience(same)
    others = [
        Principal(PrincipalKind.USER, {ws_b: frozenset({"process:read"})}, user_id=user),
        Principal(PrincipalKind.USER, {ws_a: frozenset({"process:read", "x"})}, user_id=user),
        Principal(PrincipalKind.USER, {ws_a: frozenset({"process:read"})}, user_id=uuid.uuid4()),
        Principal(
            PrincipalKind.API_KEY, {ws_a: frozenset({"process:read"})}, api_key_id=uuid.uuid4()
        ),
        Principal(
            PrincipalKind.USER,
            {ws_a: frozenset({"process:read"})},
            user_id=user,
            roles={ws_a: "viewer"},
        ),
        Principal(
            PrincipalKind.API_KEY,
            {ws_a: frozenset({"process:read"})},
            process_scopes=({"scenario": "s", "actors": ["a"], "actions": []},),
        ),
    ]
    keys = {audience(p) for p in others}
    assert len(keys) == len(others) and audience(base) not in keys


async def _frames(ws: WS, count: int) -> list[str]:
    """The next `count` raw text frames of the feed (keep-alives and pongs skipped)."""
    frames: list[str] = []
    while len(frames) < count:
        frame = await asyncio.wait_for(ws.conn.recv(), 20)
        assert isinstance(frame, str)
        if json.loads(frame)["type"] in ("next", "data"):
            frames.append(frame)
    return frames


async def test_a_groups_frames_are_one_encoding_with_each_subscribers_id_spliced_in(
    server: LiveServer, factory: Factory
) -> None:
    """Subscribers of both protocols on one document and account form one group: every event is
    executed once and encoded once, and each subscriber's frame is that payload behind its own
    operation id, in its protocol's message ("next" / "data"), byte for byte."""
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "spliced", QUICK)
    count = 6
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(WS.open(server, PROTOCOLS[i % 2], token=account.token))
            for i in range(count)
        ]
        for i, ws in enumerate(clients):
            await ws.subscribe(f'op "{i}"', FEED)  # ids that need JSON escaping
        await wait_subscribers(server, count)
        before = dict(SharedEventExecution.stats)
        fanned = dict(FeedGroup.stats)
        await execute(server, account.token, workflow["id"])
        events = 2 + 2 * len(QUICK) + 1
        frames = [await _frames(ws, events) for ws in clients]

    executed = SharedEventExecution.stats["executed"] - before["executed"]
    encoded, sent = (FeedGroup.stats[k] - fanned[k] for k in ("encoded", "frames"))
    assert executed == encoded == events  # once per event, whatever the number of subscribers
    assert sent == count * events
    for i, (ws, own) in enumerate(zip(clients, frames, strict=True)):
        op_id = json.dumps(f'op "{i}"')
        head = (
            '{"id":' + op_id + ',"type":"next","payload":'
            if ws.protocol == TRANSPORT_WS
            else '{"type":"data","id":' + op_id + ',"payload":'
        )
        for frame, first in zip(own, frames[0], strict=True):
            assert frame.startswith(head) and frame.endswith("}")
            # The payload is the same bytes for everyone; only the head differs.
            assert frame[len(head) :] == first[first.index('"payload":') + 10 :]
    payloads = [json.loads(f)["payload"]["data"]["processEvents"]["status"] for f in frames[0]]
    assert payloads == ["PENDING", "RUNNING", *["RUNNING"] * 4, "COMPLETED"]


async def test_a_late_subscriber_joins_a_running_group_from_its_next_event(
    server: LiveServer, factory: Factory
) -> None:
    """A subscriber joining a group that is already delivering gets the events after it joined,
    none before, and leaving the group does not end it for the others."""
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "late", QUICK)
    async with (
        WS.open(server, TRANSPORT_WS, token=account.token) as early,
        WS.open(server, LEGACY_WS, token=account.token) as late,
        WS.open(server, TRANSPORT_WS, token=account.token) as leaver,
    ):
        await early.subscribe("feed", FEED)
        await leaver.subscribe("feed", FEED)
        await wait_subscribers(server, 2)
        first = await execute(server, account.token, workflow["id"])
        seen_early = await _until_completed(early, first["id"])
        await leaver.send({"id": "feed", "type": "complete"})  # leaves; the group goes on
        bus: Any = server.runtime.bus
        while bus.subscriber_count != 1:
            await asyncio.sleep(0.02)
        groups = FeedGroup.stats["groups"]
        await late.subscribe("feed", FEED)
        await wait_subscribers(server, 2)
        assert FeedGroup.stats["groups"] == groups  # joined the running group
        second = await execute(server, account.token, workflow["id"])
        seen_late = await _until_completed(late, second["id"])
        seen_early_again = await _until_completed(early, second["id"])
    assert {p["id"] for p in seen_early} == {first["id"]}
    assert {p["id"] for p in seen_late} == {second["id"]}  # nothing of the first run
    assert seen_late == seen_early_again


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_documents_a_group_cannot_serve_run_as_operations_of_their_own(
    server: LiveServer, factory: Factory, protocol: str
) -> None:
    """A subscribe message without a query is answered as Strawberry answers it; a grouped field
    the schema refuses gets the protocol's error message, and its group ends."""
    account = await factory.account()
    groups = FeedGroup.stats["groups"]
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    async with WS.open(server, protocol, token=account.token) as ws:
        await ws.send({"id": "none", "type": kind, "payload": {"query": None}})
        message = await ws.recv()
        assert (message["id"], message["type"]) == ("none", "error"), message
        await ws.subscribe("bad", "subscription { processEvents { id nope } }")
        message = await ws.recv()
        assert (message["id"], message["type"]) == ("bad", "error"), message
        error = message["payload"][0] if protocol == TRANSPORT_WS else message["payload"]
        assert "nope" in error["message"]
    assert FeedGroup.stats["groups"] == groups + 1  # the refused document's group, ended
