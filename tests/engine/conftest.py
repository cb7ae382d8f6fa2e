"""Engine fixtures: a real HTTP target on loopback that records calls and can fail or stall."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import LiveServer, start_server


@dataclass
class Target:
    """A loopback HTTP server. `fail_first[path]` = n: answer 500 n times, then 200."""

    url: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)
    always_fail: set[str] = field(default_factory=set)
    stall: dict[str, float] = field(default_factory=dict)

    def hits(self, path: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["path"] == path]


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    state = Target(url="")

    async def handle(request: Request) -> Response:
        path = "/" + request.path_params["path"]
        body = await request.body()
        state.calls.append(
            {"path": path, "method": request.method, "headers": dict(request.headers), "body": body}
        )
        if path in state.stall:
            await asyncio.sleep(state.stall[path])
        if path in state.always_fail:
            return JSONResponse({"error": "down"}, status_code=500)
        if state.fail_first.get(path, 0) > 0:
            state.fail_first[path] -= 1
            return JSONResponse({"error": "flaky"}, status_code=503)
        return JSONResponse({"ok": True, "path": path, "n": len(state.hits(path))})

    app = Starlette(
        routes=[Route("/{path:path}", handle, methods=["GET", "POST", "PUT", "DELETE"])]
    )
    server, task, url = await start_server(app)
    state.url = url
    yield state
    server.stop()
    await task


CREATE = """
mutation($input: CreateWorkflowInput!) {
  createWorkflow(input: $input) { id number agents { id name } }
}
"""

PROCESS = """
query($id: UUID!) {
  process(id: $id) {
    id status error output input
    steps { agent { name } status attempt error }
    logs { message level }
  }
}
"""


async def create_workflow(
    server: LiveServer,
    token: str,
    name: str,
    agents: list[dict[str, Any]],
    status: str = "PUBLISHED",  # a draft's triggers do not fire
) -> dict[str, Any]:
    body = await server.gql(
        CREATE, {"input": {"name": name, "agents": agents, "status": status}}, token=token
    )
    workflow: dict[str, Any] = body["data"]["createWorkflow"]
    return workflow


async def execute(
    server: LiveServer,
    token: str,
    workflow_id: str,
    input: dict[str, Any] | None = None,
    wait: bool = True,
    key: str | None = None,
) -> dict[str, Any]:
    body = await server.gql(
        """mutation($id: UUID!, $input: JSON, $wait: Boolean!, $key: String) {
          executeWorkflow(id: $id, input: $input, wait: $wait, waitTimeout: 20, idempotencyKey: $key)
          { id status error output }
        }""",
        {"id": workflow_id, "input": input or {}, "wait": wait, "key": key},
        token=token,
    )
    process: dict[str, Any] = body["data"]["executeWorkflow"]
    return process


async def process_detail(server: LiveServer, token: str, process_id: str) -> dict[str, Any]:
    body = await server.gql(PROCESS, {"id": process_id}, token=token)
    detail: dict[str, Any] = body["data"]["process"]
    return detail


async def wait_status(
    server: LiveServer, token: str, process_id: str, statuses: set[str], timeout: float = 20
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        detail = await process_detail(server, token, process_id)
        if detail["status"] in statuses:
            return detail
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"process stayed {detail['status']}: {detail}")
        await asyncio.sleep(0.1)
