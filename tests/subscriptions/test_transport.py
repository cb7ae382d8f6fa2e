"""WebSocket transport rules: authentication, expiry, connection_init timeout, slow subscribers,
and many concurrent subscribers, over real connections on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from flowql.services.auth import issuer_for
from flowql.transport import tune_gc_for_serving
from tests.conftest import Factory, LiveServer, free_port
from tests.engine.conftest import create_workflow, execute
from tests.subscriptions.conftest import (
    LEGACY_WS,
    PROTOCOLS,
    QUICK,
    TRANSPORT_WS,
    WS,
    wait_dropped,
    wait_subscribers,
    ws_url,
)

EVENTS = "subscription { processEvents { id status } }"


async def test_transport_ws_without_credentials_is_closed_4403(server: LiveServer) -> None:
    async with WS.open(server, TRANSPORT_WS, init=False) as ws:
        await ws.send({"type": "connection_init", "payload": {}})
        assert await ws.closed() == (4403, "Forbidden")


async def test_transport_ws_with_an_invalid_token_is_closed_4403(server: LiveServer) -> None:
    async with WS.open(server, TRANSPORT_WS, init=False) as ws:
        await ws.send({"type": "connection_init", "payload": {"authorization": "Bearer nope"}})
        assert await ws.closed() == (4403, "Forbidden")


async def test_legacy_ws_without_credentials_gets_connection_error(server: LiveServer) -> None:
    async with WS.open(server, LEGACY_WS, init=False) as ws:
        await ws.send({"type": "connection_init", "payload": {"authorization": "Basic abc"}})
        error = await ws.recv()
        assert error["type"] == "connection_error"
        assert error["payload"]["extensions"]["code"] == "UNAUTHORIZED"
        code, _ = await ws.closed()
        assert code == 1011


async def test_subscribe_before_connection_init_is_closed_4401(server: LiveServer) -> None:
    async with WS.open(server, TRANSPORT_WS, init=False) as ws:
        await ws.subscribe("1", EVENTS)
        assert await ws.closed() == (4401, "Unauthorized")


async def test_a_bad_authorization_header_is_refused_at_the_handshake(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            ws_url(server),
            subprotocols=[Subprotocol(TRANSPORT_WS)],
            additional_headers={"Authorization": "Bearer not-a-token"},
        ):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_upgrade_requests_header_authenticates_the_connection(
    server: LiveServer, factory: Factory, protocol: str
) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "hdr", QUICK)
    process = await execute(server, account.token, workflow["id"])
    async with WS.open(server, protocol, header_token=account.token) as ws:
        await ws.subscribe(
            "p",
            "subscription($id: UUID!) { processUpdated(id: $id) { status } }",
            {"id": process["id"]},
        )
        assert await ws.collect("p", "processUpdated") == [{"status": "COMPLETED"}]


async def test_another_workspaces_process_is_not_found(
    server: LiveServer, factory: Factory
) -> None:
    alice = await factory.account()
    bob = await factory.account()
    workflow = await create_workflow(server, alice.token, "private", QUICK)
    process = await execute(server, alice.token, workflow["id"])
    async with WS.open(server, TRANSPORT_WS, token=bob.token) as ws:
        await ws.subscribe(
            "x",
            "subscription($id: UUID!) { processUpdated(id: $id) { id } }",
            {"id": process["id"]},
        )
        events = [event async for event in ws.events("x")]
    kind, payload = events[0]
    assert kind == "next" and payload is not None
    assert payload["data"] is None
    assert payload["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert events[-1][0] == "complete"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_access_token_expiring_during_the_connection_closes_it_4401(
    server: LiveServer, factory: Factory, protocol: str
) -> None:
    account = await factory.account()
    short = issuer_for(server.runtime.settings).issue(str(account.user_id), 2)
    async with WS.open(server, protocol, token=short) as ws:
        await ws.subscribe("feed", EVENTS)
        started = time.monotonic()
        assert await ws.closed(timeout=10) == (4401, "token expired")
        assert 0.5 < time.monotonic() - started < 5


@pytest.mark.settings(ws_revalidate_interval=0.5)
async def test_an_api_key_revoked_during_the_connection_closes_it_4401(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    key = await factory.api_key(account)
    async with WS.open(server, TRANSPORT_WS, token=key) as ws:
        await ws.subscribe("feed", EVENTS)
        keys = await server.gql("{ apiKeys { nodes { id } } }", token=account.token)
        (only,) = keys["data"]["apiKeys"]["nodes"]
        await server.gql(
            "mutation($id: UUID!) { revokeApiKey(id: $id) { id } }",
            {"id": only["id"]},
            token=account.token,
        )
        assert await ws.closed(timeout=10) == (4401, "API key revoked")


@pytest.mark.settings(ws_connection_init_timeout=0.5)
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_connection_without_connection_init_is_closed_4408(
    server: LiveServer, protocol: str
) -> None:
    async with WS.open(server, protocol, init=False) as ws:
        code, reason = await ws.closed(timeout=5)
    assert (code, reason) == (4408, "Connection initialisation timeout")


@pytest.mark.settings(subscription_queue_size=4)
async def test_a_slow_subscriber_is_dropped_without_slowing_a_fast_one(
    server: LiveServer, factory: Factory
) -> None:
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
    # The slow reader asks for the 64 kB input forty times per update (2.5 MB a message) and
    # reads nothing: the server's socket buffers fill, its sends block, its backlog stays above
    # the bound (4) without progress and it is dropped. The run's events come in one burst
    # (one commit) bigger than the bound: the fast reader drains it and is kept.
    aliases = " ".join(f"a{i}: input" for i in range(40))
    heavy = (
        f"subscription($wf: UUID) {{ processEvents(workflowId: $wf) {{ id status {aliases} }} }}"
    )
    light = "subscription($wf: UUID) { processEvents(workflowId: $wf) { id status } }"
    async with (
        WS.open(
            server,
            TRANSPORT_WS,
            token=account.token,
            max_queue=1,
            max_size=None,
            compression=None,  # so that 2.5 MB are 2.5 MB on the wire
        ) as slow,
        WS.open(server, LEGACY_WS, token=account.token) as fast,
    ):
        await slow.subscribe("slow", heavy, {"wf": workflow["id"]})
        await fast.subscribe("fast", light, {"wf": workflow["id"]})
        await wait_subscribers(server, 2)
        slow.conn.transport.pause_reading()  # and stop reading, for real
        started = time.monotonic()
        process = await execute(server, account.token, workflow["id"], input=big, wait=False)
        seen = await fast.collect(
            "fast",
            "processEvents",
            until=lambda p: p["id"] == process["id"] and p["status"] == "COMPLETED",
        )
        fast_took = time.monotonic() - started
        statuses = [p["status"] for p in seen]
        assert statuses[0] == "PENDING" and statuses[-1] == "COMPLETED"
        assert len(statuses) == 2 + 2 * len(steps) + 1  # every change, none lost
        assert fast_took < 15
        await wait_dropped(server, 1)  # the slow one, while it still reads nothing
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
    assert messages[-1]["type"] == "complete"


async def test_a_hundred_subscribers_all_receive_the_process_status_changes(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "fanout", QUICK)
    count = 100
    query = "subscription($wf: UUID) { processEvents(workflowId: $wf) { id status } }"
    clients: list[WS] = []
    async with asyncio.TaskGroup() as group:
        openers = [WS.open(server, PROTOCOLS[i % 2], token=account.token) for i in range(count)]
        entered = [group.create_task(opener.__aenter__()) for opener in openers]
    clients = [task.result() for task in entered]
    try:
        for i, ws in enumerate(clients):
            await ws.subscribe(f"s{i}", query, {"wf": workflow["id"]})
        await wait_subscribers(server, count)
        process = await execute(server, account.token, workflow["id"])

        async def statuses(i: int, ws: WS) -> list[str]:
            seen = await ws.collect(
                f"s{i}", "processEvents", until=lambda p: p["status"] == "COMPLETED"
            )
            assert {p["id"] for p in seen} == {process["id"]}
            return [p["status"] for p in seen]

        results = await asyncio.gather(*(statuses(i, ws) for i, ws in enumerate(clients)))
    finally:
        for opener in openers:
            await opener.__aexit__(None, None, None)
    expected = ["PENDING", "RUNNING", *["RUNNING"] * 4, "COMPLETED"]
    assert results == [expected] * count


@pytest.mark.settings(ws_revalidate_interval=0.3)
async def test_connections_sharing_a_credential_share_its_periodic_recheck(
    server: LiveServer, factory: Factory
) -> None:
    """Twenty subscribers of one credential: each re-check tick reads the credential once, not
    twenty times (a dashboard's thousands of subscribers would otherwise query it thousands of
    times a minute)."""
    account = await factory.account()
    connections = 20
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(connections):
            ws = await stack.enter_async_context(WS.open(server, TRANSPORT_WS, token=account.token))
            await ws.subscribe("feed", EVENTS)
        await wait_subscribers(server, connections)
        log = server.runtime.db.statement_log
        log.start()
        await asyncio.sleep(1.0)  # about three ticks of 0.3 s: the thing measured is time
        # The user's row is read by each credential check (the scheduler's reads are not).
        checks = [s for s in log.stop() if "FROM users" in s]
    assert checks, "no re-check ran"
    # Shared: one read per tick (four at most in the window), whatever the number of connections.
    assert len(checks) <= 4, len(checks)


def test_a_serving_process_leaves_a_fan_outs_short_lived_objects_to_die_young() -> None:
    """With `flowql serve`'s collector thresholds, the short-lived objects of thousands of
    deliveries in flight do not set off collections (each of which promotes the survivors
    towards the full collections that walk every connection: docs/performance.md)."""
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    before = gc.get_threshold()
    gc.callbacks.append(count)
    try:
        tune_gc_for_serving()
        gc.collect()
        collections.clear()
        in_flight = [{"id": i, "status": "RUNNING", "payload": [i]} for i in range(20_000)]
        assert len(in_flight) == 20_000
        del in_flight
        assert collections == []
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*before)


def test_flowql_serve_declines_permessage_deflate(tmp_path: Path) -> None:
    """`flowql serve` answers a client that offers permessage-deflate (as browsers do) without
    it: a feed's small frames are not compressed per connection (FLOWQL_WS_PER_MESSAGE_DEFLATE
    turns it back on)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWQL_")}
    env.update(FLOWQL_DATA_DIR=str(tmp_path / "data"), FLOWQL_DEMO_ACCOUNTS="false")
    command = [sys.executable, "-m", "flowql.cli", "serve", "--no-worker"]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "flowql serve exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "flowql serve did not start"
            time.sleep(0.1)

        async def negotiated() -> list[str]:
            async with connect(
                f"ws://127.0.0.1:{port}/graphql",
                subprotocols=[Subprotocol(TRANSPORT_WS)],
                compression="deflate",  # the client offers it
            ) as conn:
                return [extension.name for extension in conn.protocol.extensions]

        assert asyncio.run(negotiated()) == []
    finally:
        proc.terminate()
        proc.wait(30)
