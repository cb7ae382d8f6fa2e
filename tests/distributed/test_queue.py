"""The procrastinate dispatcher: the job commits (or not) with the process, a server can run its
own worker, cancel and retry map onto jobs, orphans get a job, and SQLite is refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select, update

from flowql.engine.queue import ProcrastinateDispatcher, resume_orphans
from flowql.models import Process, Workflow, utcnow
from flowql.services.processes import StartRequest, start_process
from flowql.services.runtime import NullDispatcher, Runtime
from flowql.services.uow import unit_of_work
from flowql.settings import Dispatcher, Settings, SettingsError
from tests.conftest import Factory, LiveServer
from tests.distributed.conftest import FLOWQL, Target, query_all
from tests.engine.conftest import create_workflow, execute, wait_status

pytestmark = pytest.mark.postgres

JOBS = "SELECT lock, status, queue_name, task_name FROM procrastinate_jobs WHERE lock = %s"


async def a_workflow(runtime: Runtime, factory: Factory) -> uuid.UUID:
    account = await factory.account()
    async with runtime.db.transaction() as session:
        workflow = Workflow(workspace_id=account.workspace_id, name="queued")
        session.add(workflow)
    return workflow.id


async def start(runtime: Runtime, workflow_id: uuid.UUID) -> Process:
    async with unit_of_work(runtime) as uow:
        workflow = (
            await uow.session.exec(select(Workflow).where(Workflow.id == workflow_id))
        ).one()
        process, _ = await start_process(uow, runtime, StartRequest(workflow=workflow, input={}))
    return process


async def test_the_job_commits_and_rolls_back_with_the_process(
    runtime: Runtime, factory: Factory
) -> None:
    workflow = await a_workflow(runtime, factory)
    runtime.dispatcher = ProcrastinateDispatcher(runtime)
    with pytest.raises(RuntimeError):
        async with unit_of_work(runtime) as uow:
            row = (await uow.session.exec(select(Workflow).where(Workflow.id == workflow))).one()
            lost, _ = await start_process(uow, runtime, StartRequest(workflow=row, input={}))
            raise RuntimeError("the request failed after the start")
    kept = await start(runtime, workflow)
    assert query_all(runtime.settings, JOBS, str(lost.id)) == []
    assert query_all(runtime.settings, JOBS, str(kept.id)) == [
        (str(kept.id), "todo", "processes", "flowql.run_process")
    ]


async def test_a_process_no_job_will_run_gets_one(runtime: Runtime, factory: Factory) -> None:
    workflow = await a_workflow(runtime, factory)
    runtime.dispatcher = NullDispatcher()  # e.g. started while the inline dispatcher was in use
    process = await start(runtime, workflow)
    assert await resume_orphans(runtime) == 0  # not idle long enough yet
    async with runtime.db.transaction() as session:
        await session.exec(
            update(Process)
            .where(col(Process.id) == process.id)
            .values(last_activity_at=utcnow() - timedelta(minutes=5))
        )
    assert await resume_orphans(runtime) == 1
    assert await resume_orphans(runtime) == 0
    assert len(query_all(runtime.settings, JOBS, str(process.id))) == 1


async def test_a_server_runs_its_own_worker_unless_told_not_to(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    """`flowql serve` (no --no-worker) with the procrastinate dispatcher: API and one worker."""
    ready = (await server.client.get("/readyz")).json()
    assert ready == {
        "status": "ready",
        "checks": {"database": "ok", "queue": "ok", "bus": "ok", "worker": "ok"},
    }
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "slow call",
        [
            {
                "name": "call",
                "type": "http_request",
                "options": {"url": target.url + "/slow", "method": "POST"},
            }
        ],
    )
    target.stall["/slow"] = 5
    process = await execute(server, account.token, workflow["id"], wait=False)
    await wait_status(server, account.token, process["id"], {"RUNNING"})
    cancelled = await server.gql(
        "mutation($id: UUID!) { cancelProcess(id: $id) { status } }",
        {"id": process["id"]},
        token=account.token,
    )
    assert cancelled["data"]["cancelProcess"]["status"] == "CANCELLED"
    for _ in range(100):  # the running job is aborted, nothing is left queued
        statuses = {row[1] for row in query_all(server.runtime.settings, JOBS, process["id"])}
        if not statuses & {"todo", "doing"}:
            break
        await asyncio.sleep(0.1)
    assert not statuses & {"todo", "doing"}, statuses
    target.stall.pop("/slow")
    await server.gql(
        "mutation($id: UUID!) { retryProcess(id: $id) { status } }",
        {"id": process["id"]},
        token=account.token,
    )
    done = await wait_status(server, account.token, process["id"], {"COMPLETED", "FAILED"})
    assert done["status"] == "COMPLETED", done


def test_the_procrastinate_dispatcher_and_postgres_bus_refuse_sqlite(tmp_path: Path) -> None:
    sqlite = f"sqlite:///{tmp_path / 'flowql.db'}"
    with pytest.raises(SettingsError, match="needs PostgreSQL"):
        Settings(database_url=sqlite, dispatcher=Dispatcher.PROCRASTINATE).check_startable()
    env = {
        **os.environ,
        "FLOWQL_DATABASE_URL": sqlite,
        "FLOWQL_DATA_DIR": str(tmp_path),
        "FLOWQL_DISPATCHER": "procrastinate",
    }
    worker = subprocess.run([FLOWQL, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert worker.returncode == 2
    assert "FLOWQL_DISPATCHER=procrastinate needs PostgreSQL" in worker.stderr


async def test_readyz_reports_an_unreachable_database(tmp_path: Path) -> None:
    from flowql.app import create_app

    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        data_dir=tmp_path,
        secret_key="k" * 40,
        demo_accounts=False,
    ).with_generated_keys()
    app = create_app(settings, run_worker=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/healthz")).status_code == 200
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unreachable")
