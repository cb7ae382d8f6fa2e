"""A real server whose event loop runs in a thread of its own, so synchronous clients
(hypothesis, schemathesis-style loops) can call it; and the summary lines the fuzzers and the
tenancy matrix print at the end of the run (SummaryPlugin, registered by tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from flowql.app import build_runtime, create_app
from flowql.services.runtime import Runtime
from tests.conftest import Account, Factory, ServerErrors, free_port, make_settings

T = TypeVar("T")

# Lines the fuzzers and the matrix report. They travel on the reporting test's report
# (`user_properties`), so they reach the terminal summary from pytest-xdist workers too.
SUMMARY_PROPERTY = "flowql-summary"
_PENDING: list[str] = []


def report(line: str) -> None:
    _PENDING.append(line)


class SummaryPlugin:
    """Prints the reported lines in pytest's terminal summary, so `pytest -q` shows them
    without `-s`, with or without xdist (registered by the root conftest)."""

    name = "flowql-fuzz-summary"

    def __init__(self) -> None:
        self.lines: list[str] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        while _PENDING:
            item.user_properties.append((SUMMARY_PROPERTY, _PENDING.pop(0)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.lines += [v for k, v in report.user_properties if k == SUMMARY_PROPERTY]

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.section("fuzzers and tenancy matrix")
            for line in self.lines:
                terminalreporter.write_line(line)


@dataclass
class ThreadedServer:
    """A uvicorn server on a loopback port, its event loop in a thread of its own."""

    url: str
    runtime: Runtime
    loop: asyncio.AbstractEventLoop
    client: httpx.Client

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the server's loop (for factories that use its database)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def post(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """POST a GraphQL operation that must succeed; returns its data."""
        body: dict[str, Any] = self.post(query, variables, token).json()
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data

    def account(self, join: Account | None = None, **kwargs: Any) -> Account:
        factory = Factory(self.runtime)
        if join is not None:
            kwargs["join"] = join.workspace_id
        return self.run(factory.account(**kwargs))


@contextlib.contextmanager
def serve_in_thread(sqlite_template: Path, tmp: Path) -> Iterator[ThreadedServer]:
    """A server on a copy of the migrated SQLite template, until the block ends."""
    database = tmp / "flowql.db"
    shutil.copy(sqlite_template, database)
    settings = make_settings(f"sqlite:///{database}", tmp / "data", allow_private_networks=False)
    loop = asyncio.new_event_loop()
    port = free_port()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        runtime = build_runtime(settings)
        holder["runtime"] = runtime
        errors = ServerErrors(create_app(runtime.settings, runtime))
        holder["errors"] = errors
        config = uvicorn.Config(
            errors,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
        server = uvicorn.Server(config)
        holder["server"] = server
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        started.set()
        await task

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve())
        finally:
            started.set()
            loop.close()

    thread = threading.Thread(target=main, name="security-server", daemon=True)
    thread.start()
    assert started.wait(30) and holder["server"].started, "the server did not start"
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=60) as client:
        yield ThreadedServer(url=url, runtime=holder["runtime"], loop=loop, client=client)
    holder["server"].should_exit = True
    thread.join(30)
    assert not holder["errors"].seen, f"the server answered 5xx: {holder['errors'].seen}"
