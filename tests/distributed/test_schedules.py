"""Three procrastinate workers, one schedule firing every second: each due time fires exactly
once (procrastinate defers each periodic tick once; the trigger's due time is claimed once)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlmodel import col, select, update

from flowql.models import Process, ProcessStatus, Trigger
from flowql.services.runtime import Runtime
from tests.conftest import Factory
from tests.distributed.conftest import Client, Cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WINDOW_SECONDS = 8


async def test_three_workers_fire_a_schedule_once_per_due_time(
    cluster: Cluster, factory: Factory, runtime: Runtime
) -> None:
    await cluster.start(serve=["api"], workers=["worker-1", "worker-2", "worker-3"])
    account = await factory.account()
    api = Client(cluster.nodes["api"], account.token)
    try:
        workflow = await api.create_workflow(
            "every second",
            [
                {
                    "name": "tick",
                    "type": "schedule",
                    "options": {"cron": "* * * * * *", "payload": {"job": "sync"}},
                },
                {
                    "name": "echo",
                    "type": "transform",
                    "sources": ["tick"],
                    "options": {"payload": {"at": "{{ message.scheduled_at }}"}},
                },
            ],
        )
    finally:
        await api.close()
    workflow_id = uuid.UUID(workflow["id"])
    await asyncio.sleep(WINDOW_SECONDS)
    async with runtime.db.transaction() as session:
        await session.exec(
            update(Trigger).where(col(Trigger.workflow_id) == workflow_id).values(active=False)
        )
    deadline = asyncio.get_running_loop().time() + 30
    while True:  # until what fired has run
        async with runtime.db.read() as session:
            processes = (
                await session.exec(select(Process).where(Process.workflow_id == workflow_id))
            ).all()
        if processes and all(p.status == ProcessStatus.COMPLETED for p in processes):
            break
        assert asyncio.get_running_loop().time() < deadline, Counter(p.status for p in processes)
        await asyncio.sleep(0.2)

    due = Counter(p.input["scheduled_at"] for p in processes)
    assert max(due.values()) == 1, [at for at, n in due.items() if n > 1]
    times = sorted(datetime.fromisoformat(at) for at in due)
    assert len(times) >= WINDOW_SECONDS - 3, times
    # No due time skipped between the first and the last.
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(times))
    assert {p.output["at"] for p in processes if p.output} == set(due)
