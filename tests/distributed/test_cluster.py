"""Two API replicas and two procrastinate workers on one PostgreSQL: processes started on one
replica are seen completing on the other's live feed, both workers share the work, and a worker
killed with SIGKILL mid-run loses nothing and repeats no finished step."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from sqlmodel import col, select

from flowql.models import (
    DeliveryStatus,
    Message,
    Process,
    ProcessStatus,
    ProcessStep,
    StepStatus,
    WebhookDelivery,
    WebhookSubscription,
)
from flowql.services.runtime import Runtime
from tests.conftest import Factory
from tests.distributed.conftest import Client, Cluster, Feed, Target, query_all

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PROCESSES = 200
# One cheap step per process: the test is about distribution, and CI has two cores.
ECHO = [{"name": "echo", "type": "transform", "options": {"payload": {"n": "{{ message.n }}"}}}]
COMPLETED_FEED = """
subscription($workflow: UUID!) {
  processEvents(workflowId: $workflow, statuses: [COMPLETED]) { id status }
}
"""


async def collect_completed(feed: Feed, wanted: set[str], timeout: float) -> set[str]:
    seen: set[str] = set()
    deadline = asyncio.get_running_loop().time() + timeout
    while not wanted <= seen:
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"{len(wanted - seen)} of {len(wanted)} never seen completing"
        event = (await feed.next(remaining))["processEvents"]
        assert event["status"] == "COMPLETED"
        seen.add(event["id"])
    return seen


async def test_200_processes_started_on_one_replica_complete_on_the_others_feed(
    cluster: Cluster, factory: Factory, runtime: Runtime
) -> None:
    await cluster.start(serve=["api-a", "api-b"], workers=["worker-1", "worker-2"])
    account = await factory.account()
    a = Client(cluster.nodes["api-a"], account.token)
    try:
        workflow = await a.create_workflow("fan-out", ECHO)
        variables = {"workflow": workflow["id"]}
        b = cluster.nodes["api-b"]
        async with Feed.open(b, account.token, COMPLETED_FEED, variables) as feed:
            # The feed is live once a first process started on A shows up on B.
            probe = await a.execute(workflow["id"], {"n": -1})
            await collect_completed(feed, {probe}, timeout=30)
            ids = await a.execute_many(workflow["id"], PROCESSES)
            seen = await collect_completed(feed, set(ids), timeout=120)
        assert set(ids) <= seen and len(set(ids)) == PROCESSES
    finally:
        await a.close()

    async with runtime.db.read() as session:
        processes = (await session.exec(select(Process))).all()
        steps = (await session.exec(select(ProcessStep))).all()
    assert Counter(p.status for p in processes) == {ProcessStatus.COMPLETED: PROCESSES + 1}
    # `{{ message.n }}` alone keeps its type: the numbers come out as numbers.
    assert {p.output["n"] for p in processes if p.output} == {n for n in [-1, *range(PROCESSES)]}
    assert len(steps) == PROCESSES + 1
    # Both workers ran part of the processes, and each process ran in exactly one job.
    ran = {name: cluster.nodes[name].ran() for name in ("worker-1", "worker-2")}
    assert all(len(found) > 0 for found in ran.values()), {k: len(v) for k, v in ran.items()}
    assert Counter(ran["worker-1"] + ran["worker-2"]) == Counter({p: 1 for p in [probe, *ids]})


DURABLE = [
    {"name": "wait", "type": "delay", "options": {"seconds": 2.5}},
    {
        "name": "call",
        "type": "http_request",
        "sources": ["wait"],
        "maxRetries": 3,
        "options": {
            "url": "TARGET/call",
            "method": "POST",
            "body": {"process": "{{ process.id }}"},
        },
    },
    {"name": "settle", "type": "delay", "sources": ["call"], "options": {"seconds": 2.5}},
    {
        "name": "record",
        "type": "transform",
        "sources": ["settle"],
        "options": {"payload": {"done": "{{ message.status }}"}},
    },
]
KILL_PROCESSES = 60


async def test_a_worker_killed_mid_run_loses_nothing_and_repeats_no_finished_step(
    cluster: Cluster, factory: Factory, runtime: Runtime, target: Target
) -> None:
    target.stall["/call"] = 0.8
    account = await factory.account()
    async with runtime.db.transaction() as session:
        session.add(
            WebhookSubscription(
                workspace_id=account.workspace_id,
                url=target.url + "/hooks",
                events=["process.completed"],
                secret_encrypted=runtime.box.encrypt("s"),
            )
        )
    await cluster.start(serve=["api-a", "api-b"], workers=["worker-1", "worker-2"])
    victim = cluster.nodes["worker-1"].procrastinate_id()
    a = Client(cluster.nodes["api-a"], account.token)
    agents = json.loads(json.dumps(DURABLE).replace("TARGET", target.url))
    try:
        workflow = await a.create_workflow("durable", agents)
        call_agent = next(x["id"] for x in workflow["agents"] if x["name"] == "call")
        variables = {"workflow": workflow["id"]}
        b = cluster.nodes["api-b"]
        async with Feed.open(b, account.token, COMPLETED_FEED, variables) as feed:
            starting = asyncio.create_task(a.execute_many(workflow["id"], KILL_PROCESSES))
            # Kill worker-1 inside outbound calls, once some calls have finished (their steps
            # must never run again) and before any process completed.
            for _ in range(600):
                doing, called, completed = query_all(
                    cluster.settings,
                    "SELECT (SELECT count(*) FROM procrastinate_jobs WHERE worker_id = %s"
                    "         AND status = 'doing' AND task_name = 'flowql.run_process'),"
                    " (SELECT count(*) FROM process_steps WHERE agent_id = %s"
                    "         AND status = 'COMPLETED'),"
                    " (SELECT count(*) FROM processes WHERE status = 'COMPLETED')",
                    victim,
                    call_agent,
                )[0]
                if doing >= 2 and called >= 1:
                    break
                await asyncio.sleep(0.05)
            cluster.kill9("worker-1")
            # What the dead worker was running: its jobs stay 'doing' until they are requeued.
            in_flight = {
                lock
                for (lock,) in query_all(
                    cluster.settings,
                    "SELECT lock FROM procrastinate_jobs WHERE worker_id = %s AND status = 'doing'",
                    victim,
                )
            }
            called_before = {json.loads(c["body"])["process"] for c in target.hits("/call")}
            async with runtime.db.read() as session:
                finished_before = {
                    str(s.process_id)
                    for s in (await session.exec(select(ProcessStep))).all()
                    if str(s.agent_id) == call_agent and s.status == StepStatus.COMPLETED
                }
            assert doing >= 2 and completed == 0 and in_flight, (doing, called, completed)
            assert finished_before and len(called_before) < KILL_PROCESSES
            ids = await starting
            await collect_completed(feed, set(ids), timeout=120)
    finally:
        await a.close()

    # Every completion is delivered.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        async with runtime.db.read() as session:
            deliveries = (await session.exec(select(WebhookDelivery))).all()
        if all(d.status == DeliveryStatus.DELIVERED for d in deliveries):
            break
        assert asyncio.get_running_loop().time() < deadline, Counter(d.status for d in deliveries)
        await asyncio.sleep(0.2)
    async with runtime.db.read() as session:
        processes = (await session.exec(select(Process))).all()
        steps = (await session.exec(select(ProcessStep))).all()
        messages = (await session.exec(select(Message).order_by(col(Message.number)))).all()
    assert all(p.status == ProcessStatus.COMPLETED for p in processes)
    # The dead worker's jobs were handed over, and the survivor finished them.
    assert "requeued job" in cluster.nodes["worker-2"].output()
    # One step per agent and incoming message, each finished once; one message per step.
    assert Counter(str(s.process_id) for s in steps) == Counter({p: 4 for p in ids})
    assert all(s.status == StepStatus.COMPLETED for s in steps)
    assert len({(s.process_id, s.agent_id, s.input_message_id) for s in steps}) == len(steps)
    assert len(messages) == 4 * KILL_PROCESSES
    assert Counter(m.step_id for m in messages).most_common(1)[0][1] == 1
    # The outbound call ran once per process; only a process the dead worker was running may
    # have called again (at-least-once for an unfinished step), never one whose step finished.
    calls = Counter(json.loads(c["body"])["process"] for c in target.hits("/call"))
    assert set(calls) == set(ids)
    for process_id, count in calls.items():
        assert count == 1 or (process_id in in_flight and count == 2), (process_id, count)
    assert all(calls[p] == 1 for p in finished_before), "a finished step ran again"
    # The outbox holds one delivery per completion, and each arrived once.
    assert len(deliveries) == KILL_PROCESSES
    hooks = target.hits("/hooks")
    received = {json.loads(c["body"])["data"]["process"]["id"] for c in hooks}
    assert received == set(ids)
    per_delivery = Counter(c["headers"]["x-flowql-delivery"] for c in hooks)
    assert len(per_delivery) == KILL_PROCESSES and max(per_delivery.values()) == 1
