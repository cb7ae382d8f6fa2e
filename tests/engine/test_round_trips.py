"""An http-triggered run costs a few SQL statements and one write transaction, on both storage
backends, over real HTTP: its start, steps, messages, logs and outbox rows are built in memory
and written together. The cost does not grow with the payload or with the number of messages."""

from __future__ import annotations

from typing import Any

import pytest

from flowql.settings import Settings
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow

# No reads: the hook's plan (trigger, workflow, agents, links, what the process may do) is
# compiled once (engine/plans.py), the outbox's subscriptions are kept between runs, and the
# workflow's and trigger's last-run times move at most once a second. Writes: the event, the
# process, messages, steps and logs, one INSERT each (and SQLite's BEGIN IMMEDIATE).
STATEMENT_BUDGET = 6
FAN_OUT = 6


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No scheduler ticks while counting: only the request's own statements are recorded."""
    settings.scheduler_interval = 3600
    return settings


@pytest.fixture
def server(server: LiveServer) -> LiveServer:
    """Cached reads are re-checked every second otherwise (for edits by other processes): a
    slow machine would count a re-read the request did not cause."""
    server.runtime.db.plan_clock.ttl = 3600
    return server


def counted(statements: list[str]) -> list[str]:
    """The request's statements but for the last-run times, written at most once a second
    (whether a call writes them depends on how long ago the previous one did)."""
    return [s for s in statements if "last_run_at" not in s and "last_fired_at" not in s]


def three_agents(path: str) -> list[dict[str, Any]]:
    return [
        {"name": "endpoint", "type": "http", "options": {"path": path}},
        {
            "name": "shape",
            "type": "transform",
            "sources": ["endpoint"],
            "options": {"payload": {"greeting": "Hello {{ message.name }}"}, "merge": True},
        },
        {"name": "answer", "type": "respond", "sources": ["shape"], "options": {"status": 200}},
    ]


def fanned_out(path: str) -> list[dict[str, Any]]:
    """The same answer, after the request's message went through FAN_OUT more agents."""
    branches = [
        {
            "name": f"branch{i}",
            "type": "transform",
            "sources": ["endpoint"],
            "options": {"payload": {"branch": i}},
        }
        for i in range(FAN_OUT)
    ]
    return [*three_agents(path), *branches]


async def counted_call(
    server: LiveServer, workflow_id: str, path: str, body: dict[str, Any]
) -> tuple[dict[str, Any], list[str], int]:
    log = server.runtime.db.statement_log
    log.start()
    try:
        response = await server.client.post(f"/hooks/{workflow_id}/{path}", json=body)
    finally:
        statements = log.stop()
    assert response.status_code == 200, response.text
    return response.json(), statements, log.commits


def describe(statements: list[str]) -> str:
    return "\n".join(f"  {i + 1}. {' '.join(s.split())[:140]}" for i, s in enumerate(statements))


async def test_http_run_costs_one_commit_and_a_few_statements_whatever_its_size(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    small = await create_workflow(server, account.token, "small", three_agents("small"))
    wide = await create_workflow(server, account.token, "wide", fanned_out("wide"))
    await counted_call(server, small["id"], "small", {"name": "warm"})  # compiled statements

    answer, statements, commits = await counted_call(server, small["id"], "small", {"name": "Ada"})
    assert answer == {"name": "Ada", "greeting": "Hello Ada"}
    assert commits == 1, describe(statements)
    assert len(counted(statements)) <= STATEMENT_BUDGET, describe(statements)

    big = {"name": "Bo", "rows": [{"n": i, "text": "x" * 100} for i in range(2000)]}
    answer, big_statements, commits = await counted_call(server, small["id"], "small", big)
    assert answer["greeting"] == "Hello Bo" and len(answer["rows"]) == 2000
    assert commits == 1
    assert len(counted(big_statements)) == len(counted(statements)), describe(big_statements)

    # 1 + FAN_OUT more steps and messages, still one commit and the same statements.
    await counted_call(server, wide["id"], "wide", {"name": "warm"})
    answer, wide_statements, commits = await counted_call(
        server, wide["id"], "wide", {"name": "Cy"}
    )
    assert answer == {"name": "Cy", "greeting": "Hello Cy"}
    assert commits == 1
    assert len(counted(wide_statements)) == len(counted(statements)), describe(wide_statements)

    detail = await server.gql(
        """query($id: UUID!) { workflow(id: $id) { processes(last: 1) {
             status steps { status } } } }""",
        {"id": wide["id"]},
        token=account.token,
    )
    process = detail["data"]["workflow"]["processes"][0]
    assert process["status"] == "COMPLETED"
    assert [s["status"] for s in process["steps"]] == ["COMPLETED"] * (3 + FAN_OUT)
