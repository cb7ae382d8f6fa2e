"""Read path: flowql's GraphQL reads vs a hand-written Starlette + SQL endpoint, same run.

Seeds a database (SQLite by default; --database-url postgresql://… makes a fresh database on
that server), starts `flowql serve` and a hand-written Starlette app (same SQL, same JSON, same
bearer check) as two uvicorn processes on free loopback ports, and loads each with wrk at the
same connection count. Per operation it prints req/s, p50, p99, flowql's ratio to the ceiling and
SQL statements per request (counted in process over the same apps). A growth run at 10x the
rows shows that statements per request stay constant.

Both sides verify the bearer JWT on every request. The ceiling then reads the caller's
workspaces on every request; flowql keeps a credential's principal for a few seconds
(flowql.auth.cache), so its counts and CPU are those of a caller seen just before: wrk sends
one token, as a dashboard does.

    python -m bench.reads [--processes 300] [--messages 500] [--duration 5] [--connections 8]
                          [--database-url postgresql://postgres@127.0.0.1:5432] [--growth 10]

Needs wrk (`apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowql.app import build_runtime, create_app
from flowql.auth.principal import Principal, PrincipalKind
from flowql.auth.privileges import ALL_PRIVILEGES
from flowql.db import Database, create_database, upgrade
from flowql.models import (
    Agent,
    Membership,
    Message,
    Process,
    ProcessStatus,
    ProcessStep,
    StepStatus,
    User,
    Workflow,
)
from flowql.services.auth import create_user, login
from flowql.services.workflows import AgentSpec, create_workflow
from flowql.services.workspaces import create_workspace
from flowql.settings import Settings

DASHBOARD = (
    "query Dashboard { processes(first: 50) { nodes { id status createdAt "
    "steps { status agent { name } } } } }"
)
MESSAGES = "query Messages { messages(first: 500) { nodes { id number createdAt payload } } }"
WORKFLOW = "query Workflow($id: UUID!) { workflow(id: $id) { name } }"
AGENTS = [
    AgentSpec(name="endpoint", type="manual"),
    AgentSpec(name="shape", type="transform", sources=["endpoint"]),
    AgentSpec(name="echo", type="message", sources=["shape"]),
]


@dataclass
class Seeded:
    token: str
    workflow_id: uuid.UUID


@dataclass
class Operation:
    name: str
    document: str
    variables: dict[str, Any]
    ceiling_path: str


def operations(seeded: Seeded) -> list[Operation]:
    return [
        Operation("dashboard: processes(first: 50) + steps + agent", DASHBOARD, {}, "/dashboard"),
        Operation("list: messages(first: 500)", MESSAGES, {}, "/messages"),
        Operation(
            "small: workflow(id) { name }",
            WORKFLOW,
            {"id": str(seeded.workflow_id)},
            f"/workflow/{seeded.workflow_id}",
        ),
    ]


# -- seeding -----------------------------------------------------------------------------------


async def seed(settings: Settings, processes: int, messages: int) -> Seeded:
    runtime = build_runtime(settings)
    try:
        async with runtime.db.transaction() as session:
            user = await create_user(session, "bench@example.com", "bench-password")
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
            )
            agents = list(
                (
                    await session.exec(
                        select(Agent).where(Agent.workflow_id == workflow.id)  # type: ignore[arg-type]
                    )
                ).scalars()
            )
        agents.sort(key=lambda a: a.number or 0)
        for start in range(0, processes, 500):
            async with runtime.db.transaction() as session:
                for i in range(start, min(processes, start + 500)):
                    process = Process(
                        workspace_id=workspace.id,
                        workflow_id=workflow.id,
                        status=ProcessStatus.COMPLETED,
                        title=f"run {i}",
                        input={"i": i},
                    )
                    session.add(process)
                    for agent in agents:
                        session.add(
                            ProcessStep(
                                workspace_id=workspace.id,
                                process_id=process.id,
                                agent_id=agent.id,
                                status=StepStatus.COMPLETED,
                                attempt=1,
                            )
                        )
        for start in range(0, messages, 1000):
            async with runtime.db.transaction() as session:
                for i in range(start, min(messages, start + 1000)):
                    agent = agents[i % len(agents)]
                    session.add(
                        Message(
                            workspace_id=workspace.id,
                            agent_id=agent.id,
                            workflow_id=workflow.id,
                            payload={"i": i, "greeting": f"Hello {i}", "tags": ["a", "b"]},
                        )
                    )
        async with runtime.db.transaction() as session:
            token = (
                await login(session, settings, "bench@example.com", "bench-password")
            ).access_token
        return Seeded(token=token, workflow_id=workflow.id)
    finally:
        await runtime.db.dispose()


# -- the ceiling: hand-written Starlette + SQL -------------------------------------------------


def ceiling_app(settings: Settings, db: Database) -> Starlette:
    """Same SQL a careful hand-written endpoint would run, the same JSON flowql answers."""
    secret = settings.secret_key or ""
    p, s, a, m, w = (t.__table__.c for t in (Process, ProcessStep, Agent, Message, Workflow))  # type: ignore[attr-defined]
    mem, users = Membership.__table__.c, User.__table__.c  # type: ignore[attr-defined]

    @asynccontextmanager
    async def caller(request: Request) -> AsyncIterator[tuple[AsyncConnection, list[Any]]]:
        """Verify the bearer JWT and load the caller's workspaces (one statement)."""
        token = request.headers.get("authorization", "").partition(" ")[2]
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
        async with db.engine.connect() as conn:
            stmt = (
                select(mem.workspace_id)
                .join_from(Membership, User, users.id == mem.user_id)
                .where(users.id == uuid.UUID(claims["sub"]), users.is_active)
            )
            yield conn, list((await conn.execute(stmt)).scalars())

    async def dashboard(request: Request) -> Response:
        async with caller(request) as (conn, workspaces):
            rows = (
                await conn.execute(
                    select(p.id, p.status, p.created_at)
                    .where(p.workspace_id.in_(workspaces))
                    .order_by(p.number.desc())
                    .limit(50)
                )
            ).all()
            ids = [r.id for r in rows]
            steps = (
                await conn.execute(
                    select(s.process_id, s.status, s.agent_id)
                    .where(s.process_id.in_(ids))
                    .order_by(s.number)
                )
            ).all()
            agent_ids = list({st.agent_id for st in steps})
            names = dict(
                (await conn.execute(select(a.id, a.name).where(a.id.in_(agent_ids)))).all()
            )
        by_process: dict[Any, list[dict[str, Any]]] = {i: [] for i in ids}
        for st in steps:
            by_process[st.process_id].append(
                {"status": st.status, "agent": {"name": names[st.agent_id]}}
            )
        nodes = [
            {
                "id": str(r.id),
                "status": r.status,
                "createdAt": r.created_at.isoformat(),
                "steps": by_process[r.id],
            }
            for r in rows
        ]
        return JSONResponse({"data": {"processes": {"nodes": nodes}}})

    async def messages(request: Request) -> Response:
        async with caller(request) as (conn, workspaces):
            rows = (
                await conn.execute(
                    select(m.id, m.number, m.created_at, m.payload)
                    .where(m.workspace_id.in_(workspaces))
                    .order_by(m.number.desc())
                    .limit(500)
                )
            ).all()
        nodes = [
            {
                "id": str(r.id),
                "number": r.number,
                "createdAt": r.created_at.isoformat(),
                "payload": r.payload,
            }
            for r in rows
        ]
        return JSONResponse({"data": {"messages": {"nodes": nodes}}})

    async def workflow(request: Request) -> Response:
        async with caller(request) as (conn, workspaces):
            row = (
                await conn.execute(
                    select(w.name, w.workspace_id).where(
                        w.id == uuid.UUID(request.path_params["id"])
                    )
                )
            ).first()
        if row is None or row.workspace_id not in workspaces:
            return JSONResponse({"data": None, "errors": [{"message": "not found"}]})
        return JSONResponse({"data": {"workflow": {"name": row.name}}})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/dashboard", dashboard),
            Route("/messages", messages),
            Route("/workflow/{id}", workflow),
        ]
    )


def serve_ceiling(port: int) -> None:
    """Subprocess entry: the ceiling under uvicorn, as `flowql serve` runs flowql."""
    import uvicorn

    settings = Settings()
    uvicorn.run(
        ceiling_app(settings, create_database(settings)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


# -- servers and load --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "FLOWQL_DATABASE_URL": settings.database_url or "",
        "FLOWQL_DATA_DIR": str(settings.data_dir),
        "FLOWQL_SECRET_KEY": settings.secret_key or "",
        "FLOWQL_ENCRYPTION_KEYS": settings.encryption_keys or "",
        "FLOWQL_DEMO_ACCOUNTS": "false",
        "FLOWQL_RATE_LIMITS_ENABLED": "false",
    }


@dataclass
class Server:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU the server process (all its threads) has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def started(command: list[str], env: dict[str, str], port: int) -> AsyncIterator[Server]:
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"{command} exited with {proc.returncode}")
                await asyncio.sleep(0.1)
        yield Server(url, proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_ms: float = 0.0  # server CPU per request: steadier than req/s on a shared machine


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, script: str, duration: float, connections: int, tmp: Path) -> Load:
    lua = tmp / f"wrk-{uuid.uuid4().hex[:8]}.lua"
    lua.write_text(script)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(lua),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (int(timeouts.group(1)) if timeouts else 0)
    return Load(rps, p50, p99, errors, requests)


def loaded(server: Server, path: str, script: str, duration: float, args: Any, tmp: Path) -> Load:
    before = server.cpu_seconds()
    load = wrk(f"{server.url}{path}", script, duration, args.connections, tmp)
    load.cpu_ms = (server.cpu_seconds() - before) * 1000 / max(1, load.requests)
    return load


def lua_post(body: dict[str, Any], token: str) -> str:
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    )


def lua_get(token: str) -> str:
    return f'wrk.headers["Authorization"] = "Bearer {token}"\n'


# -- statements per request, counted in process over the same apps ------------------------------


async def count_statements(
    settings: Settings, seeded: Seeded, ops: list[Operation]
) -> dict[str, tuple[float, float, bool]]:
    """Operation -> (flowql statements, ceiling statements, same JSON)."""
    runtime = build_runtime(settings)
    ceiling_db = create_database(settings)
    flowql = create_app(settings, runtime, run_worker=False)
    ceiling = ceiling_app(settings, ceiling_db)
    auth = {"Authorization": f"Bearer {seeded.token}"}
    counts: dict[str, tuple[float, float, bool]] = {}
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(flowql), base_url="http://f") as f,
            httpx.AsyncClient(transport=httpx.ASGITransport(ceiling), base_url="http://c") as c,
        ):
            for op in ops:

                async def one_flowql(op: Operation = op) -> Any:
                    body = {"query": op.document, "variables": op.variables}
                    return (await f.post("/graphql", json=body, headers=auth)).json()

                async def one_ceiling(op: Operation = op) -> Any:
                    return (await c.get(op.ceiling_path, headers=auth)).json()

                got = await one_flowql()
                assert "errors" not in got, got
                flowql_n = await _counted(runtime.db, one_flowql)
                ceiling_n = await _counted(ceiling_db, one_ceiling)
                counts[op.name] = (flowql_n, ceiling_n, got == await one_ceiling())
    finally:
        await runtime.db.dispose()
        await ceiling_db.dispose()
    return counts


async def _counted(db: Database, call: Callable[[], Any], n: int = 3) -> float:
    await call()  # warm caches (prepared documents, persisted plans) first
    db.statement_log.start()
    for _ in range(n):
        await call()
    return len(db.statement_log.stop()) / n


# -- the run -----------------------------------------------------------------------------------


@asynccontextmanager
async def database(args: argparse.Namespace, tmp: Path, label: str) -> AsyncIterator[Settings]:
    if args.database_url:
        base = args.database_url.rstrip("/")
        name = f"flowql_bench_reads_{os.getpid()}_{label}"
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{base}/{name}"
    else:
        url = f"sqlite:///{tmp / f'{label}.db'}"
    settings = Settings(
        database_url=url,
        data_dir=tmp,
        secret_key="bench-reads-" * 4,
        encryption_keys=Fernet.generate_key().decode(),
        demo_accounts=False,
        rate_limits_enabled=False,
    )
    upgrade(settings)
    try:
        yield settings
    finally:
        if args.database_url:
            with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def load_run(
    args: argparse.Namespace, settings: Settings, seeded: Seeded, tmp: Path, duration: float
) -> dict[str, tuple[Load, Load]]:
    env = environment(settings)
    flowql_port, ceiling_port = free_port(), free_port()
    python = sys.executable
    flowql_cmd = [python, "-c", "import sys; from flowql.cli import main; sys.exit(main())"]
    flowql_cmd += ["serve", "--no-worker", "--port", str(flowql_port), "--log-level", "warning"]
    ceiling_cmd = [python, "-m", "bench.reads", "--serve-ceiling", str(ceiling_port)]
    results: dict[str, tuple[Load, Load]] = {}
    async with (
        started(flowql_cmd, env, flowql_port) as flowql,
        started(ceiling_cmd, env, ceiling_port) as ceiling,
    ):
        for op in operations(seeded):
            post = lua_post({"query": op.document, "variables": op.variables}, seeded.token)
            get = lua_get(seeded.token)
            # Alternate short rounds so that load from elsewhere on the machine hits both alike.
            f_runs, c_runs = [], []
            loaded(flowql, "/graphql", post, 1, args, tmp)  # warm-up
            loaded(ceiling, op.ceiling_path, get, 1, args, tmp)
            for _ in range(args.rounds):
                c_runs.append(loaded(ceiling, op.ceiling_path, get, duration, args, tmp))
                f_runs.append(loaded(flowql, "/graphql", post, duration, args, tmp))
            results[op.name] = (combine(f_runs), combine(c_runs))
    return results


def combine(runs: list[Load]) -> Load:
    n = len(runs)
    return Load(
        rps=sum(r.rps for r in runs) / n,
        p50_ms=sorted(r.p50_ms for r in runs)[n // 2],
        p99_ms=max(r.p99_ms for r in runs),
        errors=sum(r.errors for r in runs),
        requests=sum(r.requests for r in runs),
        cpu_ms=sum(r.cpu_ms * r.requests for r in runs) / max(1, sum(r.requests for r in runs)),
    )


def report(
    title: str,
    loads: dict[str, tuple[Load, Load]] | None,
    counts: dict[str, tuple[float, float, bool]],
) -> None:
    print(title)
    for name, (f_n, c_n, same) in counts.items():
        print(f"  {name}")
        if loads is not None:
            f, c = loads[name]
            print(
                f"    flowql  {f.rps:8.1f} req/s  p50 {f.p50_ms:8.2f} ms  p99 {f.p99_ms:8.2f} ms"
                f"  CPU {f.cpu_ms:6.2f} ms/req  errors {f.errors}"
            )
            print(
                f"    ceiling {c.rps:8.1f} req/s  p50 {c.p50_ms:8.2f} ms  p99 {c.p99_ms:8.2f} ms"
                f"  CPU {c.cpu_ms:6.2f} ms/req  errors {c.errors}"
            )
            print(
                f"    ratio to the ceiling: req/s {f.rps / c.rps:.2f}"
                f", by CPU per request {c.cpu_ms / f.cpu_ms:.2f}"
            )
        print(
            f"    SQL statements per request: flowql {f_n:.0f}, ceiling {c_n:.0f}"
            f"; same JSON: {'yes' if same else 'NO'}"
        )
    if counts:
        print(
            "  (flowql's caller principal cached: flowql.auth.cache; the ceiling reads it each time)"
        )
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench.reads needs wrk: apt-get install -y wrk")
    backend = "postgresql" if args.database_url else "sqlite"
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        async with database(args, tmp, "base") as settings:
            started_at = time.perf_counter()
            seeded = await seed(settings, args.processes, args.messages)
            print(
                f"seeded {args.processes} processes, {args.messages} messages in "
                f"{time.perf_counter() - started_at:.1f} s"
            )
            counts = await count_statements(settings, seeded, operations(seeded))
            loads = await load_run(args, settings, seeded, tmp, args.duration)
            report(
                f"read path ({backend}; wrk, {args.connections} connections, "
                f"{args.rounds} x {args.duration:g} s per side, alternating)",
                loads,
                counts,
            )
        if args.growth > 1:
            async with database(args, tmp, "growth") as settings:
                seeded = await seed(
                    settings, args.processes * args.growth, args.messages * args.growth
                )
                counts = await count_statements(settings, seeded, operations(seeded))
                loads = None
                if args.growth_load:
                    loads = await load_run(args, settings, seeded, tmp, args.duration)
                report(
                    f"growth run: {args.growth}x rows ({args.processes * args.growth} processes, "
                    f"{args.messages * args.growth} messages)",
                    loads,
                    counts,
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=300)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server URL")
    parser.add_argument("--growth", type=int, default=10, help="rows multiplier (1: skip)")
    parser.add_argument("--growth-load", action="store_true", help="also load the growth run")
    parser.add_argument("--serve-ceiling", type=int, default=None, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve_ceiling is not None:
        serve_ceiling(parsed.serve_ceiling)
    else:
        asyncio.run(main(parsed))
