"""Only a published workflow's triggers fire; a six-field cron's first field is seconds.

A draft still runs by hand. Its schedule moves on without firing, so publishing it later fires
no backlog. `*/5 * * * * *` (which used to fire every second: croniter read the sixth field as
seconds) fires every five seconds; seven fields are refused with VALIDATION_ERROR; the nextRunAt
shown is the time the scheduler fires at.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from croniter import croniter
from sqlmodel import col, select, update

from flowql.engine.scheduler import fire_due_schedules
from flowql.models import Process, Trigger, utcnow
from flowql.settings import Settings
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute

PUBLISH = """
mutation ($id: UUID!) { updateWorkflow(id: $id, input: {status: PUBLISHED}) { status } }
"""
TRIGGERS = """
query ($id: UUID!) { workflow(id: $id) { status triggers { type path nextRunAt lastFiredAt } } }
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.scheduler_interval = 3600  # only the test's own scheduler calls fire
    return settings


def hook_agents(path: str) -> list[dict[str, Any]]:
    return [
        {"name": "endpoint", "type": "http", "options": {"path": path}},
        {"name": "answer", "type": "respond", "sources": ["endpoint"], "options": {"status": 200}},
    ]


async def processes_of(server: LiveServer, workflow_id: str) -> list[Process]:
    async with server.runtime.db.read() as session:
        rows = await session.exec(
            select(Process).where(Process.workflow_id == uuid.UUID(workflow_id))
        )
        return list(rows.all())


async def make_due(server: LiveServer, workflow_id: str, when: Any) -> None:
    async with server.runtime.db.transaction() as session:
        await session.exec(
            update(Trigger)
            .where(col(Trigger.workflow_id) == uuid.UUID(workflow_id))
            .values(next_run_at=when)
        )


async def test_a_drafts_hook_does_not_fire_until_published_but_runs_by_hand(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server, account.token, "draft hook", hook_agents("in"), status="DRAFT"
    )
    refused = await server.client.post(f"/hooks/{workflow['id']}/in", json={"x": 1})
    assert refused.status_code == 404
    assert await processes_of(server, workflow["id"]) == []

    by_hand = await execute(server, account.token, workflow["id"], {"x": 2})
    assert by_hand["status"] == "COMPLETED"

    await server.gql(PUBLISH, {"id": workflow["id"]}, token=account.token)
    fired = await server.client.post(f"/hooks/{workflow['id']}/in", json={"x": 3})
    assert fired.status_code == 200, fired.text
    assert len(await processes_of(server, workflow["id"])) == 2


async def test_a_drafts_schedule_moves_on_without_firing(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    agents = [{"name": "tick", "type": "schedule", "options": {"cron": "*/5 * * * *"}}]
    workflow = await create_workflow(server, account.token, "draft", agents, status="DRAFT")
    now = utcnow()
    await make_due(server, workflow["id"], now - timedelta(minutes=12))

    assert await fire_due_schedules(server.runtime, now) == 0
    assert await processes_of(server, workflow["id"]) == []
    body = await server.gql(TRIGGERS, {"id": workflow["id"]}, token=account.token)
    trigger = body["data"]["workflow"]["triggers"][0]
    assert trigger["lastFiredAt"] is None
    assert trigger["nextRunAt"] > now.isoformat()  # no backlog left for publishing to fire

    await server.gql(PUBLISH, {"id": workflow["id"]}, token=account.token)
    await make_due(server, workflow["id"], now - timedelta(minutes=1))
    assert await fire_due_schedules(server.runtime, now) == 1
    assert len(await processes_of(server, workflow["id"])) == 1


@pytest.mark.parametrize(
    "cron", ["0 0 0 * * * 2030", "* * * *", "every tuesday", "61 * * * *", "61 * * * * *"]
)
async def test_a_cron_that_is_not_five_or_six_valid_fields_is_refused(
    server: LiveServer, factory: Factory, cron: str
) -> None:
    account = await factory.account()
    body = await server.gql(
        "mutation($i: CreateWorkflowInput!) { createWorkflow(input: $i) { id } }",
        {
            "i": {
                "name": "bad",
                "agents": [{"name": "t", "type": "schedule", "options": {"cron": cron}}],
            }
        },
        token=account.token,
        expect_errors=True,
    )
    error = body["errors"][0]["extensions"]
    assert error["code"] == "VALIDATION_ERROR"
    assert "agents.0.options.cron" in error["fields"]


async def test_next_run_at_is_when_the_schedule_fires(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    agents = [{"name": "tick", "type": "schedule", "options": {"cron": "*/5 * * * *"}}]
    workflow = await create_workflow(server, account.token, "every five", agents)
    body = await server.gql(TRIGGERS, {"id": workflow["id"]}, token=account.token)
    shown = body["data"]["workflow"]["triggers"][0]["nextRunAt"]
    async with server.runtime.db.read() as session:
        trigger = (
            await session.exec(
                select(Trigger).where(Trigger.workflow_id == uuid.UUID(workflow["id"]))
            )
        ).one()
    due = trigger.next_run_at
    assert due is not None and due.isoformat() == shown.replace("Z", "+00:00")
    assert due.minute % 5 == 0 and due.second == 0
    assert due - utcnow() <= timedelta(minutes=5)

    # Nothing fires a second before it; at it, exactly one process, and the next is 5 minutes on.
    assert await fire_due_schedules(server.runtime, due - timedelta(seconds=1)) == 0
    assert await fire_due_schedules(server.runtime, due) == 1
    assert await fire_due_schedules(server.runtime, due + timedelta(seconds=30)) == 0
    async with server.runtime.db.read() as session:
        again = (await session.exec(select(Trigger).where(Trigger.id == trigger.id))).one()
    assert again.next_run_at == croniter("*/5 * * * *", due).get_next(type(due))
    assert again.next_run_at - due == timedelta(minutes=5)
    assert len(await processes_of(server, workflow["id"])) == 1


async def test_six_fields_are_seconds_first_and_next_run_at_is_when_it_fires(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    agents = [{"name": "tick", "type": "schedule", "options": {"cron": "*/5 * * * * *"}}]
    workflow = await create_workflow(server, account.token, "every five seconds", agents)
    body = await server.gql(TRIGGERS, {"id": workflow["id"]}, token=account.token)
    shown = body["data"]["workflow"]["triggers"][0]["nextRunAt"]
    async with server.runtime.db.read() as session:
        trigger = (
            await session.exec(
                select(Trigger).where(Trigger.workflow_id == uuid.UUID(workflow["id"]))
            )
        ).one()
    due = trigger.next_run_at
    assert due is not None and due.isoformat() == shown.replace("Z", "+00:00")
    assert due.second % 5 == 0 and due.microsecond == 0
    assert due - utcnow() <= timedelta(seconds=5)

    assert await fire_due_schedules(server.runtime, due - timedelta(milliseconds=500)) == 0
    assert await fire_due_schedules(server.runtime, due) == 1
    assert await fire_due_schedules(server.runtime, due + timedelta(seconds=1)) == 0
    async with server.runtime.db.read() as session:
        again = (await session.exec(select(Trigger).where(Trigger.id == trigger.id))).one()
    assert again.next_run_at is not None and again.next_run_at - due == timedelta(seconds=5)
    assert len(await processes_of(server, workflow["id"])) == 1
