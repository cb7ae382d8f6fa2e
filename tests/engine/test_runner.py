"""Processes run their agent graph: messages, retries, timeouts, filters, switches, delays."""

from __future__ import annotations

from sqlmodel import col, select

from flowql.models import Message
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import Target, create_workflow, execute, process_detail, wait_status


async def test_webhook_triggers_three_agent_workflow_with_the_right_messages(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "greeter",
        [
            {"name": "inbox", "type": "webhook", "options": {"path": "leads"}},
            {
                "name": "greet",
                "type": "transform",
                "sources": ["inbox"],
                "options": {
                    "payload": {
                        "greeting": "Hello {{ message.name }}",
                        "email": "{{ message.email }}",
                    }
                },
            },
            {
                "name": "notify",
                "type": "http_request",
                "sources": ["greet"],
                "options": {
                    "url": target.url + "/notify",
                    "method": "POST",
                    "body": {"text": "{{ message.greeting }} <{{ message.email }}>"},
                },
            },
        ],
    )
    response = await server.client.post(
        f"/hooks/{workflow['id']}/leads", json={"name": "Ada", "email": "ada@example.com"}
    )
    assert response.status_code == 202
    process_id = response.json()["process_id"]
    detail = await wait_status(server, account.token, process_id, {"COMPLETED", "FAILED"})
    assert detail["status"] == "COMPLETED", detail
    assert [s["agent"]["name"] for s in detail["steps"]] == ["inbox", "greet", "notify"]
    assert target.hits("/notify")[0]["body"] == b'{"text":"Hello Ada <ada@example.com>"}'
    async with server.runtime.db.read() as session:
        rows = (await session.exec(select(Message).order_by(col(Message.number)))).all()
    assert [m.payload for m in rows[:2]] == [
        {"name": "Ada", "email": "ada@example.com"},
        {"greeting": "Hello Ada", "email": "ada@example.com"},
    ]
    assert rows[2].payload["status"] == 200
    assert detail["output"]["body"]["ok"] is True


async def test_http_trigger_is_answered_by_the_respond_agent(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "api",
        [
            {
                "name": "endpoint",
                "type": "http",
                "options": {"path": "quote", "timeout_seconds": 10},
            },
            {
                "name": "answer",
                "type": "respond",
                "sources": ["endpoint"],
                "options": {
                    "status": 201,
                    "headers": {"X-Quote": "{{ message.item }}"},
                    "body": {"item": "{{ message.item }}", "price": "42"},
                },
            },
        ],
    )
    response = await server.client.post(f"/hooks/{workflow['number']}/quote", json={"item": "tea"})
    assert response.status_code == 201
    assert response.headers["x-quote"] == "tea"
    assert response.json() == {"item": "tea", "price": "42"}


async def test_failing_call_is_retried_then_succeeds(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    account = await factory.account()
    target.fail_first["/flaky"] = 2
    workflow = await create_workflow(
        server,
        account.token,
        "retry",
        [
            {
                "name": "call",
                "type": "http_request",
                "maxRetries": 3,
                "options": {"url": target.url + "/flaky"},
            },
        ],
    )
    process = await execute(server, account.token, workflow["id"])
    assert process["status"] == "COMPLETED"
    detail = await process_detail(server, account.token, process["id"])
    assert detail["steps"][0]["attempt"] == 3
    assert len(target.hits("/flaky")) == 3
    assert any("retrying" in line["message"] for line in detail["logs"])


async def test_exhausted_retries_fail_the_process_with_the_error(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    account = await factory.account()
    target.always_fail.add("/down")
    workflow = await create_workflow(
        server,
        account.token,
        "doomed",
        [
            {
                "name": "call",
                "type": "http_request",
                "maxRetries": 2,
                "options": {"url": target.url + "/down"},
            },
            {"name": "after", "type": "message", "sources": ["call"]},
        ],
    )
    process = await execute(server, account.token, workflow["id"])
    assert process["status"] == "FAILED"
    assert "call" in process["error"] and "500" in process["error"]
    assert len(target.hits("/down")) == 3
    detail = await process_detail(server, account.token, process["id"])
    assert [s["status"] for s in detail["steps"]] == ["FAILED"]


async def test_slow_agent_times_out(server: LiveServer, factory: Factory, target: Target) -> None:
    account = await factory.account()
    target.stall["/slow"] = 3
    workflow = await create_workflow(
        server,
        account.token,
        "slow",
        [
            {
                "name": "call",
                "type": "http_request",
                "timeoutSeconds": 0.5,
                "options": {"url": target.url + "/slow"},
            },
        ],
    )
    process = await execute(server, account.token, workflow["id"])
    assert process["status"] == "FAILED"
    assert "timed out" in process["error"]


async def test_cancel_stops_a_waiting_process(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "sleepy",
        [
            {"name": "wait", "type": "delay", "options": {"seconds": 60}},
            {"name": "after", "type": "message", "sources": ["wait"]},
        ],
    )
    process = await execute(server, account.token, workflow["id"], wait=False)
    await wait_status(server, account.token, process["id"], {"WAITING"})
    body = await server.gql(
        "mutation($id: UUID!) { cancelProcess(id: $id) { status } }",
        {"id": process["id"]},
        token=account.token,
    )
    assert body["data"]["cancelProcess"]["status"] == "CANCELLED"
    detail = await process_detail(server, account.token, process["id"])
    assert [s["status"] for s in detail["steps"]] == ["CANCELLED"]
    again = await server.gql(
        "mutation($id: UUID!) { cancelProcess(id: $id) { status } }",
        {"id": process["id"]},
        token=account.token,
        expect_errors=True,
    )
    assert again["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"


async def test_filter_drops_messages_that_fail_the_condition(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "big-orders",
        [
            {
                "name": "only big",
                "type": "filter",
                "options": {"condition": "message.amount > 100"},
            },
            {"name": "record", "type": "message", "sources": ["only big"]},
        ],
    )
    small = await execute(server, account.token, workflow["id"], {"amount": 5})
    big = await execute(server, account.token, workflow["id"], {"amount": 500})
    assert small["status"] == big["status"] == "COMPLETED"
    small_steps = (await process_detail(server, account.token, small["id"]))["steps"]
    big_steps = (await process_detail(server, account.token, big["id"]))["steps"]
    assert [s["agent"]["name"] for s in small_steps] == ["only big"]
    assert [s["agent"]["name"] for s in big_steps] == ["only big", "record"]
    assert big["output"] == {"amount": 500}


async def test_switch_routes_to_one_receiver(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "router",
        [
            {
                "name": "route",
                "type": "switch",
                "options": {
                    "cases": [
                        {"condition": "message.kind == 'bug'", "receiver": "bugs"},
                        {"condition": "message.kind == 'idea'", "receiver": "ideas"},
                    ],
                    "default": "other",
                },
            },
            {
                "name": "bugs",
                "type": "transform",
                "sources": ["route"],
                "options": {"payload": {"queue": "bugs"}},
            },
            {
                "name": "ideas",
                "type": "transform",
                "sources": ["route"],
                "options": {"payload": {"queue": "ideas"}},
            },
            {
                "name": "other",
                "type": "transform",
                "sources": ["route"],
                "options": {"payload": {"queue": "other"}},
            },
        ],
    )
    for kind, queue in [("bug", "bugs"), ("idea", "ideas"), ("praise", "other")]:
        process = await execute(server, account.token, workflow["id"], {"kind": kind})
        assert process["output"] == {"queue": queue}
        steps = (await process_detail(server, account.token, process["id"]))["steps"]
        assert [s["agent"]["name"] for s in steps] == ["route", queue]


async def test_durable_delay_parks_the_process_then_resumes(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "later",
        [
            {"name": "wait", "type": "delay", "options": {"seconds": 3}},
            {
                "name": "done",
                "type": "transform",
                "sources": ["wait"],
                "options": {"payload": {"v": "{{ message.v }}"}},
            },
        ],
    )
    process = await execute(server, account.token, workflow["id"], {"v": "x"}, wait=False)
    parked = await wait_status(server, account.token, process["id"], {"WAITING"})
    assert [s["status"] for s in parked["steps"]] == ["WAITING"]
    done = await wait_status(server, account.token, process["id"], {"COMPLETED"}, timeout=15)
    assert done["output"] == {"v": "x"}


async def test_same_idempotency_key_returns_the_same_process(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server, account.token, "once", [{"name": "m", "type": "message"}]
    )
    first = await execute(server, account.token, workflow["id"], {"a": 1}, key="order-17")
    second = await execute(server, account.token, workflow["id"], {"a": 2}, key="order-17")
    assert first["id"] == second["id"]
    body = await server.gql("{ processes { totalCount } }", token=account.token)
    assert body["data"]["processes"]["totalCount"] == 1
