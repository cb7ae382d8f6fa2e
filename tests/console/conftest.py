"""One real flowql server (SQLite, inline dispatcher) and one loopback HTTP target for every
console test in a module; the browser tests share one headless Chromium too."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowql.app import build_runtime, create_app
from tests.conftest import Factory, LiveServer, ServerErrors, make_settings, start_server
from tests.engine.conftest import Target


@contextlib.asynccontextmanager
async def serve(sqlite_template: Path, tmp: Path, **overrides: Any) -> AsyncIterator[LiveServer]:
    """A real server on a copy of the migrated SQLite template, until the block ends."""
    database = tmp / "flowql.db"
    shutil.copy(sqlite_template, database)
    runtime = build_runtime(make_settings(f"sqlite:///{database}", tmp / "data", **overrides))
    app = ServerErrors(create_app(runtime.settings, runtime))
    uv, task, url = await start_server(app, lifespan="on", ws="websockets-sansio")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield LiveServer(url=url, runtime=runtime, client=client)
    uv.stop()
    await task
    await runtime.db.dispose()
    assert not app.seen, f"the server answered 5xx: {app.seen}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console_server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    async with serve(sqlite_template, tmp_path_factory.mktemp("console")) as server:
        yield server


@pytest.fixture(scope="module")
def console_factory(console_server: LiveServer) -> Factory:
    return Factory(console_server.runtime)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console_target() -> AsyncIterator[Target]:
    """A loopback HTTP target (as tests/engine's) that lives as long as the module's server."""
    state = Target(url="")

    async def handle(request: Request) -> Response:
        path = "/" + request.path_params["path"]
        state.calls.append({"path": path, "method": request.method, "body": await request.body()})
        if path in state.always_fail:
            return JSONResponse({"error": "down"}, status_code=500)
        return JSONResponse({"ok": True, "path": path, "n": len(state.hits(path))})

    app = Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])
    server, task, url = await start_server(app)
    state.url = url
    yield state
    server.stop()
    await task


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so a failing browser test can save what it saw."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
