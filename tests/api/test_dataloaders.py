"""Relations resolve through per-request dataloaders: a page of 50 workflows with their agents,
sources, message counts, newest messages and newest processes costs the same few SQL statements
as a page of 5 (no N+1), on both storage backends, over real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlmodel import select

from flowql.app import create_app
from flowql.models import Message, Process, ProcessStatus, Role, User, Workspace
from flowql.services.runtime import Runtime
from flowql.services.workspaces import add_member
from tests.conftest import Account, Factory, LiveServer, free_port

WORKFLOWS = 50
MESSAGES_PER_AGENT = (7, 3, 0)  # first agent has more than 5, the others fewer
PROCESSES_PER_WORKFLOW = 4
STATEMENT_BUDGET = 12

CREATE_WORKFLOW = """
mutation ($input: CreateWorkflowInput!) {
  createWorkflow(input: $input) { id agents { id name } }
}
"""

DEEP_QUERY = """
query ($first: Int!) {
  workflows(first: $first) {
    edges {
      node {
        id
        name
        agents {
          id
          name
          sources { id }
          messagesCount
          messages(last: 5) { id payload }
        }
        processes(last: 3) { id status }
      }
    }
  }
}
"""


@pytest.fixture
async def server(runtime: Runtime) -> AsyncIterator[LiveServer]:
    """Like the shared `server`, but with no process workers: the statement log counts every
    statement on the engine, and the dispatcher's background polls must not be counted as the
    request's."""
    port = free_port()
    app = create_app(runtime.settings, runtime, run_worker=False)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    for _ in range(500):
        if uv.started:
            break
        await asyncio.sleep(0.02)
    assert uv.started, "uvicorn did not start"
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield LiveServer(url=url, runtime=runtime, client=client)
    uv.should_exit = True
    await task


class Seeded:
    """What was written, to check the answers against: ids in creation order."""

    def __init__(self) -> None:
        self.workflows: list[str] = []  # oldest first
        self.agents: dict[str, list[str]] = {}  # workflow id -> agent ids (first, second, third)
        self.messages: dict[str, list[str]] = {}  # agent id -> message ids, oldest first
        self.processes: dict[str, list[str]] = {}  # workflow id -> process ids, oldest first


async def seed(server: LiveServer, account: Account) -> Seeded:
    seeded = Seeded()
    for i in range(WORKFLOWS):
        agents = [
            {"name": "start", "type": "manual"},
            {"name": "shape", "type": "transform", "sources": ["start"]},
            {"name": "echo", "type": "message", "sources": ["start"]},
        ]
        body = await server.gql(
            CREATE_WORKFLOW,
            {"input": {"name": f"workflow {i:02d}", "agents": agents}},
            token=account.token,
        )
        created = body["data"]["createWorkflow"]
        by_name = {a["name"]: a["id"] for a in created["agents"]}
        seeded.workflows.append(created["id"])
        seeded.agents[created["id"]] = [by_name["start"], by_name["shape"], by_name["echo"]]

    # Interleave inserts across agents and workflows so that "newest" is decided by number,
    # not by rows happening to sit next to each other.
    async with server.runtime.db.transaction() as session:
        for round_ in range(max(MESSAGES_PER_AGENT)):
            for workflow_id in seeded.workflows:
                for position, agent_id in enumerate(seeded.agents[workflow_id]):
                    if round_ >= MESSAGES_PER_AGENT[position]:
                        continue
                    message = Message(
                        workspace_id=account.workspace_id,
                        agent_id=uuid.UUID(agent_id),
                        workflow_id=uuid.UUID(workflow_id),
                        payload={"round": round_, "agent": agent_id},
                    )
                    session.add(message)
                    seeded.messages.setdefault(agent_id, []).append(str(message.id))
            await session.flush()
        for round_ in range(PROCESSES_PER_WORKFLOW):
            for workflow_id in seeded.workflows:
                process = Process(
                    workspace_id=account.workspace_id,
                    workflow_id=uuid.UUID(workflow_id),
                    status=ProcessStatus.COMPLETED,
                    title=f"run {round_}",
                )
                session.add(process)
                seeded.processes.setdefault(workflow_id, []).append(str(process.id))
            await session.flush()
    return seeded


async def run_counted(
    server: LiveServer, query: str, variables: dict[str, Any], token: str
) -> tuple[dict[str, Any], list[str]]:
    """The response body and every SQL statement the server issued while answering."""
    log = server.runtime.db.statement_log
    log.start()
    try:
        body = await server.gql(query, variables, token=token)
    finally:
        statements = log.stop()
    return body, statements


def check_page(nodes: list[dict[str, Any]], seeded: Seeded, n: int) -> None:
    assert [node["id"] for node in nodes] == list(reversed(seeded.workflows))[:n]
    for node in nodes:
        agent_ids = seeded.agents[node["id"]]
        assert [a["id"] for a in node["agents"]] == agent_ids
        start = agent_ids[0]
        for position, agent in enumerate(node["agents"]):
            expected_sources = [] if position == 0 else [{"id": start}]
            assert agent["sources"] == expected_sources
            written = seeded.messages.get(agent["id"], [])
            assert agent["messagesCount"] == MESSAGES_PER_AGENT[position] == len(written)
            assert [m["id"] for m in agent["messages"]] == list(reversed(written))[:5]
            for message in agent["messages"]:
                assert message["payload"]["agent"] == agent["id"]
        assert [p["id"] for p in node["processes"]] == list(reversed(seeded.processes[node["id"]]))[
            :3
        ]
        assert {p["status"] for p in node["processes"]} == {"COMPLETED"}


def describe(statements: list[str]) -> str:
    return "\n".join(f"  {i + 1}. {' '.join(s.split())[:160]}" for i, s in enumerate(statements))


async def test_fifty_workflows_cost_the_same_statements_as_five(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account(workspace="Loaders")
    seeded = await seed(server, account)

    counts: dict[int, int] = {}
    await server.gql("{ __typename }", token=account.token)  # both counts with the caller cached
    for n in (5, WORKFLOWS):
        body, statements = await run_counted(server, DEEP_QUERY, {"first": n}, account.token)
        nodes = [edge["node"] for edge in body["data"]["workflows"]["edges"]]
        assert len(nodes) == n
        check_page(nodes, seeded, n)
        assert len(statements) <= STATEMENT_BUDGET, (
            f"{len(statements)} statements for {n} workflows:\n{describe(statements)}"
        )
        counts[n] = len(statements)

    assert counts[5] == counts[WORKFLOWS], counts


async def test_fifty_workflows_through_an_api_key_cost_the_same_as_five(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account(workspace="Loaders by key")
    seeded = await seed(server, account)
    key = await factory.api_key(account, privileges=["workflow:read", "process:read"])

    counts: dict[int, int] = {}
    await server.gql("{ __typename }", token=key)  # both counts with the caller cached
    for n in (5, WORKFLOWS):
        body, statements = await run_counted(server, DEEP_QUERY, {"first": n}, key)
        nodes = [edge["node"] for edge in body["data"]["workflows"]["edges"]]
        check_page(nodes, seeded, n)
        counts[n] = len(statements)
    assert counts[5] == counts[WORKFLOWS] <= STATEMENT_BUDGET, counts


async def test_viewer_costs_a_few_statements_however_many_workspaces(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account(workspace="Viewer")
    query = "{ viewer { kind user { id email } workspaces { id name viewerRole } } }"

    body, alone = await run_counted(server, query, {}, account.token)
    assert [w["name"] for w in body["data"]["viewer"]["workspaces"]] == ["Viewer"]

    others = [await factory.account(workspace=f"Other {i}") for i in range(3)]
    async with server.runtime.db.transaction() as session:
        user = (await session.exec(select(User).where(User.id == account.user_id))).one()
        for other in others:
            workspace = (
                await session.exec(select(Workspace).where(Workspace.id == other.workspace_id))
            ).one()
            await add_member(session, workspace, user, Role.MEMBER)

    body, joined = await run_counted(server, query, {}, account.token)
    viewer = body["data"]["viewer"]
    assert viewer["kind"] == "user"
    assert viewer["user"]["email"] == account.email
    assert [(w["name"], w["viewerRole"]) for w in viewer["workspaces"]] == [
        ("Viewer", "OWNER"),
        ("Other 0", "MEMBER"),
        ("Other 1", "MEMBER"),
        ("Other 2", "MEMBER"),
    ]
    assert len(alone) == len(joined) <= 5, f"alone:\n{describe(alone)}\njoined:\n{describe(joined)}"
