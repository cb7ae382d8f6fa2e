"""The feeds on the PostgreSQL bus (FLOWQL_BUS=postgres): events come back through LISTEN, and a
lost LISTEN connection (what a database restart does) is recovered from without a gap."""

from __future__ import annotations

import psycopg
import pytest

from flowql.settings import Bus
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute, wait_status
from tests.subscriptions.conftest import TRANSPORT_WS, WS, wait_subscribers
from tests.subscriptions.test_feeds import PROCESS_EVENTS, PROCESS_LOGS, PROCESS_UPDATED, SLOW_CHAIN

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("backend", ["postgres"]),
    pytest.mark.settings(bus=Bus.POSTGRES),
]


def kill_listener(server: LiveServer) -> None:
    with psycopg.connect(str(server.runtime.settings.database_url)) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'flowql-bus' AND datname = current_database()"
        ).fetchall()
    assert killed == [(True,)]


async def written_logs(server: LiveServer, token: str, process_id: str) -> list[dict[str, str]]:
    body = await server.gql(
        "query($id: UUID!) { process(id: $id) { logs { id number message } } }",
        {"id": process_id},
        token=token,
    )
    logs: list[dict[str, str]] = body["data"]["process"]["logs"]
    return logs


async def test_feeds_run_over_the_postgres_bus(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "pg", SLOW_CHAIN)
    process = await execute(server, account.token, workflow["id"], wait=False)
    await wait_status(server, account.token, process["id"], {"RUNNING", "WAITING"})
    async with (
        WS.open(server, TRANSPORT_WS, token=account.token) as updates,
        WS.open(server, TRANSPORT_WS, token=account.token) as logs,
    ):
        await updates.subscribe("u", PROCESS_UPDATED, {"id": process["id"]})
        await logs.subscribe("l", PROCESS_LOGS, {"id": process["id"], "fromStart": True})
        statuses = [u["status"] for u in await updates.collect("u", "processUpdated")]
        lines = await logs.collect("l", "processLogs")
    assert statuses[-1] == "COMPLETED" and len(statuses) >= 6
    assert lines == await written_logs(server, account.token, process["id"])


async def test_a_lost_listen_connection_is_caught_up_without_a_gap(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "gap", SLOW_CHAIN)
    process = await execute(server, account.token, workflow["id"], wait=False)
    await wait_status(server, account.token, process["id"], {"RUNNING", "WAITING"})
    async with (
        WS.open(server, TRANSPORT_WS, token=account.token) as updates,
        WS.open(server, TRANSPORT_WS, token=account.token) as logs,
        WS.open(server, TRANSPORT_WS, token=account.token) as feed,
    ):
        await updates.subscribe("u", PROCESS_UPDATED, {"id": process["id"]})
        await logs.subscribe("l", PROCESS_LOGS, {"id": process["id"], "fromStart": True})
        await feed.subscribe("f", PROCESS_EVENTS)
        await wait_subscribers(server, 3)
        kill_listener(server)
        statuses = [u["status"] for u in await updates.collect("u", "processUpdated")]
        lines = await logs.collect("l", "processLogs")
        events = [event async for event in feed.events("f")]
    assert statuses[-1] == "COMPLETED"
    assert lines == await written_logs(server, account.token, process["id"])
    kind, payload = events[-2]
    assert kind == "next" and payload is not None
    assert payload["errors"][0]["extensions"]["code"] == "EVENTS_MISSED"
    assert events[-1][0] == "complete"
