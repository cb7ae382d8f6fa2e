"""Distributed benchmark: processes per second with 1, 2 and 4 procrastinate workers on
PostgreSQL, beside the inline dispatcher (one server running processes itself) on the same
database and machine.

Each round starts N processes of a three-step workflow (three `transform` agents) in one
transaction and measures from its commit until the last process is COMPLETED. Inline: the
processes run as asyncio tasks in this process (FLOWQL_MAX_CONCURRENT_PROCESSES at a time).
Procrastinate: the same transaction defers one job per process; W `flowql worker` subprocesses
(each `--concurrency C`) run them. Workers are started and ready before the clock starts.

    .venv/bin/python bench/distributed.py [--processes 300] [--workers 1 2 4] [--concurrency 8]
        [--bus postgres|memory] [--server postgresql://postgres@127.0.0.1:5432]

A throwaway database is created on --server and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from cryptography.fernet import Fernet
from sqlalchemy import func
from sqlmodel import select

from flowql.app import build_runtime
from flowql.auth.principal import Principal, PrincipalKind
from flowql.auth.privileges import ALL_PRIVILEGES
from flowql.engine.dispatch import InlineDispatcher
from flowql.engine.queue import ProcrastinateDispatcher, prepare_database
from flowql.models import Process, ProcessStatus, Workflow
from flowql.services.auth import create_user
from flowql.services.processes import StartRequest, start_process
from flowql.services.runtime import Runtime
from flowql.services.uow import unit_of_work
from flowql.services.workflows import AgentSpec, create_workflow
from flowql.services.workspaces import create_workspace
from flowql.settings import Bus, Dispatcher, Settings

FLOWQL = str(Path(sys.executable).parent / "flowql")
AGENTS = [
    AgentSpec(name="one", type="transform", options={"payload": {"n": "{{ message.n }}"}}),
    AgentSpec(name="two", type="transform", sources=["one"], options={"payload": {"m": "2"}}),
    AgentSpec(name="three", type="transform", sources=["two"], options={"payload": {"x": "3"}}),
]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def setup(runtime: Runtime) -> Principal:
    async with runtime.db.transaction() as session:
        user = await create_user(session, f"bench-{uuid.uuid4().hex[:6]}@example.com", "bench-pw")
        workspace = await create_workspace(session, user, "bench")
    return Principal(
        kind=PrincipalKind.USER, user_id=user.id, grants={workspace.id: ALL_PRIVILEGES}
    )


async def new_workflow(runtime: Runtime, principal: Principal, name: str) -> uuid.UUID:
    workspace_id = next(iter(principal.grants))
    async with runtime.db.transaction() as session:
        workflow = await create_workflow(
            session, principal, runtime.box, workspace_id=workspace_id, name=name, agents=AGENTS
        )
    return workflow.id


async def run_round(runtime: Runtime, workflow_id: uuid.UUID, n: int) -> float:
    """Start n processes in one transaction; seconds from its commit to the last completion."""
    async with unit_of_work(runtime) as uow:
        workflow = (
            await uow.session.exec(select(Workflow).where(Workflow.id == workflow_id))
        ).one()
        for i in range(n):
            await start_process(uow, runtime, StartRequest(workflow=workflow, input={"n": i}))
        started = time.perf_counter()
    while True:
        async with runtime.db.read() as session:
            done = (
                await session.exec(
                    select(func.count())
                    .select_from(Process)
                    .where(Process.workflow_id == workflow_id)
                    .where(Process.status == ProcessStatus.COMPLETED)
                )
            ).one()
        if done >= n:
            return time.perf_counter() - started
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"only {done} of {n} processes completed in 10 minutes")
        await asyncio.sleep(0.05)


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "FLOWQL_DATABASE_URL": str(settings.database_url),
        "FLOWQL_DATA_DIR": str(settings.data_dir),
        "FLOWQL_SECRET_KEY": str(settings.secret_key),
        "FLOWQL_ENCRYPTION_KEYS": str(settings.encryption_keys),
        "FLOWQL_DISPATCHER": "procrastinate",
        "FLOWQL_BUS": settings.bus.value,
    }


async def start_workers(
    settings: Settings, count: int, concurrency: int, logs: Path
) -> list[subprocess.Popen[bytes]]:
    procs, ports = [], []
    for index in range(count):
        port = free_port()
        log = (logs / f"worker-{count}-{index}.log").open("ab")
        argv = [FLOWQL, "worker", "--concurrency", str(concurrency), "--health-port", str(port)]
        procs.append(subprocess.Popen(argv, env=worker_env(settings), stdout=log, stderr=log))
        ports.append(port)
    async with httpx.AsyncClient() as client:
        for proc, port in zip(procs, ports, strict=True):
            for _ in range(600):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker exited; see {logs}")
                await asyncio.sleep(0.1)
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=60)


async def main(args: argparse.Namespace) -> None:
    name = f"flowql_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                database_url=f"{args.server}/{name}",
                data_dir=Path(tmp),
                secret_key="bench" * 8,
                encryption_keys=Fernet.generate_key().decode(),
                demo_accounts=False,
                bus=Bus(args.bus),
            )
            prepare_database(settings)
            await measure(settings, args, Path(tmp))
    finally:
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def measure(settings: Settings, args: argparse.Namespace, tmp: Path) -> None:
    n = args.processes
    runtime = build_runtime(settings)
    principal = await setup(runtime)
    # Warm up the database and this process, then the inline figure.
    inline = InlineDispatcher(runtime)
    runtime.dispatcher = inline
    await inline.start()
    await run_round(runtime, await new_workflow(runtime, principal, "warm-up"), 20)
    inline_seconds = await run_round(runtime, await new_workflow(runtime, principal, "inline"), n)
    await inline.stop()
    rates: dict[int, float] = {}
    runtime.dispatcher = ProcrastinateDispatcher(runtime)
    procrastinate_settings = settings.model_copy(update={"dispatcher": Dispatcher.PROCRASTINATE})
    for count in args.workers:
        procs = await start_workers(procrastinate_settings, count, args.concurrency, tmp)
        try:
            await run_round(runtime, await new_workflow(runtime, principal, f"warm-{count}"), 20)
            workflow_id = await new_workflow(runtime, principal, f"workers-{count}")
            rates[count] = n / await run_round(runtime, workflow_id, n)
        finally:
            stop_workers(procs)
    await runtime.db.dispose()

    inline_rate = n / inline_seconds
    print(
        f"distributed benchmark (postgresql, {n} processes of 3 transform steps each, "
        f"bus {settings.bus.value}, {os.cpu_count()} CPUs)"
    )
    print(
        f"  inline, one server ({settings.max_concurrent_processes} at a time): "
        f"{inline_rate:.1f} processes/s"
    )
    first = rates.get(args.workers[0])
    for count, rate in rates.items():
        line = (
            f"  procrastinate, {count} worker{'s' if count > 1 else ''} x {args.concurrency}: "
            f"{rate:.1f} processes/s -> {rate / inline_rate:.2f} of inline"
        )
        if first and count != args.workers[0]:
            line += f", {rate / first:.2f}x {args.workers[0]} worker"
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--bus", choices=["postgres", "memory"], default="postgres")
    parser.add_argument(
        "--server",
        default=os.environ.get("FLOWQL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432"),
        help="PostgreSQL server URL (no database name); a throwaway database is created on it",
    )
    asyncio.run(main(parser.parse_args()))
