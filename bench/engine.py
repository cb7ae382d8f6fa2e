"""Engine benchmark: flowql vs a bare Starlette handler doing the same writes, per backend.

An http-triggered three-agent workflow (`http` -> `transform` -> `respond`) is driven by wrk at
1, 8, 32 and 64 connections on SQLite, PostgreSQL with the inline dispatcher, and PostgreSQL with
the procrastinate dispatcher (a worker in the server); the ceiling is one hand-written handler
writing the rows a three-agent process leaves behind, in one transaction, on the same database
in the same run. Printed side by side: requests/s, p50/p99, timeouts and errors, the ratio to the
ceiling, and SQL statements and commits per request.

    .venv/bin/python -m bench.engine [--duration 5] [--connections 1 8 32 64]
        [--backends sqlite postgres postgres-procrastinate] [--server postgresql://postgres@127.0.0.1:5432]

Needs `wrk` on the PATH (apt-get install -y wrk). PostgreSQL databases are created on --server
and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from cryptography.fernet import Fernet
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowql.app import build_runtime, create_app
from flowql.db import Database, upgrade
from flowql.models import (
    Agent,
    Event,
    Message,
    Process,
    ProcessLog,
    ProcessStatus,
    ProcessStep,
    StepStatus,
    WorkflowStatus,
    utcnow,
)
from flowql.services.auth import create_user
from flowql.services.runtime import Runtime
from flowql.services.workflows import AgentSpec, create_workflow
from flowql.services.workspaces import create_workspace
from flowql.settings import Dispatcher, Settings

AGENTS = [
    AgentSpec(name="endpoint", type="http", options={"path": "bench"}),
    AgentSpec(
        name="shape",
        type="transform",
        sources=["endpoint"],
        options={"payload": {"greeting": "Hello {{ message.name }}"}},
    ),
    AgentSpec(name="answer", type="respond", sources=["shape"], options={"status": 200}),
]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, f"http://127.0.0.1:{port}"


def bare_app(
    db: Database, workspace_id: uuid.UUID, workflow_id: uuid.UUID, agents: list[Agent]
) -> Starlette:
    """The ceiling: one handler, one transaction, the rows a three-agent process leaves behind."""

    async def handle(request: Request) -> Response:
        payload = await request.json()
        now = utcnow()
        body = {"greeting": f"Hello {payload.get('name', '')}"}
        async with db.transaction() as session:
            event = Event(workspace_id=workspace_id, trigger_type="http", data=payload)
            process = Process(
                workspace_id=workspace_id,
                workflow_id=workflow_id,
                event_id=event.id,
                input=payload,
                status=ProcessStatus.COMPLETED,
                output=body,
                started_at=now,
                completed_at=now,
            )
            session.add_all([event, process])
            previous: Message | None = None
            for agent, out in zip(agents, [payload, body, body], strict=True):
                step = ProcessStep(
                    workspace_id=workspace_id,
                    process_id=process.id,
                    agent_id=agent.id,
                    input_message_id=previous.id if previous else None,
                    status=StepStatus.COMPLETED,
                    attempt=1,
                    started_at=now,
                    finished_at=now,
                )
                message = Message(
                    workspace_id=workspace_id,
                    agent_id=agent.id,
                    workflow_id=workflow_id,
                    process_id=process.id,
                    step_id=step.id,
                    payload=out,
                )
                log = ProcessLog(
                    workspace_id=workspace_id,
                    process_id=process.id,
                    step_id=step.id,
                    message=f"{agent.name}: done",
                )
                session.add_all([step, message, log])
                previous = message
        return JSONResponse(body)

    return Starlette(routes=[Route("/bare", handle, methods=["POST"])])


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name": "wrk"}'
"""


@dataclass
class Load:
    rate: float
    p50_ms: float
    p99_ms: float
    timeouts: int
    errors: int
    # CPU time this process (the servers, their database threads) spent per request: unlike
    # rates, barely moved by other load on the machine. PostgreSQL's own CPU is not in it.
    cpu_ms: float = 0.0


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


async def wrk(url: str, connections: int, duration: float, script: Path) -> Load:
    cpu = time.process_time()
    load = await _wrk(url, connections, duration, script)
    requests = load.rate * duration
    load.cpu_ms = (time.process_time() - cpu) * 1000 / requests if requests else float("nan")
    return load


async def _wrk(url: str, connections: int, duration: float, script: Path) -> Load:
    threads = min(2, connections)
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "2s",
        "--latency",
        "-s",
        str(script),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await proc.communicate())[0].decode()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s|m)\b", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s|m)\b", out)
    timeouts = re.search(r"timeout (\d+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+)", out)
    if rate is None:
        raise RuntimeError(f"wrk failed: {out}")
    return Load(
        rate=float(rate.group(1)),
        p50_ms=_ms(*p50.groups()) if p50 else float("nan"),
        p99_ms=_ms(*p99.groups()) if p99 else float("nan"),
        timeouts=int(timeouts.group(1)) if timeouts else 0,
        errors=(int(errors.group(1)) if errors else 0)
        + (sum(int(n) for n in sockets.groups()) if sockets else 0),
    )


async def statements_per_request(runtime: Runtime, url: str, n: int = 20) -> tuple[float, float]:
    """SQL statements and commits per request, one request at a time."""
    log = runtime.db.statement_log
    async with httpx.AsyncClient(timeout=30) as client:
        log.start()
        for i in range(n):
            response = await client.post(url, json={"name": f"n{i}"})
            assert response.status_code == 200, response.text
        statements = log.stop()
    return len(statements) / n, log.commits / n


async def setup(runtime: Runtime) -> tuple[uuid.UUID, uuid.UUID, list[Agent]]:
    from flowql.auth.principal import Principal, PrincipalKind
    from flowql.auth.privileges import ALL_PRIVILEGES

    async with runtime.db.transaction() as session:
        user = await create_user(
            session, f"bench-{uuid.uuid4().hex[:6]}@example.com", "bench-password"
        )
        workspace = await create_workspace(session, user, "bench")
        principal = Principal(
            kind=PrincipalKind.USER, user_id=user.id, grants={workspace.id: ALL_PRIVILEGES}
        )
        workflow = await create_workflow(
            session,
            principal,
            runtime.box,
            workspace_id=workspace.id,
            name="bench",
            agents=AGENTS,
            status=WorkflowStatus.PUBLISHED,  # a draft's hooks do not fire
        )
        agents = list(
            (await session.exec(select(Agent).where(Agent.workflow_id == workflow.id))).all()
        )
    return workspace.id, workflow.id, sorted(agents, key=lambda a: a.number or 0)


@dataclass
class Row:
    backend: str
    connections: int
    flowql: Load
    ceiling: Load


async def measure(
    backend: str, url: str, args: argparse.Namespace, tmp: Path, script: Path
) -> tuple[list[Row], tuple[float, float], tuple[float, float]]:
    settings = Settings(
        database_url=url,
        data_dir=tmp / backend,
        secret_key="bench" * 8,
        encryption_keys=Fernet.generate_key().decode(),
        demo_accounts=False,
        rate_limits_enabled=False,
        dispatcher=Dispatcher.PROCRASTINATE
        if backend.endswith("procrastinate")
        else Dispatcher.INLINE,
    )
    if settings.dispatcher is Dispatcher.PROCRASTINATE:
        from flowql.engine.queue import prepare_database

        prepare_database(settings)
    else:
        upgrade(settings)
    runtime = build_runtime(settings)
    workspace_id, workflow_id, agents = await setup(runtime)
    flowql, flowql_task, flowql_url = await serve(create_app(settings, runtime))
    bare, bare_task, bare_url = await serve(bare_app(runtime.db, workspace_id, workflow_id, agents))
    hook, ceiling = f"{flowql_url}/hooks/{workflow_id}/bench", f"{bare_url}/bare"
    for url in (hook, ceiling):
        await statements_per_request(runtime, url, 10)  # warm up
    flowql_cost = await statements_per_request(runtime, hook)
    bare_cost = await statements_per_request(runtime, ceiling)
    # Interleaved, so a change in the machine's load hits both sides alike.
    flowql_loads, bare_loads = [], []
    for connections in args.connections:
        flowql_loads.append(await wrk(hook, connections, args.duration, script))
        bare_loads.append(await wrk(ceiling, connections, args.duration, script))
    for server in (flowql, bare):
        server.should_exit = True
    await asyncio.gather(flowql_task, bare_task)
    await runtime.db.dispose()
    rows = [
        Row(backend, c, f, b)
        for c, f, b in zip(args.connections, flowql_loads, bare_loads, strict=True)
    ]
    return rows, flowql_cost, bare_cost


def database_for(backend: str, args: argparse.Namespace, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}"
    name = f"bench_engine_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{args.server}/{name}"


def drop(url: str, args: argparse.Namespace) -> None:
    if url.startswith("postgres"):
        name = url.rsplit("/", 1)[-1]
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)
        results = []
        for backend in args.backends:
            url = database_for(backend, args, tmp)
            try:
                results.append(await measure(backend, url, args, tmp, script))
            finally:
                drop(url, args)
    print(
        f"engine benchmark: http -> transform -> respond, wrk {args.duration:g}s per cell, "
        "ceiling = one bare handler writing the same rows in one transaction"
    )
    print(
        f"{'backend':<24}{'conns':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'t/o':>6}{'err':>6}"
        f"{'ceiling':>10}{'c p50':>8}{'c p99':>8}{'ratio':>8}{'cpu ms/req':>12}{'c cpu':>8}"
        f"{'cpu ratio':>11}"
    )
    for rows, _, _ in results:
        for row in rows:
            f, c = row.flowql, row.ceiling
            print(
                f"{row.backend:<24}{row.connections:>6}{f.rate:>9.1f}{f.p50_ms:>9.1f}"
                f"{f.p99_ms:>9.1f}{f.timeouts:>6}{f.errors:>6}{c.rate:>10.1f}{c.p50_ms:>8.1f}"
                f"{c.p99_ms:>8.1f}{f.rate / c.rate:>8.2f}{f.cpu_ms:>12.2f}{c.cpu_ms:>8.2f}"
                f"{c.cpu_ms / f.cpu_ms:>11.2f}"
            )
    print(
        "ratio = flowql req/s / ceiling req/s; cpu ratio = ceiling CPU per request / flowql's "
        "(this process only: what the rates would be on an idle machine)"
    )
    print("per request, one at a time: SQL statements (commits)")
    for rows, (fs, fc), (bs, bc) in results:
        print(f"  {rows[0].backend:<22} flowql {fs:.1f} ({fc:.1f}), ceiling {bs:.1f} ({bc:.1f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgres", "postgres-procrastinate"]
    )
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    asyncio.run(main(parser.parse_args()))
