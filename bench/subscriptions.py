"""Subscriptions benchmark: N subscribers on one flowql server vs a bare Starlette WebSocket fan-out.

One server (uvicorn in this process, on uvloop like `flowql serve`) and N WebSocket subscribers
(1,000 and 5,000 by default, spread over child processes so the server's memory is its own) on
`processEvents(workflowId)`; the bench runs a few processes of a two-step workflow. Prints, for
each size, the p50/p99 latency from each status change's commit (the bus publish that follows it)
to its delivery at every subscriber beside the target (p99 < 100 ms at 1,000, < 500 ms at 5,000),
the server's memory per subscriber, and the ratio to a ceiling measured in the same run: a bare
Starlette WebSocket endpoint on the same bus that sends each event's id and status as JSON (no
GraphQL, no authentication, no row load). Times are CLOCK_MONOTONIC, shared by all processes.

Both servers take the same WebSocket settings: permessage-deflate as `flowql serve` of the flowql
on PYTHONPATH decides (FLOWQL_WS_PER_MESSAGE_DEFLATE, off by default; a flowql without that
setting: on, uvicorn's default), or as `--deflate on|off` says. The subscribers are bare asyncio
protocols (handshake, then frames parsed just enough to timestamp each delivery; they offer
permessage-deflate as browsers do), so the client processes cost little beside the server on
the same cores; the bench prints the CPU time of the server process and of the client processes
while delivering, to tell which bounds the run. The same client measures flowql and the ceiling.

    .venv/bin/python bench/subscriptions.py [--subscribers 1000,5000] [--processes 3]
        [--client-processes 2] [--deflate on|off] [--database-url URL] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import gc
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
import zlib
from pathlib import Path
from typing import Any, cast

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

try:
    from flowql.schema.subscriptions import FeedGroup

    FANNED: dict[str, int] = FeedGroup.stats
except ImportError:  # a flowql before feed groups (benched as "before")
    FANNED = {}
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


async def serve(app: Any, deflate: bool) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=deflate,
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
    fanned_before = dict(FANNED)
    cpu_before = time.process_time()
    for _ in range(args.processes):
        await gql(
            client,
            token,
            "mutation($id: UUID!) { executeWorkflow(id: $id, wait: true) { status } }",
            id=workflow_id,
        )
    published = [t for wf, t in bus.published if wf == workflow_id]
    received: list[list[float]] = []
    client_cpu = 0.0
    for child in children:
        output, _ = await asyncio.wait_for(child.communicate(), 900)
        outcome = json.loads(output)
        received += outcome["times"]
        client_cpu += outcome["cpu"]
    server_cpu = time.process_time() - cpu_before
    gc_pauses.stop()
    executions = {k: v - shared_before[k] for k, v in SharedEventExecution.stats.items()}
    fanned = {k: v - fanned_before[k] for k, v in FANNED.items()}
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
        "fanned": fanned,
        "cpu": (server_cpu, client_cpu),
    }


def report(
    subscribers: int, args: argparse.Namespace, backend: str, ours: Any, ceiling: Any
) -> None:
    changes = ours["published"] // args.processes
    target = TARGETS_MS.get(subscribers)
    print(
        f"subscriptions benchmark ({backend}, {subscribers} subscribers, "
        f"{args.processes} processes x {changes} status changes, "
        f"{args.client_processes} client processes, gc thresholds {gc.get_threshold()}, "
        f"permessage-deflate {'accepted' if args.deflate else 'declined'} by both servers)"
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
    fanned = ours["fanned"]
    if fanned:
        print(
            f"  feed groups: {fanned['encoded']} payloads encoded, {fanned['frames']} frames "
            "written (flowql.schema.subscriptions.FeedGroup)"
        )
    for name, run in (("flowql", ours), ("ceiling", ceiling)):
        server_cpu, client_cpu = run["cpu"]
        print(
            f"  CPU while delivering ({name}): server process {server_cpu:.2f} s "
            f"(engine included), client processes {client_cpu:.2f} s"
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
        if args.deflate is None:  # as `flowql serve` of this flowql (before the setting: on)
            args.deflate = getattr(settings, "ws_per_message_deflate", True)
        flowql, flowql_task, flowql_addr = await serve(create_app(settings, runtime), args.deflate)
        bare, bare_task, bare_addr = await serve(bare_app(bus), args.deflate)
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


class Subscriber(asyncio.Protocol):
    """One subscriber on a bare asyncio protocol: the opening handshake, then frames parsed just
    enough to timestamp each delivery as its bytes arrive (no task, future or JSON per message),
    so that the two client processes cost little beside the server they share the cores with.
    Offers permessage-deflate as browsers do (inflating what the server compressed); answers
    the server's pings."""

    def __init__(self, path: str, host: str, graphql: bool, init: bytes, expect: int) -> None:
        self.path, self.host, self.graphql, self.init, self.expect = (
            path,
            host,
            graphql,
            init,
            expect,
        )
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.times: list[float] = []
        self.inflate: Any = None
        self.acked = not graphql
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.compressed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not asyncio's class
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        ]
        if self.graphql:
            lines.append("Sec-WebSocket-Protocol: graphql-transport-ws")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send(self, text: bytes, opcode: int = 1) -> None:
        """A client frame: masked, as the protocol requires; never compressed."""
        assert self.transport is not None
        mask = os.urandom(4)
        length = len(text)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
        self.transport.write(header + mask + masked)

    def data_received(self, data: bytes) -> None:
        arrived = time.monotonic()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).decode("latin-1")
            del buffer[: end + 4]
            if not head.startswith("HTTP/1.1 101"):
                self.fail(ConnectionError(head.split("\r\n", 1)[0]))
                return
            self.upgraded = True
            if "permessage-deflate" in head.lower():
                self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            if self.graphql:
                self.send(self.init)
            elif not self.opened.done():
                self.opened.set_result(None)
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, offset = struct.unpack_from("!H", buffer, 2)[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            self.frame(first, payload, arrived)

    def frame(self, first: int, payload: bytes, arrived: float) -> None:
        opcode = first & 0x0F
        if opcode == 9:  # ping
            self.send(payload, 10)
            return
        if opcode == 8:  # close
            self.fail(ConnectionError(f"closed by the server: {payload[2:]!r}"))
            return
        if opcode >= 8:
            return
        if not self.fragments:  # RSV1 on a message's first frame: compressed
            self.compressed = bool(first & 0x40)
        self.fragments.append(payload)
        if not first & 0x80:  # not the last fragment
            return
        message = b"".join(self.fragments)
        self.fragments = []
        if self.compressed:  # inflate with the connection's context
            message = self.inflate.decompress(message + b"\x00\x00\xff\xff")
        if not self.acked:
            if b"connection_ack" in message:
                self.acked = True
                if not self.opened.done():
                    self.opened.set_result(None)
            return
        # graphql-transport-ws: only "next" messages count; the ceiling sends data only.
        if not self.graphql or b'"next"' in message:
            self.times.append(arrived)
            if len(self.times) >= self.expect and not self.done.done():
                self.done.set_result(None)

    def fail(self, error: Exception) -> None:
        for future in (self.opened, self.done):
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or ConnectionError("connection lost"))


async def subscriber(
    url: str, token: str, workflow_id: str, expect: int, gate: asyncio.Semaphore, ready: Any
) -> list[float]:
    address, _, path = url.removeprefix("ws://").partition("/")
    host, _, port = address.partition(":")
    graphql = path == "graphql"
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
    loop = asyncio.get_running_loop()
    try:
        async with gate:
            transport, client = await loop.create_connection(
                lambda: Subscriber("/" + path, address, graphql, json.dumps(init).encode(), expect),
                host,
                int(port),
            )
            await asyncio.wait_for(client.opened, 600)
            if graphql:
                payload = {"query": SUBSCRIPTION, "variables": {"wf": workflow_id}}
                message = {"id": "1", "type": "subscribe", "payload": payload}
                client.send(json.dumps(message).encode())
    except Exception:
        ready(False)  # counted as a subscriber that received nothing
        raise
    ready(True)
    try:
        await asyncio.wait_for(client.done, 600)
    finally:
        transport.close()
    return client.times


async def clients(args: argparse.Namespace) -> None:
    gate = asyncio.Semaphore(16)  # connection storms beyond this wait for the pool
    pending = args.subscribers[0]
    connected = 0
    cpu = 0.0

    def ready(ok: bool) -> None:
        nonlocal pending, connected, cpu
        pending -= 1
        connected += ok
        if pending == 0:
            cpu = time.process_time()
            sys.stdout.write(f"ready {connected}\n")
            sys.stdout.flush()

    results = await asyncio.gather(
        *(
            subscriber(args.client, args.token, args.workflow, args.expect, gate, ready)
            for _ in range(args.subscribers[0])
        ),
        return_exceptions=True,
    )
    times = [r if isinstance(r, list) else [] for r in results]
    sys.stdout.write(json.dumps({"times": times, "cpu": time.process_time() - cpu}) + "\n")


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
    parser.add_argument(
        "--deflate",
        choices=("on", "off"),
        default=None,
        help="permessage-deflate in both servers (default: as `flowql serve` decides)",
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--workflow", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.deflate is not None:
        arguments.deflate = arguments.deflate == "on"
    uvloop.run(clients(arguments) if arguments.client else main(arguments))
