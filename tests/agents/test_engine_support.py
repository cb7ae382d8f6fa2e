"""What the engine gives agent types: memory saved across processes (and never lost when two
processes run one agent at once), Huginn schedules that run an agent in check mode, and its
messages flowing on to its receivers.

The agent types here are test-only (a counter that remembers, a checker that reports its mode),
registered into the real registry for the test; everything else is the real server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from sqlmodel import col, select, update

from flowql.agents import registry
from flowql.agents.base import AgentRun, AgentType, Kind, Options, Outcome
from flowql.models import Agent, Message, Process, Trigger, TriggerType, utcnow
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute, wait_status


@dataclass
class Gate:
    """Holds the first `wave` handlers until all of them have read their memory."""

    wave: int = 0
    arrived: int = 0
    open: asyncio.Event = field(default_factory=asyncio.Event)
    runs: int = 0


class CounterOptions(Options):
    step: int = 1


class CheckerOptions(Options):
    label: str = "checked"


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def test_types(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    async def count(run: AgentRun) -> Outcome:
        gate.runs += 1
        before = int(run.memory.get("count", 0))
        if gate.wave > 0:
            gate.wave -= 1
            gate.arrived += 1
            if gate.wave == 0:
                gate.open.set()
            await asyncio.wait_for(gate.open.wait(), 20)
        run.memory["count"] = before + int(run.agent.options.get("step", 1))
        run.memory.setdefault("seen", []).append(run.payload.get("n"))
        return Outcome(emit=[{"count": run.memory["count"]}])

    async def check(run: AgentRun) -> Outcome:
        checks = int(run.memory.get("checks", 0)) + 1
        run.memory["checks"] = checks
        return Outcome(emit=[{"mode": run.mode, "checks": checks, "label": run.options()["label"]}])

    monkeypatch.setitem(
        registry.REGISTRY,
        "test_counter",
        AgentType("test_counter", Kind.ACTION, CounterOptions, "counts (test)", count),
    )
    monkeypatch.setitem(
        registry.REGISTRY,
        "test_checker",
        AgentType("test_checker", Kind.ACTION, CheckerOptions, "checks (test)", check),
    )
    yield


AGENTS_QUERY = """
query($id: UUID!) { workflow(id: $id) { agents { name memory schedule propagateImmediately } } }
"""


async def memory_of(server: LiveServer, agent_id: str) -> tuple[dict[str, object], int]:
    async with server.runtime.db.read() as session:
        agent = (await session.exec(select(Agent).where(Agent.id == uuid.UUID(agent_id)))).one()
        return dict(agent.memory), agent.memory_version


async def test_memory_is_saved_with_the_step_and_read_by_the_next_process(
    test_types: None, server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "remembers",
        [
            {"name": "start", "type": "manual"},
            {"name": "counter", "type": "test_counter", "sources": ["start"]},
        ],
    )
    counter_id = next(a["id"] for a in workflow["agents"] if a["name"] == "counter")
    for n in range(3):
        process = await execute(server, account.token, workflow["id"], {"n": n})
        assert process["status"] == "COMPLETED", process
        assert process["output"] == {"count": n + 1}
    memory, version = await memory_of(server, counter_id)
    assert memory == {"count": 3, "seen": [0, 1, 2]}
    assert version == 3
    shown = await server.gql(AGENTS_QUERY, {"id": workflow["id"]}, token=account.token)
    agents = {a["name"]: a for a in shown["data"]["workflow"]["agents"]}
    assert agents["counter"]["memory"] == {"count": 3, "seen": [0, 1, 2]}
    assert agents["start"]["memory"] == {}


async def test_concurrent_processes_of_one_agent_lose_no_memory_update(
    test_types: None, gate: Gate, server: LiveServer, factory: Factory
) -> None:
    """Three processes read the counter's memory at the same version, then all write: the
    version guard lets one win, the others run their step again over the saved memory."""
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "races",
        [
            {"name": "start", "type": "manual"},
            {"name": "counter", "type": "test_counter", "sources": ["start"]},
        ],
    )
    counter_id = next(a["id"] for a in workflow["agents"] if a["name"] == "counter")
    gate.wave = 3
    started = [
        await execute(server, account.token, workflow["id"], {"n": n}, wait=False) for n in range(3)
    ]
    for process in started:
        done = await wait_status(server, account.token, process["id"], {"COMPLETED", "FAILED"})
        assert done["status"] == "COMPLETED", done
    memory, version = await memory_of(server, counter_id)
    assert memory["count"] == 3
    assert sorted(memory["seen"]) == [0, 1, 2]  # type: ignore[arg-type]
    assert version == 3
    # All three read version 0 at once: two lost the race and ran their step again (and one of
    # those two may lose once more to the other).
    assert gate.arrived == 3 and 5 <= gate.runs <= 6


async def test_a_scheduled_agent_checks_on_its_own_and_its_messages_reach_its_receivers(
    test_types: None, server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "checks hourly",
        [
            {
                "name": "checker",
                "type": "test_checker",
                "schedule": "every_1h",
                "propagateImmediately": False,
                "options": {"label": "{{ workflow.name }}"},
            },
            {"name": "sink", "type": "message", "sources": ["checker"]},
        ],
    )
    workflow_id = uuid.UUID(workflow["id"])
    runtime = server.runtime
    async with runtime.db.read() as session:
        trigger = (
            await session.exec(select(Trigger).where(Trigger.workflow_id == workflow_id))
        ).one()
    assert trigger.type == TriggerType.SCHEDULE and trigger.path == "0 * * * *"
    assert trigger.next_run_at is not None and trigger.next_run_at > utcnow()
    shown = await server.gql(AGENTS_QUERY, {"id": workflow["id"]}, token=account.token)
    checker = next(a for a in shown["data"]["workflow"]["agents"] if a["name"] == "checker")
    assert checker["schedule"] == "every_1h" and checker["propagateImmediately"] is False
    # The hour comes: the server's own scheduler loop fires it.
    async with runtime.db.transaction() as session:
        await session.exec(
            update(Trigger)
            .where(col(Trigger.id) == trigger.id)
            .values(next_run_at=utcnow() - timedelta(seconds=1))
        )
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        async with runtime.db.read() as session:
            processes = (
                await session.exec(select(Process).where(Process.workflow_id == workflow_id))
            ).all()
        if processes:
            break
        assert asyncio.get_running_loop().time() < deadline, "the schedule never fired"
        await asyncio.sleep(0.05)
    done = await wait_status(server, account.token, str(processes[0].id), {"COMPLETED", "FAILED"})
    assert done["status"] == "COMPLETED", done
    assert done["output"] == {"mode": "check", "checks": 1, "label": "checks hourly"}
    async with runtime.db.read() as session:
        sink = (
            await session.exec(
                select(Agent).where(Agent.workflow_id == workflow_id).where(Agent.name == "sink")
            )
        ).one()
        received = (await session.exec(select(Message).where(Message.agent_id == sink.id))).all()
    assert [m.payload for m in received] == [
        {"mode": "check", "checks": 1, "label": "checks hourly"}
    ]


async def test_a_schedule_flowql_does_not_know_is_refused_naming_it(
    test_types: None, server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    body = await server.gql(
        """mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { id } }""",
        {
            "input": {
                "name": "bad",
                "agents": [{"name": "c", "type": "test_checker", "schedule": "every_3m"}],
            }
        },
        token=account.token,
        expect_errors=True,
    )
    extensions = body["errors"][0]["extensions"]
    assert extensions["code"] == "VALIDATION_ERROR"
    assert "every_3m" in extensions["fields"]["agents.0.schedule"]


async def test_a_commander_disables_enables_configures_and_runs_the_agents_it_controls(
    test_types: None, server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "commands",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "boss",
                "type": "commander",
                "sources": ["start"],
                "controls": ["checker"],
                "options": {
                    "action": "{{ message.action }}",
                    "configure_options": {"label": "configured by {{ message.who }}"},
                },
            },
            {"name": "checker", "type": "test_checker", "schedule": "every_1h"},
        ],
    )
    workflow_id = uuid.UUID(workflow["id"])
    checker_id = uuid.UUID(next(a["id"] for a in workflow["agents"] if a["name"] == "checker"))
    runtime = server.runtime

    async def checker() -> tuple[Agent, Trigger]:
        async with runtime.db.read() as session:
            agent = (await session.exec(select(Agent).where(Agent.id == checker_id))).one()
            trigger = (
                await session.exec(select(Trigger).where(Trigger.agent_id == checker_id))
            ).one()
        return agent, trigger

    done = await execute(server, account.token, workflow["id"], {"action": "disable"})
    assert done["status"] == "COMPLETED", done
    agent, trigger = await checker()
    assert agent.disabled and not trigger.active
    await execute(server, account.token, workflow["id"], {"action": "enable"})
    agent, trigger = await checker()
    assert not agent.disabled and trigger.active
    await execute(server, account.token, workflow["id"], {"action": "configure", "who": "boss"})
    agent, _ = await checker()
    assert agent.options == {"label": "configured by boss"}
    await execute(server, account.token, workflow["id"], {"action": "run"})
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        async with runtime.db.read() as session:
            outputs = [
                p.output
                for p in (
                    await session.exec(select(Process).where(Process.workflow_id == workflow_id))
                ).all()
                if p.output and "mode" in p.output
            ]
        if outputs:
            break
        assert asyncio.get_running_loop().time() < deadline, "the commanded run never happened"
        await asyncio.sleep(0.05)
    assert outputs == [{"mode": "check", "checks": 1, "label": "configured by boss"}]
    refused = await execute(server, account.token, workflow["id"], {"action": "explode"})
    assert refused["status"] == "FAILED" and "explode" in refused["error"]


async def test_data_output_serves_what_it_received_as_json_and_rss(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "feed",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "feed",
                "type": "data_output",
                "sources": ["start"],
                "options": {
                    "secrets": ["open-sesame"],
                    "events_to_show": 2,
                    "ns_media": "true",
                    "template": {
                        "title": "Comics",
                        "description": "{{ events.size }} comics",
                        "link": "https://comics.example/",
                        "item": {
                            "title": "{{ title }}",
                            "description": "{{ title | upcase }} & more",
                            "link": "{{ url }}",
                        },
                    },
                },
            },
        ],
    )
    feed_id = next(a["id"] for a in workflow["agents"] if a["name"] == "feed")
    for n in range(3):
        await execute(
            server, account.token, workflow["id"], {"title": f"comic {n}", "url": f"https://c/{n}"}
        )
    answer = await server.client.get(f"/feeds/{feed_id}/open-sesame.json")
    assert answer.status_code == 200
    data = answer.json()
    assert data["title"] == "Comics" and data["description"] == "2 comics"
    assert [(i["title"], i["link"]) for i in data["items"]] == [
        ("comic 2", "https://c/2"),
        ("comic 1", "https://c/1"),
    ]
    assert data["items"][0]["description"] == "COMIC 2 & more"
    xml = await server.client.get(f"/feeds/{feed_id}/open-sesame.xml")
    assert xml.status_code == 200
    assert xml.headers["content-type"].startswith("application/rss+xml")
    assert 'xmlns:media="http://search.yahoo.com/mrss/"' in xml.text
    root = ElementTree.fromstring(xml.content)
    channel = root.find("channel")
    assert channel is not None and channel.findtext("title") == "Comics"
    items = channel.findall("item")
    assert [i.findtext("title") for i in items] == ["comic 2", "comic 1"]
    assert items[0].findtext("description") == "COMIC 2 & more"
    assert all(i.findtext("guid") for i in items)
    for wrong in ("wrong.json", "open-sesame.html", ".json"):
        assert (await server.client.get(f"/feeds/{feed_id}/{wrong}")).status_code == 404
    assert (await server.client.get(f"/feeds/{uuid.uuid4()}/open-sesame.json")).status_code == 404
    assert (await server.client.get("/feeds/not-an-id/open-sesame.json")).status_code == 404


async def test_create_and_update_agent_set_and_clear_a_schedule(
    test_types: None, server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "sched", [])
    created = await server.gql(
        """mutation($input: CreateAgentInput!) { createAgent(input: $input) { id schedule } }""",
        {
            "input": {
                "workflowId": workflow["id"],
                "name": "c",
                "type": "test_checker",
                "schedule": "every_5m",
                "propagateImmediately": False,
            }
        },
        token=account.token,
    )
    agent = created["data"]["createAgent"]
    assert agent["schedule"] == "every_5m"

    async def crons() -> list[str | None]:
        async with server.runtime.db.read() as session:
            rows = (
                await session.exec(
                    select(Trigger).where(Trigger.agent_id == uuid.UUID(agent["id"]))
                )
            ).all()
        return [t.path for t in rows]

    assert await crons() == ["*/5 * * * *"]
    update_agent = """mutation($id: UUID!, $input: UpdateAgentInput!) {
      updateAgent(id: $id, input: $input) { schedule propagateImmediately } }"""
    updated = await server.gql(
        update_agent, {"id": agent["id"], "input": {"schedule": "noon"}}, token=account.token
    )
    assert updated["data"]["updateAgent"] == {"schedule": "noon", "propagateImmediately": False}
    assert await crons() == ["0 12 * * *"]
    cleared = await server.gql(
        update_agent, {"id": agent["id"], "input": {"schedule": "never"}}, token=account.token
    )
    assert cleared["data"]["updateAgent"]["schedule"] is None
    assert await crons() == []
