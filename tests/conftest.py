"""Shared fixtures: a migrated database per test (SQLite and PostgreSQL), a live uvicorn server,
and factories for users, workspaces and tokens.

Storage-touching tests take the `backend` fixture, parametrized over sqlite and postgres.
PostgreSQL tests run against 127.0.0.1:5432 (FLOWQL_TEST_POSTGRES_URL to change it). With
CI=true they must run: a missing server fails them loudly; elsewhere they skip with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlmodel import select

from flowql.app import build_runtime, create_app
from flowql.db import upgrade
from flowql.models import Role, Workspace
from flowql.services.auth import create_api_key, create_user, login
from flowql.services.runtime import Runtime
from flowql.services.workspaces import add_member, create_workspace
from flowql.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_URL = os.environ.get("FLOWQL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
# One template per pytest run, so parallel runs on one machine never drop each other's.
TEMPLATE_DB = f"flowql_test_template_{os.getpid()}"
PASSWORD = "correct-horse-battery"


def pytest_configure(config: pytest.Config) -> None:
    # The fuzzers' and the tenancy matrix's counts, in the terminal summary (with or without xdist).
    from tests.security.live import SummaryPlugin

    config.pluginmanager.register(SummaryPlugin(), SummaryPlugin.name)


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        with psycopg.connect(f"{POSTGRES_URL}/postgres", connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}"
    return None


def require_postgres() -> None:
    reason = postgres_available()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(Settings(database_url=f"sqlite:///{path}"))
    return path


class Dropper:
    """Drops finished tests' PostgreSQL databases on a background thread, one after another.

    DROP DATABASE waits for a checkpoint (a second or more on a busy machine); no test needs to
    wait for the previous test's database to go. The session waits for the last drop at its end.
    """

    def __init__(self) -> None:
        self.names: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="drop-test-databases", daemon=True)
        self.thread.start()

    def drop(self, name: str) -> None:
        self.names.put(name)

    def _run(self) -> None:
        while (name := self.names.get()) is not None:
            try:
                with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error:
                pass  # the server went away: nothing left to clean

    def close(self) -> None:
        self.names.put(None)
        self.thread.join()


@pytest.fixture(scope="session")
def postgres_dropper() -> Iterator[Dropper]:
    dropper = Dropper()
    yield dropper
    dropper.close()


@pytest.fixture(scope="session")
def postgres_template(postgres_dropper: Dropper) -> Iterator[str]:
    require_postgres()
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    upgrade(Settings(database_url=f"{POSTGRES_URL}/{TEMPLATE_DB}"))
    yield TEMPLATE_DB
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for this test."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "flowql.db"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("postgres_template")
    name = f"flowql_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    yield f"{POSTGRES_URL}/{name}"
    request.getfixturevalue("postgres_dropper").drop(name)


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test server: fresh keys, quick retries and ticks, no demo account."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": "test-secret-key-" + "x" * 32,
        "encryption_keys": Fernet.generate_key().decode(),
        "demo_accounts": False,
        "allow_private_networks": True,
        "retry_backoff_seconds": 0.05,
        "webhook_backoff_seconds": 0.05,
        "scheduler_interval": 0.1,
        # Tests poll freely; tests/api/test_rate_limits.py turns the limits on.
        "rate_limits_enabled": False,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data")


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    yield runtime
    await runtime.db.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerErrors:
    """Wraps the app under test and records every 5xx it answers: no request in any test may
    get one. /hooks is left out: there a workflow answers its caller (502, 504 or its own)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 500:
                self.seen.append(f"{scope['method']} {scope['path']}: {message['status']}")
            await send(message)

        watched = scope["type"] == "http" and not scope["path"].startswith(("/hooks/", "/readyz"))
        await self.app(scope, receive, watch if watched else send)


class QuickServer(uvicorn.Server):
    """uvicorn as `flowql serve` runs it, minus its 0.1 s polling: the main loop wakes as soon as
    `stop()` is called, and shutdown waits for connections in 10 ms steps, not 100 ms ones (a
    fixed 0.15-0.25 s per test that starts a server, hundreds of times a run)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self.should_exit = True
        self._stop.set()

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        while self.server_state.connections or self.server_state.tasks:
            await asyncio.sleep(0.01)
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()


async def start_server(app: Any, **options: Any) -> tuple[QuickServer, asyncio.Task[None], str]:
    """A QuickServer on a free loopback port, started (in this event loop)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    uv = QuickServer(config)
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        if task.done():
            task.result()  # the server failed to start: say why
        await asyncio.sleep(0.005)
    return uv, task, f"http://127.0.0.1:{port}"


@dataclass
class LiveServer:
    url: str
    runtime: Runtime
    client: httpx.AsyncClient

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        expect_errors: bool = False,
    ) -> dict[str, Any]:
        """POST a GraphQL operation; returns the whole JSON body."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        if not expect_errors and body.get("errors"):
            raise AssertionError(f"unexpected GraphQL errors: {body['errors']}")
        return body


@pytest.fixture
async def server(runtime: Runtime) -> AsyncIterator[LiveServer]:
    """A real uvicorn server on a free loopback port, in this test's event loop."""
    app = ServerErrors(create_app(runtime.settings, runtime))
    uv, task, url = await start_server(app, lifespan="on", ws="websockets-sansio")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield LiveServer(url=url, runtime=runtime, client=client)
    uv.stop()
    await task
    assert not app.seen, f"the server answered 5xx: {app.seen}"


@dataclass
class Account:
    user_id: uuid.UUID
    email: str
    workspace_id: uuid.UUID
    token: str
    refresh_token: str


class Factory:
    """Makes rows through the services, as a user of the API would end up with them."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def account(
        self, workspace: str | None = None, role: Role = Role.OWNER, join: uuid.UUID | None = None
    ) -> Account:
        """A user with its own workspace (or joining `join` with `role`), logged in."""
        email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        async with self.runtime.db.transaction() as session:
            user = await create_user(session, email, PASSWORD)
            if join is None:
                ws = await create_workspace(session, user, workspace or f"ws-{email}")
                workspace_id = ws.id
            else:
                ws = (await session.exec(select(Workspace).where(Workspace.id == join))).one()
                await add_member(session, ws, user, role)
                workspace_id = join
        async with self.runtime.db.transaction() as session:
            pair = await login(session, self.runtime.settings, email, PASSWORD)
        return Account(user.id, email, workspace_id, pair.access_token, pair.refresh_token)

    async def api_key(
        self, account: Account, privileges: list[str] | None = None, **kwargs: Any
    ) -> str:
        async with self.runtime.db.transaction() as session:
            issued = await create_api_key(
                session,
                account.workspace_id,
                "test key",
                user_id=account.user_id,
                privileges=privileges,
                **kwargs,
            )
        return issued.token


@pytest.fixture
def factory(runtime: Runtime) -> Factory:
    return Factory(runtime)


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    """The extensions of a response's first GraphQL error."""
    assert body.get("errors"), body
    extensions: dict[str, Any] = body["errors"][0]["extensions"]
    return extensions


async def raw_rows(server: LiveServer, table: str) -> list[tuple[Any, ...]]:
    """Every row of `table` as stored, for checks that secrets never reach the disk in clear."""
    async with server.runtime.db.engine.connect() as conn:
        result = await conn.execute(text(f"SELECT * FROM {table} ORDER BY number"))
        return [tuple(row) for row in result.all()]
