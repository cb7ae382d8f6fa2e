"""A process's history reads well: its messages, every attempt of every step across retries,
and who cancelled or retried it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from flowql.app import create_app
from flowql.models import Agent, Message, Process, ProcessStatus, Workflow
from flowql.services.runtime import Runtime
from tests.conftest import Factory, LiveServer, QuickServer, free_port
from tests.engine.conftest import Target, create_workflow, execute, target, wait_status

__all__ = ["target"]

HISTORY = """
query($id: UUID!) {
  process(id: $id) {
    status
    steps { agent { name } status attempt error }
    logs { message data }
    messages { agent { name } payload }
  }
}"""


async def history(server: LiveServer, token: str, process_id: str) -> dict[str, Any]:
    body = await server.gql(HISTORY, {"id": process_id}, token=token)
    detail: dict[str, Any] = body["data"]["process"]
    return detail


async def test_messages_of_a_process_in_order(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "chain",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "double",
                "type": "transform",
                "sources": ["start"],
                "options": {"payload": {"n": "{{ message.n | times: 2 }}"}},
            },
            {"name": "echo", "type": "message", "sources": ["double"]},
        ],
    )
    process = await execute(server, account.token, workflow["id"], {"n": 4})
    assert process["status"] == "COMPLETED", process
    detail = await history(server, account.token, process["id"])
    assert [(m["agent"]["name"], m["payload"]) for m in detail["messages"]] == [
        ("start", {"n": 4}),
        ("double", {"n": 8}),
        ("echo", {"n": 8}),
    ]


async def test_retry_keeps_attempts_and_logs_who(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    account = await factory.account()
    target.always_fail.add("/down")
    workflow = await create_workflow(
        server,
        account.token,
        "flaky",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "call",
                "type": "http_request",
                "sources": ["start"],
                "maxRetries": 1,
                "options": {"url": target.url + "/down", "method": "POST"},
            },
        ],
    )
    process = await execute(server, account.token, workflow["id"])
    assert process["status"] == "FAILED", process
    detail = await history(server, account.token, process["id"])
    call = next(s for s in detail["steps"] if s["agent"]["name"] == "call")
    assert call["attempt"] == 2  # the first try and its one automatic retry

    retried = await server.gql(
        "mutation($id: UUID!) { retryProcess(id: $id) { status } }",
        {"id": process["id"]},
        token=account.token,
    )
    assert retried["data"]["retryProcess"]["status"] == "PENDING"
    detail = await wait_status(server, account.token, process["id"], {"FAILED"})
    detail = await history(server, account.token, process["id"])
    call = next(s for s in detail["steps"] if s["agent"]["name"] == "call")
    assert call["attempt"] == 3, call  # numbers go on: not back to 1
    messages = [line["message"] for line in detail["logs"]]
    retry_line = next(m for m in messages if m.startswith("retried by"))
    assert retry_line.startswith(f"retried by {account.email} (retry 1)")
    resume = next(line for line in detail["logs"] if line["message"].startswith("step resumes"))
    assert resume["data"]["attempt"] == 2
    assert "answered 500" in resume["message"]
    # Every attempt stays in the log, before and after the retry.
    started = [m for m in messages if m.startswith("call: started")]
    assert len(started) == 3, messages
    assert len(target.hits("/down")) == 3
    assert messages.index(retry_line) > max(messages.index(m) for m in started[:2])


async def test_cancel_logs_who(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    key = await factory.api_key(account)
    workflow = await create_workflow(
        server,
        account.token,
        "slow",
        [
            {"name": "start", "type": "manual"},
            {"name": "wait", "type": "delay", "sources": ["start"], "options": {"seconds": 600}},
        ],
    )
    for token, who in ((account.token, account.email), (key, "API key 'test key'")):
        process = await execute(server, token, workflow["id"], wait=False)
        await wait_status(server, token, process["id"], {"WAITING"})
        cancelled = await server.gql(
            "mutation($id: UUID!) { cancelProcess(id: $id) { status } }",
            {"id": process["id"]},
            token=token,
        )
        assert cancelled["data"]["cancelProcess"]["status"] == "CANCELLED"
        detail = await history(server, account.token, process["id"])
        line = detail["logs"][-1]
        assert line["message"] == f"cancelled by {who}"
        assert line["data"] == {"by": who}


@pytest.fixture
async def quiet(runtime: Runtime) -> AsyncIterator[LiveServer]:
    """A server without process workers: the statement log counts only the request's."""
    port = free_port()
    app = create_app(runtime.settings, runtime, run_worker=False)
    import uvicorn

    uv = QuickServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield LiveServer(url=url, runtime=runtime, client=client)
    uv.stop()
    await task


async def test_messages_of_a_page_of_processes_cost_one_statement(
    quiet: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    async with quiet.runtime.db.transaction() as session:
        workflow = Workflow(workspace_id=account.workspace_id, name="seeded")
        session.add(workflow)
        await session.flush()
        agent = Agent(
            workspace_id=account.workspace_id, workflow_id=workflow.id, name="a", type="message"
        )
        session.add(agent)
        await session.flush()
        for i in range(20):
            process = Process(
                workspace_id=account.workspace_id,
                workflow_id=workflow.id,
                status=ProcessStatus.COMPLETED,
            )
            session.add(process)
            await session.flush()
            for j in range(3):
                session.add(
                    Message(
                        workspace_id=account.workspace_id,
                        agent_id=agent.id,
                        workflow_id=workflow.id,
                        process_id=process.id,
                        payload={"i": i, "j": j},
                    )
                )
        await session.flush()
    query = """query($n: Int!) { processes(first: $n) { nodes { id messages { id payload
               agent { name } } } } }"""
    counts = {}
    await quiet.gql("{ __typename }", token=account.token)  # both counts with the caller cached
    for n in (2, 20):
        log = quiet.runtime.db.statement_log
        log.start()
        try:
            body = await quiet.gql(query, {"n": n}, token=account.token)
        finally:
            statements = log.stop()
        nodes = body["data"]["processes"]["nodes"]
        assert len(nodes) == n
        assert all([m["payload"]["j"] for m in node["messages"]] == [0, 1, 2] for node in nodes)
        counts[n] = len(statements)
    assert counts[2] == counts[20], counts
    assert uuid.UUID(nodes[0]["id"])
