"""Engine benchmark: flowql vs a bare Starlette handler doing the same writes.

Prints p50/p99 webhook-to-response latency of an http-triggered three-agent workflow, processes
per second for a burst of executions, SQL statements per request, and the ratio of each to the
hand-written ceiling measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
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
    utcnow,
)
from flowql.services.auth import create_user
from flowql.services.runtime import Runtime
from flowql.services.workflows import AgentSpec, create_workflow
from flowql.services.workspaces import create_workspace
from flowql.settings import Settings

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


async def latency(client: httpx.AsyncClient, url: str, n: int) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        response = await client.post(url, json={"name": f"n{i}"})
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return samples


async def burst(client: httpx.AsyncClient, url: str, n: int, concurrency: int = 16) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            response = await client.post(url, json={"name": f"b{i}"})
            assert response.status_code == 200, response.text

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - started)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


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
            session, principal, runtime.box, workspace_id=workspace.id, name="bench", agents=AGENTS
        )
        agents = list(
            (await session.exec(select(Agent).where(Agent.workflow_id == workflow.id))).all()
        )
    return workspace.id, workflow.id, sorted(agents, key=lambda a: a.number or 0)


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
        )
        upgrade(settings)
        runtime = build_runtime(settings)
        workspace_id, workflow_id, agents = await setup(runtime)
        flowql, flowql_task, flowql_url = await serve(create_app(settings, runtime))
        bare, bare_task, bare_url = await serve(
            bare_app(runtime.db, workspace_id, workflow_id, agents)
        )
        hook = f"{flowql_url}/hooks/{workflow_id}/bench"
        async with httpx.AsyncClient(timeout=60) as client:
            await latency(client, hook, 10)
            await latency(client, f"{bare_url}/bare", 10)
            runtime.db.statement_log.start()
            flowql_lat = await latency(client, hook, args.requests)
            statements = len(runtime.db.statement_log.stop()) / args.requests
            runtime.db.statement_log.start()
            bare_lat = await latency(client, f"{bare_url}/bare", args.requests)
            bare_statements = len(runtime.db.statement_log.stop()) / args.requests
            flowql_rate = await burst(client, hook, args.processes)
            bare_rate = await burst(client, f"{bare_url}/bare", args.processes)
        for server in (flowql, bare):
            server.should_exit = True
        await asyncio.gather(flowql_task, bare_task)
        backend = "postgresql" if url.startswith("postgres") else "sqlite"
        print(
            f"engine benchmark ({backend}, {args.requests} sequential requests, {args.processes} in a burst)"
        )
        print(
            f"  webhook->response p50: flowql {pct(flowql_lat, 0.5):.1f} ms, ceiling {pct(bare_lat, 0.5):.1f} ms"
            f" -> ratio {statistics.median(flowql_lat) / statistics.median(bare_lat):.2f}x"
        )
        print(
            f"  webhook->response p99: flowql {pct(flowql_lat, 0.99):.1f} ms, ceiling {pct(bare_lat, 0.99):.1f} ms"
            f" -> ratio {pct(flowql_lat, 0.99) / pct(bare_lat, 0.99):.2f}x"
        )
        print(
            f"  processes/second: flowql {flowql_rate:.1f}, ceiling {bare_rate:.1f}"
            f" -> flowql reaches {flowql_rate / bare_rate:.2f} of the ceiling"
        )
        print(
            f"  SQL statements per request: flowql {statements:.1f}, ceiling {bare_statements:.1f}"
        )
        await runtime.db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--processes", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    asyncio.run(main(parser.parse_args()))
