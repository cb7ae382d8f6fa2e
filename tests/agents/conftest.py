"""Handler-level fixtures for agent types: an `AgentRun` built around real options and payloads.

Outbound HTTP goes through a real httpx client to loopback targets the tests start; the URL
check allows loopback here (the engine's netguard is tested elsewhere).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from socket import SOCK_STREAM
from typing import Any, Literal

import httpx
import pytest

from flowql.agents.base import AgentRun, Outcome, message_context
from flowql.agents.registry import REGISTRY, validate_options
from flowql.models import Agent, Process
from flowql.settings import Settings

RunAgent = Callable[..., Awaitable[Outcome]]


def make_run(
    agent_type: str,
    options: dict[str, Any],
    payload: dict[str, Any] | None = None,
    *,
    memory: dict[str, Any] | None = None,
    mode: Literal["receive", "check"] = "receive",
    http: httpx.AsyncClient | None = None,
    credentials: dict[str, str] | None = None,
    name: str = "agent",
    settings: Settings | None = None,
) -> AgentRun:
    """An AgentRun for `agent_type` with `options` (validated as the API would) over `payload`."""
    validate_options(agent_type, options)
    workspace_id = uuid.uuid4()
    process = Process(workspace_id=workspace_id, input=payload or {}, privileges=None)
    agent = Agent(
        workspace_id=workspace_id,
        workflow_id=uuid.uuid4(),
        name=name,
        type=agent_type,
        options=options,
    )
    message = dict(payload or {})
    context = message_context(
        message,
        {
            "message": message,
            "process": {"id": str(process.id), "number": 1, "input": message},
            "workflow": {"id": str(agent.workflow_id), "number": 1, "name": "wf", "variables": {}},
            "vars": {},
        },
    )
    client = http or httpx.AsyncClient()

    async def resolve_credential(cred: str) -> str:
        try:
            return (credentials or {})[cred]
        except KeyError:
            raise ValueError(f"no credential named {cred!r}") from None

    async def check_url(url: str) -> None:
        return None

    async def resolve_host(host: str, port: int) -> str:
        # One real lookup, any address allowed (the engine's netguard is tested elsewhere).
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=SOCK_STREAM)
        except OSError:
            raise ValueError(f"host {host!r} cannot be resolved") from None
        return str(infos[0][4][0])

    async def scenario_action(*_: Any) -> dict[str, Any]:
        raise NotImplementedError("scenario actions are tested in tests/engine")

    return AgentRun(
        agent=agent,
        process=process,
        payload=message,
        context=context,
        resolve_credential=resolve_credential,
        http=lambda: client,
        check_url=check_url,
        scenario_action=scenario_action,
        mode=mode,
        memory=memory if memory is not None else {},
        settings=settings or Settings(),
        resolve_host=resolve_host,
    )


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def run_agent(http_client: httpx.AsyncClient) -> RunAgent:
    """`await run_agent("website", options, payload, memory=..., mode=...)` -> Outcome."""

    async def run(
        agent_type: str, options: dict[str, Any], payload: Any = None, **kw: Any
    ) -> Outcome:
        kw.setdefault("http", http_client)
        agent_run = make_run(agent_type, options, payload, **kw)
        return await REGISTRY[agent_type].handler(agent_run)

    return run
