"""Scale-out fixtures: PostgreSQL only; a Cluster of real `flowql serve --no-worker` and
`flowql worker` subprocesses on loopback ports sharing this test's fresh database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from flowql.engine.queue import prepare_database
from flowql.settings import Bus as BusKind
from flowql.settings import Dispatcher, Settings
from tests.conftest import free_port
from tests.engine.conftest import Target, target  # noqa: F401  (the fixture, for these tests)

FLOWQL = str(Path(sys.executable).parent / "flowql")


@pytest.fixture(params=["postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Scale-out needs PostgreSQL: these tests never run on SQLite."""
    backend: str = request.param
    return backend


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings = settings.model_copy(
        update={"dispatcher": Dispatcher.PROCRASTINATE, "bus": BusKind.POSTGRES}
    )
    prepare_database(settings)  # procrastinate's schema on top of the template's
    return settings


def cluster_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "FLOWQL_DATABASE_URL": str(settings.database_url),
        "FLOWQL_DATA_DIR": str(settings.data_dir),
        "FLOWQL_SECRET_KEY": str(settings.secret_key),
        "FLOWQL_ENCRYPTION_KEYS": str(settings.encryption_keys),
        "FLOWQL_DEMO_ACCOUNTS": "false",
        "FLOWQL_ALLOW_PRIVATE_NETWORKS": "true",
        "FLOWQL_RATE_LIMITS_ENABLED": "false",
        "FLOWQL_DISPATCHER": "procrastinate",
        "FLOWQL_BUS": "postgres",
        "FLOWQL_SCHEDULER_INTERVAL": "0.2",
        "FLOWQL_RETRY_BACKOFF_SECONDS": "0.1",
        "FLOWQL_WEBHOOK_BACKOFF_SECONDS": "0.1",
        "FLOWQL_WORKER_HEARTBEAT_INTERVAL": "0.5",
        "FLOWQL_WORKER_STALLED_TIMEOUT": "3",
        "FLOWQL_SUBSCRIPTION_QUEUE_SIZE": "5000",
        **extra,
    }


@dataclass
class Node:
    name: str
    kind: str  # "serve" | "worker"
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ran(self) -> list[str]:
        """Process ids this worker logged as run."""
        return re.findall(r"ran process ([0-9a-f-]{36})", self.output())

    def procrastinate_id(self) -> int:
        found = re.search(r"procrastinate worker (\d+)\)", self.output())
        assert found, self.output()
        return int(found.group(1))


@dataclass
class Cluster:
    settings: Settings
    tmp_path: Path
    nodes: dict[str, Node] = field(default_factory=dict)

    async def start(self, serve: list[str], workers: list[str], concurrency: int = 4) -> None:
        """Start every node at once, then wait for each one's /readyz."""
        env = cluster_env(self.settings)
        for name in serve + workers:
            port = free_port()
            log = self.tmp_path / f"{name}.log"
            if name in serve:
                argv = [FLOWQL, "serve", "--no-worker", "--port", str(port)]
                argv += ["--log-level", "warning"]
            else:
                argv = [FLOWQL, "worker", "--concurrency", str(concurrency)]
                argv += ["--health-port", str(port)]
            proc = subprocess.Popen(argv, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
            kind = "serve" if name in serve else "worker"
            self.nodes[name] = Node(name, kind, port, proc, log)
        await asyncio.gather(*(self.ready(node) for node in self.nodes.values()))

    async def ready(self, node: Node, timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient() as client:
            while asyncio.get_running_loop().time() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(node.url + "/readyz")).status_code == 200:
                        return
                if node.proc.poll() is not None:
                    raise AssertionError(f"{node.name} exited: {node.output()[-3000:]}")
                await asyncio.sleep(0.1)
        raise AssertionError(f"{node.name} not ready: {node.output()[-3000:]}")

    def kill9(self, name: str) -> None:
        node = self.nodes[name]
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes.values():
            try:
                node.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(settings, tmp_path)
    yield cluster
    cluster.stop()


class Client:
    """GraphQL over HTTP against one replica."""

    def __init__(self, node: Node, token: str) -> None:
        self.node = node
        self.http = httpx.AsyncClient(
            base_url=node.url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        )

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}
        )
        body: dict[str, Any] = response.json()
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data

    async def create_workflow(self, name: str, agents: list[dict[str, Any]]) -> dict[str, Any]:
        data = await self.gql(
            "mutation($i: CreateWorkflowInput!) { createWorkflow(input: $i) "
            "{ id agents { id name } } }",
            {"i": {"name": name, "agents": agents, "status": "PUBLISHED"}},
        )
        workflow: dict[str, Any] = data["createWorkflow"]
        return workflow

    async def execute(self, workflow_id: str, input: dict[str, Any]) -> str:
        data = await self.gql(
            "mutation($id: UUID!, $input: JSON) { executeWorkflow(id: $id, input: $input) { id } }",
            {"id": workflow_id, "input": input},
        )
        process_id: str = data["executeWorkflow"]["id"]
        return process_id

    async def execute_many(self, workflow_id: str, count: int, concurrency: int = 8) -> list[str]:
        gate = asyncio.Semaphore(concurrency)

        async def one(n: int) -> str:
            async with gate:
                return await self.execute(workflow_id, {"n": n})

        return list(await asyncio.gather(*(one(n) for n in range(count))))

    async def close(self) -> None:
        await self.http.aclose()


class Feed:
    """One graphql-transport-ws subscription on a replica."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, node: Node, token: str, query: str, variables: dict[str, Any]
    ) -> AsyncIterator[Feed]:
        url = node.url.replace("http://", "ws://") + "/graphql"
        async with connect(
            url, subprotocols=[Subprotocol("graphql-transport-ws")], max_size=None
        ) as conn:
            await conn.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
                )
            )
            ack = json.loads(await asyncio.wait_for(conn.recv(), 10))
            assert ack["type"] == "connection_ack", ack
            payload = {"query": query, "variables": variables}
            await conn.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            yield cls(conn)

    async def next(self, timeout: float) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.conn.recv(), timeout))
            if message["type"] == "ping":
                await self.conn.send(json.dumps({"type": "pong"}))
                continue
            if message["type"] == "pong":
                continue
            assert message["type"] == "next", message
            assert not message["payload"].get("errors"), message
            data: dict[str, Any] = message["payload"]["data"]
            return data


def query_all(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Plain SQL against the cluster's database (procrastinate's tables have no models)."""
    url = str(settings.database_url)
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())  # type: ignore[call-overload]
