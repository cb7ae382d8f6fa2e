"""`health` on PostgreSQL with procrastinate: this server's worker is listed from procrastinate's
own worker table with its heartbeat, and the queue depth counts the workspace's PENDING
processes. Runs when CI=true (PostgreSQL is required there)."""

from __future__ import annotations

import pytest

from flowql.engine.queue import prepare_database
from flowql.settings import Bus as BusKind
from flowql.settings import Dispatcher, Settings
from tests.conftest import Factory, LiveServer
from tests.console.conftest import data_of

HEALTH = """query($ws: UUID!) { health(workspaceId: $ws) {
  dispatcher queueDepth workers { id name lastHeartbeatAt } } }"""


@pytest.fixture(params=["postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings = settings.model_copy(
        update={"dispatcher": Dispatcher.PROCRASTINATE, "bus": BusKind.POSTGRES}
    )
    prepare_database(settings)
    return settings


async def test_health_lists_procrastinate_workers_with_their_heartbeat(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    body = await server.gql(HEALTH, {"ws": str(owner.workspace_id)}, token=owner.token)
    health = data_of(body)["health"]
    assert health["dispatcher"] == "procrastinate"
    assert health["queueDepth"] == 0
    [worker] = health["workers"]
    assert worker["id"].isdigit() and worker["name"] == f"procrastinate worker {worker['id']}"
    assert worker["lastHeartbeatAt"]
