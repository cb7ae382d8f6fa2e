"""Shared pieces of the abuse tests: every entry point that takes a body, each family's error
format, and a snapshot of what is stored (to prove a refused request stored nothing); one real
threaded server per module for the fuzzers (see live.py), and a summary line per fuzzer and for the
tenancy matrix at the end of the run, visible in `pytest -q` with or without `-s`."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from flowql.rest_compat import FAMILIES
from flowql.settings import Settings
from tests.conftest import LiveServer
from tests.security.live import ThreadedServer, serve_in_thread

BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
TABLES = (
    "workflows",
    "agents",
    "triggers",
    "events",
    "processes",
    "process_events",
    "messages",
    "scenarios",
    "api_keys",
    "credentials",
    "forms",
    "form_submissions",
    "webhook_subscriptions",
    "integrations",
)
_PARAM = re.compile(r"{([a-zA-Z_]+)(?::([a-z]+))?}")


def concrete(path: str) -> str:
    """A route's path with its parameters filled in (the ids need not exist)."""

    def value(match: re.Match[str]) -> str:
        kind = match.group(2)
        if kind == "uuid":
            return str(uuid.uuid4())
        if kind == "int" or match.group(1) == "id":
            return "wf_1" if match.group(1) == "id" else "1"
        return "approve"

    return _PARAM.sub(value, path)


def rest_routes() -> list[tuple[str, str]]:
    """(method, URL path) of every documented REST route that takes a body."""
    return [
        (endpoint.method, family.PREFIX + concrete(endpoint.path))
        for family in FAMILIES
        for endpoint in family.ENDPOINTS
        if endpoint.method in BODY_METHODS
    ]


def assert_family_error(response: httpx.Response, status: int, says: str | None = None) -> None:
    """`status`, in the error format of the mount the request went to, saying `says`."""
    assert response.status_code == status, (response.request.url, response.text[:300])
    body = response.json()
    path = response.request.url.path
    if path.startswith("/v1"):
        assert body["success"] is False and body["error"]["code"], body
        message = body["error"]["message"]
    elif path.startswith("/compat/activeworkflow"):
        assert body["error"].startswith(str(status)), body
        message = None
    elif path.startswith("/compat/letsflow"):
        assert body["error"]["code"], body
        message = body["error"]["message"]
    elif path.startswith(("/compat/wayscript", "/hooks")):
        message = body.get("error") or body.get("Error")
        assert isinstance(message, str), body
    else:
        assert body["data"] is None and body["errors"][0]["extensions"]["code"], body
        message = body["errors"][0]["message"]
    if says is not None and message is not None:
        assert says.lower() in message.lower(), (path, message)


async def stored(server: LiveServer) -> dict[str, int]:
    counts = {}
    async with server.runtime.db.engine.connect() as conn:
        for table in TABLES:
            result = await conn.execute(text(f"SELECT count(*) FROM {table}"))
            counts[table] = int(result.scalar_one())
    return counts


async def webhook_workflow(server: LiveServer, token: str) -> dict[str, Any]:
    body = await server.gql(
        """mutation($input: CreateWorkflowInput!) {
          createWorkflow(input: $input) { id number } }""",
        {
            "input": {
                "name": "inbox",
                "status": "PUBLISHED",  # a draft's hooks do not fire
                "agents": [{"name": "inbox", "type": "webhook", "options": {"path": "in"}}],
            }
        },
        token=token,
    )
    workflow: dict[str, Any] = body["data"]["createWorkflow"]
    return workflow


LIMIT = 64 * 1024


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Smaller body limits than the defaults, so refusals are quick to provoke."""
    return settings.model_copy(update={"max_body_bytes": LIMIT, "hooks_max_body_bytes": LIMIT})


@pytest.fixture(scope="module")
def threaded_server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedServer]:
    with serve_in_thread(sqlite_template, tmp_path_factory.mktemp("security")) as server:
        yield server
