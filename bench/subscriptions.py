"""Subscriptions benchmark: N subscribers on one flowql server vs a bare Starlette WebSocket fan-out.

One server (uvicorn in this process, on uvloop like `flowql serve`) and N WebSocket subscribers
(1,000 and 5,000 by default, spread over child processes so the server's memory is its own) on
`processEvents(workflowId)`; the bench runs a few processes of a two-step workflow. Prints, for
each size, the p50/p99 latency from each status change's commit (the bus publish that follows it)
to its delivery at every subscriber beside the target (p99 < 100 ms at 1,000, < 500 ms at 5,000),
the server's memory per subscriber, and the ratio to a ceiling measured in the same run: a bare
Starlette WebSocket endpoint on the same bus that sends each event's id and status as JSON (no
GraphQL, no authentication, no row load). Times are CLOCK_MONOTONIC, shared by all processes.

    .venv/bin/python bench/subscriptions.py [--subscribers 1000,5000] [--processes 3]
        [--client-processes 2] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import uvloop
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from flowql.app import build_runtime, create_app
from flowql.db import upgrade
from flowql.events.bus import BusEvent, MemoryBus
from flowql.schema.subscriptions import SharedEventExecution
from flowql.services.auth import create_user, login
from flowql.services.runtime import Runtime
from flowql.services.workspaces import create_workspace
from flowql.settings import Settings
from flowql.transport import tune_gc_for_serving

WORKFLOW = [
    {"name": "first", "type": "transform", "options": {"payload": {"step": 1}}},
    {"name": "second", "type": "transform", "sources": ["first"], "options": {"payload": {"n": 2}}},
]
SUBSCRIPTION = "subscription($wf: UUID) { processEvents(workflowId: $wf) { id status } }"
PASSWORD = "bench-password"
TARGETS_MS = {1000: 100, 5000: 500}  # p99 commit->delivery, issue 11


class TimedBus(MemoryBus):
    """The memory bus, noting when each process.updated event is published (just after commit)."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, float]] = []

    async def publish(self, events: list[BusEvent]) -> None:
        now = time.monotonic()
        for event in events:
            if event.topic == "process.updated":
                self.published.append((str(event.data.get("workflow_id")), now))
        await super().publish(events)


class GcPauses:
    """Time the server process spends in the garbage collector, by generation."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.total = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        gc.callbacks.append(self.callback)

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            self.total[info["generation"]] += time.perf_counter() - self.started
            self.count[info["generation"]] += 1

    def stop(self) -> None:
        gc.callbacks.remove(self.callback)

    def summary(self) -> str:
        return ", ".join(
            f"gen{g} {self.count[g]} x = {self.total[g] * 1000:.0f} ms" for g in range(3)
        )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, f"127.0.0.1:{port}"


def bare_app(bus: MemoryBus) -> Starlette:
    """The ceiling: accept, subscribe to the bus, send each status change as it comes."""

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        async with bus.subscribe(lambda e: e.topic == "process.updated", 1000) as subscription:

            async def pump() -> None:
                async for event in subscription:
                    data = {"id": event.data["process_id"], "status": event.data["status"]}
                    await websocket.send_text(json.dumps(data))

            task = asyncio.create_task(pump())
            try:
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass
            finally:
                task.cancel()

    return Starlette(routes=[WebSocketRoute("/bare", endpoint)])


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def account(runtime: Runtime) -> str:
    email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
    async with runtime.db.transaction() as session:
        user = await create_user(session, email, PASSWORD)
        await create_workspace(session, user, "bench")
    async with runtime.db.transaction() as session:
        return (await login(session, runtime.settings, email, PASSWORD)).access_token


async def gql(client: httpx.AsyncClient, token: str, query: str, **variables: Any) -> Any:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


async def measure(
    subscribers: int,
    args: argparse.Namespace,
    bus: TimedBus,
    client: httpx.AsyncClient,
    token: str,
    workflow_id: str,
    url: str,
) -> dict[str, Any]:
    """Subscribers connect (memory measured), processes run, deliveries are timed."""
    expect = args.processes * (2 + 2 * len(WORKFLOW) + 1)
    while bus.subscriber_count:  # the previous run's subscribers are still being let go
        await asyncio.sleep(0.05)
    rss_before = rss_kb()
    tracemalloc.start()
    shares = [
        subscribers // args.client_processes + (i < subscribers % args.client_processes)
        for i in range(args.client_processes)
    ]
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            url,
            "--token",
            token,
            "--workflow",
            workflow_id,
            "--subscribers",
            str(share),
            "--expect",
            str(expect),
            stdout=subprocess.PIPE,
        )
        for share in shares
        if share
    ]
    connected = 0
    for child in children:
        assert child.stdout is not None
        ready = (await asyncio.wait_for(child.stdout.readline(), 900)).split()
        assert ready[:1] == [b"ready"], ready
        connected += int(ready[1])
    while bus.subscriber_count < connected:
        await asyncio.sleep(0.05)
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = rss_kb()
    bus.published.clear()
    profiler = cProfile.Profile() if args.profile and url.endswith("/graphql") else None
    if profiler is not None:
        profiler.enable()
    gc_pauses = GcPauses()
    shared_before = dict(SharedEventExecution.stats)
    for _ in range(args.processes):
        await gql(
            client,
            token,
            "mutation($id: UUID!) { executeWorkflow(id: $id, wait: true) { status } }",
            id=workflow_id,
        )
    published = [t for wf, t in bus.published if wf == workflow_id]
    received: list[list[float]] = []
    for child in children:
        output, _ = await asyncio.wait_for(child.communicate(), 900)
        received += json.loads(output)
    gc_pauses.stop()
    executions = {k: v - shared_before[k] for k, v in SharedEventExecution.stats.items()}
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(f"{args.profile}.{subscribers}")
    latencies = [
        got - sent for times in received for got, sent in zip(times, published, strict=False)
    ]
    return {
        "latencies": latencies,
        "delivered": sum(len(times) for times in received),
        "refused": subscribers - connected,
        "expected": expect * subscribers,
        "published": len(published),
        "rss_kb": (rss_after - rss_before) / subscribers,
        "heap_kb": traced / 1024 / subscribers,
        "gc": gc_pauses.summary(),
        "executions": executions,
    }


def report(
    subscribers: int, args: argparse.Namespace, backend: str, ours: Any, ceiling: Any
) -> None:
    changes = ours["published"] // args.processes
    target = TARGETS_MS.get(subscribers)
    print(
        f"subscriptions benchmark ({backend}, {subscribers} subscribers, "
        f"{args.processes} processes x {changes} status changes, "
        f"{args.client_processes} client processes, gc thresholds {gc.get_threshold()})"
    )
    for label, q in (("p50", 0.5), ("p99", 0.99)):
        a, b = pct(ours["latencies"], q), pct(ceiling["latencies"], q)
        verdict = ""
        if label == "p99" and target is not None:
            verdict = f"; target < {target} ms: {'met' if a < target else 'NOT met'}"
        print(
            f"  commit->delivery {label}: flowql {a:.1f} ms, ceiling {b:.1f} ms"
            f" -> ratio {a / b:.2f}x{verdict}"
        )
    print(
        f"  server memory per subscriber: flowql {ours['rss_kb']:.1f} kB RSS, "
        f"{ours['heap_kb']:.1f} kB Python heap; ceiling {ceiling['heap_kb']:.1f} kB Python heap"
        f" -> ratio {ours['heap_kb'] / max(ceiling['heap_kb'], 0.001):.2f}x"
    )
    print(
        f"  delivered: flowql {ours['delivered']} of {ours['expected']}, "
        f"ceiling {ceiling['delivered']} of {ceiling['expected']}"
        f" (connections that failed to open: flowql {ours['refused']},"
        f" ceiling {ceiling['refused']})"
    )
    print(f"  garbage collection while delivering: flowql {ours['gc']}; ceiling {ceiling['gc']}")
    runs = ours["executions"]
    print(
        f"  GraphQL executions of the events: {runs['executed']} executed, {runs['shared']} "
        f"shared (one per event and audience; flowql.schema.subscriptions.SharedEventExecution)"
    )
    if ours["latencies"]:
        print(f"  mean: flowql {statistics.fmean(ours['latencies']) * 1000:.1f} ms", flush=True)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(
            database_url=url,
            data_dir=Path(tmp),
            secret_key="bench" * 8,
            encryption_keys=Fernet.generate_key().decode(),
            demo_accounts=False,
            rate_limits_enabled=False,
            access_token_ttl=24 * 3600,  # 5,000 connections take a while to open
        )
        upgrade(settings)
        if args.gc_threshold:
            gc.set_threshold(args.gc_threshold, 50, 100)
        else:
            tune_gc_for_serving()  # as `flowql serve` does
        runtime = build_runtime(settings)
        bus = TimedBus()
        runtime.bus = bus
        token = await account(runtime)
        flowql, flowql_task, flowql_addr = await serve(create_app(settings, runtime))
        bare, bare_task, bare_addr = await serve(bare_app(bus))
        backend = "postgresql" if url.startswith("postgres") else "sqlite"
        async with httpx.AsyncClient(base_url=f"http://{flowql_addr}", timeout=120) as client:
            data = await gql(
                client,
                token,
                "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { id } }",
                input={"name": "bench", "agents": WORKFLOW},
            )
            workflow_id = data["createWorkflow"]["id"]
            for subscribers in args.subscribers:
                ours = await measure(
                    subscribers,
                    args,
                    bus,
                    client,
                    token,
                    workflow_id,
                    f"ws://{flowql_addr}/graphql",
                )
                ceiling = await measure(
                    subscribers, args, bus, client, token, workflow_id, f"ws://{bare_addr}/bare"
                )
                report(subscribers, args, backend, ours, ceiling)
        for server in (flowql, bare):
            server.should_exit = True
        await asyncio.gather(flowql_task, bare_task)
        await runtime.db.dispose()


# -- the subscribers (child processes) ----------------------------------------------------------


async def subscriber(
    url: str, token: str, workflow_id: str, expect: int, gate: asyncio.Semaphore, ready: Any
) -> list[float]:
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    graphql = url.endswith("/graphql")
    protocols = [Subprotocol("graphql-transport-ws")] if graphql else None
    try:
        async with gate:
            conn = await connect(url, subprotocols=protocols, open_timeout=600, max_queue=None)
            if graphql:
                init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
                await conn.send(json.dumps(init))
                assert json.loads(await conn.recv())["type"] == "connection_ack"
                payload = {"query": SUBSCRIPTION, "variables": {"wf": workflow_id}}
                await conn.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    except Exception:
        ready(False)  # counted as a subscriber that received nothing
        raise
    ready(True)
    times: list[float] = []
    monotonic = time.monotonic
    try:
        while len(times) < expect:
            message = await asyncio.wait_for(conn.recv(), 600)
            arrived = monotonic()
            # graphql-transport-ws: only "next" messages count (not pings); a cheap test, so
            # the client's own cost stays small beside the server's.
            if not graphql or '"next"' in message:
                times.append(arrived)
    finally:
        await conn.close()
    return times


async def clients(args: argparse.Namespace) -> None:
    gate = asyncio.Semaphore(16)  # connection storms beyond this wait for the pool
    pending = args.subscribers[0]
    connected = 0

    def ready(ok: bool) -> None:
        nonlocal pending, connected
        pending -= 1
        connected += ok
        if pending == 0:
            sys.stdout.write(f"ready {connected}\n")
            sys.stdout.flush()

    results = await asyncio.gather(
        *(
            subscriber(args.client, args.token, args.workflow, args.expect, gate, ready)
            for _ in range(args.subscribers[0])
        ),
        return_exceptions=True,
    )
    sys.stdout.write(json.dumps([r if isinstance(r, list) else [] for r in results]) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--subscribers", default="1000,5000", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=0,
        help="gc.set_threshold(N, 50, 100) in the server instead of flowql serve's (700: Python's)",
    )
    parser.add_argument(
        "--profile", default=None, help="cProfile flowql's delivery phase into PROFILE.<size>"
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--workflow", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    uvloop.run(clients(arguments) if arguments.client else main(arguments))
