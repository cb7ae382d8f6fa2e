"""SSRF refusal, schedules that fire once per due time, and option validation on save."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlmodel import col, select, update

from flowql.engine.scheduler import fire_due_schedules
from flowql.models import Process, Trigger, utcnow
from flowql.services.runtime import Runtime
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute


@pytest.fixture
def no_private_networks(runtime: Runtime) -> None:
    runtime.settings.allow_private_networks = False


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/x",
        "http://localhost:9/x",
    ],
)
async def test_http_request_to_private_networks_is_refused(
    no_private_networks: None, server: LiveServer, factory: Factory, url: str
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "ssrf",
        [
            {"name": "call", "type": "http_request", "options": {"url": url}},
        ],
    )
    process = await execute(server, account.token, workflow["id"])
    assert process["status"] == "FAILED"
    assert "call" in process["error"]
    assert (
        "private" in process["error"]
        or "not allowed" in process["error"]
        or "public" in process["error"]
    )


async def test_bad_agent_options_are_refused_naming_the_option(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    cases = [
        (
            {"name": "a", "type": "http_request", "options": {"method": "GET"}},
            "agents.0.options.url",
        ),
        (
            {"name": "a", "type": "schedule", "options": {"cron": "every tuesday"}},
            "agents.0.options.cron",
        ),
        (
            {"name": "a", "type": "transform", "options": {"payload": {"x": "{{ oops"}}},
            "agents.0.options.payload.x",
        ),
        ({"name": "a", "type": "teleport", "options": {}}, "agents.0.type"),
        ({"name": "a", "type": "delay", "options": {"seconds": -1}}, "agents.0.options.seconds"),
    ]
    for agent, field in cases:
        body = await server.gql(
            "mutation($i: CreateWorkflowInput!) { createWorkflow(input: $i) { id } }",
            {"i": {"name": "bad", "agents": [agent]}},
            token=account.token,
            expect_errors=True,
        )
        error = body["errors"][0]
        assert error["extensions"]["code"] == "VALIDATION_ERROR", body
        assert field in error["extensions"]["fields"], (field, error)
    listed = await server.gql("{ workflows { totalCount } }", token=account.token)
    assert listed["data"]["workflows"]["totalCount"] == 0


async def test_schedule_catches_up_once_and_never_fires_twice(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "hourly",
        [
            {
                "name": "tick",
                "type": "schedule",
                "options": {"cron": "0 * * * *", "payload": {"job": "sync"}},
            },
        ],
    )
    runtime = server.runtime
    workflow_id = uuid.UUID(workflow["id"])
    now = utcnow()
    # The server was down for five hours: five due times were missed.
    async with runtime.db.transaction() as session:
        await session.exec(
            update(Trigger)
            .where(col(Trigger.workflow_id) == workflow_id)
            .values(next_run_at=now - timedelta(hours=5))
        )
    # Four concurrent schedulers (and the server's own loop) race for the same due time.
    results = await asyncio.gather(*(fire_due_schedules(runtime, now) for _ in range(4)))
    assert sum(results) <= 1
    async with runtime.db.read() as session:
        processes = (
            await session.exec(select(Process).where(Process.workflow_id == workflow_id))
        ).all()
        trigger = (
            await session.exec(select(Trigger).where(Trigger.workflow_id == workflow_id))
        ).one()
    assert len(processes) == 1
    assert processes[0].input["job"] == "sync"
    assert trigger.next_run_at is not None and trigger.next_run_at > now
    assert trigger.last_fired_at is not None and now - trigger.last_fired_at < timedelta(hours=1)
    assert await fire_due_schedules(runtime, now) == 0
