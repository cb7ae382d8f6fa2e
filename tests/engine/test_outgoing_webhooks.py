"""Outgoing webhooks: outbox rows written with the event, signed, retried, then dead."""

from __future__ import annotations

import asyncio
import json

from sqlmodel import col, select

from flowql.engine.deliveries import verify
from flowql.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from tests.conftest import Account, Factory, LiveServer
from tests.engine.conftest import Target, create_workflow, execute

SECRET = "whsec-test-123"


async def subscribe(server: LiveServer, account: Account, url: str, events: list[str]) -> None:
    async with server.runtime.db.transaction() as session:
        session.add(
            WebhookSubscription(
                workspace_id=account.workspace_id,
                url=url,
                events=events,
                secret_encrypted=server.runtime.box.encrypt(SECRET),
            )
        )


async def deliveries(server: LiveServer) -> list[WebhookDelivery]:
    async with server.runtime.db.read() as session:
        return list(
            (
                await session.exec(select(WebhookDelivery).order_by(col(WebhookDelivery.number)))
            ).all()
        )


async def settle(server: LiveServer, done: callable, timeout: float = 15) -> list[WebhookDelivery]:  # type: ignore[valid-type]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await deliveries(server)
        if done(rows) or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.1)


async def test_process_events_are_delivered_signed(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    account = await factory.account()
    await subscribe(
        server,
        account,
        target.url + "/events",
        ["workflow.executed", "process.started", "process.completed", "message.created"],
    )
    workflow = await create_workflow(
        server, account.token, "notify", [{"name": "m", "type": "message"}]
    )
    process = await execute(server, account.token, workflow["id"], {"hello": "world"})
    assert process["status"] == "COMPLETED"
    rows = await settle(
        server, lambda rs: len(rs) == 4 and all(r.status == DeliveryStatus.DELIVERED for r in rs)
    )
    assert sorted(r.event_type for r in rows) == sorted(
        ["workflow.executed", "process.started", "message.created", "process.completed"]
    )
    calls = target.hits("/events")
    assert len(calls) == 4
    for call in calls:
        assert verify(SECRET, call["headers"]["x-flowql-signature"], call["body"])
        assert not verify("wrong-secret", call["headers"]["x-flowql-signature"], call["body"])
        tampered = call["body"] + b" "
        assert not verify(SECRET, call["headers"]["x-flowql-signature"], tampered)
    completed = next(
        json.loads(c["body"])
        for c in calls
        if c["headers"]["x-flowql-event"] == "process.completed"
    )
    assert completed["data"]["process"]["id"] == process["id"]
    assert completed["data"]["process"]["output"] == {"hello": "world"}


async def test_failing_receiver_is_retried_then_marked_dead(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    server.runtime.settings.webhook_max_attempts = 3
    account = await factory.account()
    target.fail_first["/flaky"] = 1
    target.always_fail.add("/dead")
    await subscribe(server, account, target.url + "/flaky", ["process.completed"])
    await subscribe(server, account, target.url + "/dead", ["process.completed"])
    workflow = await create_workflow(server, account.token, "w", [{"name": "m", "type": "message"}])
    await execute(server, account.token, workflow["id"])
    rows = await settle(
        server,
        lambda rs: (
            len(rs) == 2
            and all(r.status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD) for r in rs)
        ),
    )
    by_status = {r.status: r for r in rows}
    assert by_status[DeliveryStatus.DELIVERED].attempts == 2
    dead = by_status[DeliveryStatus.DEAD]
    assert dead.attempts == 3 and dead.last_status_code == 500
    assert len(target.hits("/dead")) == 3
