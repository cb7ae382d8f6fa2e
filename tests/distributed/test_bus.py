"""The PostgreSQL bus: events cross processes through NOTIFY/LISTEN, large payloads travel by
reference, and a lost LISTEN connection comes back and tells subscribers about the gap."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from flowql.app import build_runtime
from flowql.events.bus import BusEvent, Subscription
from flowql.events.postgres import GAP_TOPIC, NOTIFY_LIMIT, PostgresBus, encode
from flowql.services.runtime import Runtime
from flowql.settings import Settings
from tests.distributed.conftest import query_all

pytestmark = pytest.mark.postgres

WORKSPACE = uuid.uuid4()


@pytest.fixture
async def listening(runtime: Runtime) -> AsyncIterator[PostgresBus]:
    """A second process's bus, on the same database, listening."""
    bus = runtime.bus
    assert isinstance(bus, PostgresBus)
    other = PostgresBus(bus.conninfo, runtime.db)
    await other.start()
    assert other.connected
    yield other
    await other.stop()


async def next_event(subscription: Subscription, timeout: float = 10) -> BusEvent:
    event = await asyncio.wait_for(subscription.queue.get(), timeout)
    assert event is not None
    return event


async def test_events_published_by_one_process_reach_anothers_subscribers_in_order(
    runtime: Runtime, listening: PostgresBus
) -> None:
    publisher = runtime.bus

    def mine(event: BusEvent) -> bool:
        return event.workspace_id == WORKSPACE

    async with listening.subscribe(mine, maxsize=10) as subscription:
        await publisher.publish([BusEvent("other", uuid.uuid4(), {"skip": True})])
        sent = [BusEvent("process.updated", WORKSPACE, {"n": n, "ok": True}) for n in range(5)]
        await publisher.publish(sent)
        received = [await next_event(subscription) for _ in sent]
    assert [e.data for e in received] == [e.data for e in sent]
    assert [e.id for e in received] == [e.id for e in sent]
    assert all(e.workspace_id == WORKSPACE and e.topic == "process.updated" for e in received)
    assert listening.subscriber_count == 0


async def test_a_large_event_arrives_with_its_ids_and_without_its_large_fields(
    runtime: Runtime, listening: PostgresBus
) -> None:
    process_id = str(uuid.uuid4())
    big = BusEvent(
        "process.updated",
        WORKSPACE,
        {"process_id": process_id, "status": "RUNNING", "state": "x" * 20000},
    )
    assert len(encode(big).encode()) <= NOTIFY_LIMIT
    async with listening.subscribe(lambda e: True, maxsize=10) as subscription:
        await runtime.bus.publish([big])
        event = await next_event(subscription)
    assert event.id == big.id
    assert event.data == {"process_id": process_id, "status": "RUNNING", "truncated": True}


async def test_a_lost_listen_connection_reconnects_and_reports_the_gap(
    runtime: Runtime, listening: PostgresBus
) -> None:
    async with listening.subscribe(lambda e: e.workspace_id == WORKSPACE, 10) as subscription:
        # What a database restart does to the listener: its backend is terminated.
        killed = query_all(
            runtime.settings,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'flowql-bus' AND datname = current_database()",
        )
        assert killed == [(True,)]
        gap = await next_event(subscription, timeout=20)
        assert gap.topic == GAP_TOPIC and gap.data["since"] <= gap.data["until"]
        assert listening.connected
        after = BusEvent("process.updated", WORKSPACE, {"n": 1})
        await runtime.bus.publish([after])
        assert (await next_event(subscription)).id == after.id


async def test_a_cached_read_changed_by_one_process_is_stale_in_another_at_once(
    runtime: Runtime, settings: Settings
) -> None:
    """Hook plans, definitions and principals are cached per process (db.PlanClock); a write to a
    table they come from, committed by one process, moves every other process's clock through
    the bus, not only after the cache's TTL."""
    other = build_runtime(settings)  # a second process: its own engine and clock, same database
    assert isinstance(runtime.bus, PostgresBus) and isinstance(other.bus, PostgresBus)
    await runtime.bus.start()
    await other.bus.start()
    try:
        clock = other.db.plan_clock
        before = clock.generation
        async with runtime.db.engine.connect() as conn:  # reads and unrelated writes: no notice
            await conn.execute(text("SELECT count(*) FROM workflows"))
            await conn.commit()
        await runtime.bus.publish([BusEvent("marker", WORKSPACE, {})])
        async with other.bus.subscribe(lambda e: e.topic == "marker", 10) as subscription:
            await runtime.bus.publish([BusEvent("marker", WORKSPACE, {})])
            await next_event(subscription)
        assert clock.generation == before
        async with runtime.db.engine.connect() as conn:
            await conn.execute(text("UPDATE workflows SET name = name WHERE false"))
            await conn.commit()
        deadline = asyncio.get_running_loop().time() + 10
        while clock.generation == before:
            assert asyncio.get_running_loop().time() < deadline, "no notice reached the other"
            await asyncio.sleep(0.01)
        mine = runtime.db.plan_clock.generation
        await asyncio.sleep(0.2)  # its own notice does not move the writer's clock again
        assert runtime.db.plan_clock.generation == mine
    finally:
        await other.bus.stop()
        await runtime.bus.stop()
        await other.db.dispose()
