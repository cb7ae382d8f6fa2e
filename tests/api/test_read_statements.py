"""Hot lists cost a fixed number of SQL statements whatever the number of rows, fetch only the
columns the query reads, and count rows only when `totalCount` is asked for; on both backends,
over real HTTP. (The dashboard reads of bench/reads.py, kept honest by a test.)"""

from __future__ import annotations

import uuid
from typing import Any

from flowql.models import Message, Process, ProcessStatus, ProcessStep, StepStatus
from tests.api.test_dataloaders import describe, run_counted, server  # noqa: F401 (fixture)
from tests.conftest import Account, Factory, LiveServer

DASHBOARD = """
{ processes(first: 50) { nodes { id status createdAt steps { status agent { name } } } } }
"""
MESSAGES = "{ messages(first: 500) { nodes { id number createdAt agent { name } } } }"
WORKFLOWS = "{ workflows(first: 50) { totalCount edges { node { name agents { name } } } } }"
# What every request costs before its query runs (authentication): measured, not assumed, so
# that the budgets below are about the query alone.
BASELINE = "{ __typename }"

CREATE_WORKFLOW = """
mutation ($input: CreateWorkflowInput!) { createWorkflow(input: $input) { id agents { id } } }
"""


async def add_rows(
    live: LiveServer, account: Account, workflow: dict[str, Any], processes: int, messages: int
) -> None:
    agents = [uuid.UUID(a["id"]) for a in workflow["agents"]]
    workflow_id = uuid.UUID(workflow["id"])
    async with live.runtime.db.transaction() as session:
        for i in range(processes):
            process = Process(
                workspace_id=account.workspace_id,
                workflow_id=workflow_id,
                status=ProcessStatus.COMPLETED,
                title=f"run {i}",
                input={"big": "x" * 200},
            )
            session.add(process)
            for agent_id in agents:
                session.add(
                    ProcessStep(
                        workspace_id=account.workspace_id,
                        process_id=process.id,
                        agent_id=agent_id,
                        status=StepStatus.COMPLETED,
                    )
                )
        for i in range(messages):
            session.add(
                Message(
                    workspace_id=account.workspace_id,
                    agent_id=agents[i % len(agents)],
                    workflow_id=workflow_id,
                    payload={"i": i},
                )
            )


async def create_workflows(live: LiveServer, account: Account, n: int) -> list[dict[str, Any]]:
    created = []
    for i in range(n):
        agents = [
            {"name": f"start {i}", "type": "manual"},
            {"name": f"echo {i}", "type": "message", "sources": [f"start {i}"]},
        ]
        body = await live.gql(
            CREATE_WORKFLOW,
            {"input": {"name": f"workflow {i}", "agents": agents}},
            token=account.token,
        )
        created.append(body["data"]["createWorkflow"])
    return created


async def statements_beyond_baseline(
    live: LiveServer, query: str, token: str
) -> tuple[dict[str, Any], list[str]]:
    """The body and the statements of `query`, less those every request makes (auth)."""
    await live.gql(BASELINE, {}, token=token)  # the caller's principal read (and cached) anew
    _, baseline = await run_counted(live, BASELINE, {}, token)
    body, statements = await run_counted(live, query, {}, token)
    assert "errors" not in body, body
    assert statements[: len(baseline)] == baseline, describe(statements)
    return body, statements[len(baseline) :]


async def test_lists_cost_the_same_statements_at_ten_times_the_rows(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    account = await factory.account(workspace="Growth")
    workflows = await create_workflows(server, account, 3)
    await add_rows(server, account, workflows[0], processes=10, messages=30)

    small: dict[str, list[str]] = {}
    for name, query in (("dashboard", DASHBOARD), ("messages", MESSAGES)):
        _, small[name] = await statements_beyond_baseline(server, query, account.token)

    await add_rows(server, account, workflows[0], processes=90, messages=270)
    for name, query, field, rows in (
        ("dashboard", DASHBOARD, "processes", 50),
        ("messages", MESSAGES, "messages", 300),
    ):
        body, grown = await statements_beyond_baseline(server, query, account.token)
        nodes = body["data"][field]["nodes"]
        assert len(nodes) == rows
        assert len(grown) == len(small[name]), (
            f"{name}: {len(small[name])} statements at 1x, {len(grown)} at 10x:\n{describe(grown)}"
        )

    # The page, its steps and their agents: one statement each, and no COUNT(*) nobody asked for.
    _, dashboard = await statements_beyond_baseline(server, DASHBOARD, account.token)
    assert len(dashboard) == 3, describe(dashboard)
    assert not any("count(" in s.lower() for s in dashboard), describe(dashboard)
    body, _ = await statements_beyond_baseline(server, DASHBOARD, account.token)
    first = body["data"]["processes"]["nodes"][0]
    assert [s["agent"]["name"] for s in first["steps"]] == ["start 0", "echo 0"]
    assert {s["status"] for s in first["steps"]} == {"COMPLETED"}


async def test_lists_read_only_the_columns_the_query_selects(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    account = await factory.account(workspace="Columns")
    workflows = await create_workflows(server, account, 2)
    await add_rows(server, account, workflows[0], processes=3, messages=3)

    _, dashboard = await statements_beyond_baseline(server, DASHBOARD, account.token)
    page = " ".join(dashboard[0].split())
    assert page.startswith("SELECT") and "FROM processes" in page, page
    for unread in ("processes.input", "processes.output", "processes.actors", "processes.vars"):
        assert unread not in page, page

    _, messages = await statements_beyond_baseline(server, MESSAGES, account.token)
    assert "messages.payload" not in messages[0], messages[0]
    assert "messages.agent_id" in messages[0], messages[0]  # `agent` reads it

    # Asking for a column-backed field fetches it; `totalCount` costs its COUNT(*).
    body, with_payload = await statements_beyond_baseline(
        server, "{ messages(first: 5) { totalCount nodes { payload } } }", account.token
    )
    assert body["data"]["messages"]["totalCount"] == 3
    assert sorted(n["payload"]["i"] for n in body["data"]["messages"]["nodes"]) == [0, 1, 2]
    assert any("count(" in s.lower() for s in with_payload), describe(with_payload)

    body, _ = await statements_beyond_baseline(server, WORKFLOWS, account.token)
    connection = body["data"]["workflows"]
    assert connection["totalCount"] == 2
    assert [e["node"]["name"] for e in connection["edges"]] == ["workflow 1", "workflow 0"]
    assert [a["name"] for a in connection["edges"][1]["node"]["agents"]] == ["start 0", "echo 0"]


async def test_a_page_of_five_hundred_is_allowed_and_cursors_still_page(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    account = await factory.account(workspace="Pages")
    workflows = await create_workflows(server, account, 1)
    await add_rows(server, account, workflows[0], processes=0, messages=7)

    body = await server.gql(
        "{ messages(first: 500) { pageInfo { hasNextPage endCursor } nodes { number } } }",
        token=account.token,
    )
    assert len(body["data"]["messages"]["nodes"]) == 7
    first = await server.gql(
        "{ messages(first: 4) { pageInfo { hasNextPage endCursor } edges { cursor } } }",
        token=account.token,
    )
    connection = first["data"]["messages"]
    assert connection["pageInfo"]["hasNextPage"] is True
    assert connection["pageInfo"]["endCursor"] == connection["edges"][-1]["cursor"]
    rest = await server.gql(
        "query ($after: String) { messages(first: 4, after: $after) { nodes { number } } }",
        {"after": connection["pageInfo"]["endCursor"]},
        token=account.token,
    )
    assert len(rest["data"]["messages"]["nodes"]) == 3
