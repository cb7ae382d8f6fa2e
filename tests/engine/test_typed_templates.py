"""Options that are one `{{ expression }}` keep the expression's type; mixed text stays text;
conditions still decide; a manual run of a schedule trigger sends the schedule's payload."""

from __future__ import annotations

from typing import Any

from flowql.agents.templating import condition, render
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute, process_detail

MESSAGES = "query($id: UUID!) { process(id: $id) { input messages { agent { name } payload } } }"


def test_one_expression_keeps_its_type_and_mixed_text_stays_text() -> None:
    context = {"message": {"age": 41, "tags": ["a", "b"], "o": {"x": 1.5}, "name": "Ann"}}
    rendered = render(
        {
            "age": "{{ message.age }}",
            "tags": "{{ message.tags }}",
            "object": "  {{ message.o }}  ",
            "missing": "{{ message.nope }}",
            "sum": "{{ message.age | plus: 1 }}",
            "joined": "{{ message.tags | join: ',' }}",
            "greeting": "Hi {{ message.name }}, {{ message.age }}",
            "twice": "{{ message.age }}{{ message.age }}",
            "tag": "{% if message.age > 40 %}senior{% endif %}",
            "nested": ["{{ message.age }}", {"deep": "{{ message.o.x }}"}],
            "plain": "no template",
        },
        context,
    )
    assert rendered == {
        "age": 41,
        "tags": ["a", "b"],
        "object": {"x": 1.5},
        "missing": None,
        "sum": 42,
        "joined": "a,b",
        "greeting": "Hi Ann, 41",
        "twice": "4141",
        "tag": "senior",
        "nested": [41, {"deep": 1.5}],
        "plain": "no template",
    }


def test_conditions_still_decide() -> None:
    context = {"message": {"age": 41, "ok": False, "none": None}}
    assert condition("message.age > 40", context)
    assert not condition("message.age > 41", context)
    assert not condition("{{ message.ok }}", context)
    assert not condition("{{ message.none }}", context)
    assert not condition("{{ message.absent }}", context)
    assert condition("{{ message.age }}", context)


async def test_transform_keeps_types_end_to_end(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "typed",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "shape",
                "type": "transform",
                "sources": ["start"],
                "options": {
                    "payload": {
                        "age": "{{ message.age }}",
                        "tags": "{{ message.tags }}",
                        "profile": "{{ message.profile }}",
                        "nothing": "{{ message.nothing }}",
                        "line": "{{ message.name }} is {{ message.age }}",
                    }
                },
            },
            {
                "name": "adults",
                "type": "filter",
                "sources": ["shape"],
                "options": {"condition": "message.age >= 18"},
            },
            {
                "name": "route",
                "type": "switch",
                "sources": ["adults"],
                "options": {
                    "cases": [{"condition": "message.age > 40", "receiver": "senior"}],
                    "default": "junior",
                },
            },
            {"name": "senior", "type": "message", "sources": ["route"]},
            {"name": "junior", "type": "message", "sources": ["route"]},
        ],
    )
    given = {"age": 41, "tags": ["a", "b"], "profile": {"city": "Oslo"}, "name": "Ann"}
    process = await execute(server, account.token, workflow["id"], given)
    assert process["status"] == "COMPLETED", process
    body = await server.gql(MESSAGES, {"id": process["id"]}, token=account.token)
    emitted: dict[str, Any] = {
        m["agent"]["name"]: m["payload"] for m in body["data"]["process"]["messages"]
    }
    assert emitted["shape"] == {
        "age": 41,
        "tags": ["a", "b"],
        "profile": {"city": "Oslo"},
        "nothing": None,
        "line": "Ann is 41",
    }
    assert "senior" in emitted and "junior" not in emitted  # the switch compared numbers


async def test_manual_run_of_a_schedule_trigger_uses_its_payload(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "nightly",
        [
            {
                "name": "nightly",
                "type": "schedule",
                "options": {"cron": "0 3 1 1 *", "payload": {"report": "daily", "rows": 5}},
            },
            {
                "name": "echo",
                "type": "transform",
                "sources": ["nightly"],
                "options": {"payload": {"rows": "{{ message.rows }}", "r": "{{ message.report }}"}},
            },
        ],
    )
    # No trigger named: the schedule is where the workflow starts.
    process = await execute(server, account.token, workflow["id"])
    assert process["status"] == "COMPLETED", process
    detail = await process_detail(server, account.token, process["id"])
    assert detail["input"] == {"report": "daily", "rows": 5}
    body = await server.gql(MESSAGES, {"id": process["id"]}, token=account.token)
    echoed = [m for m in body["data"]["process"]["messages"] if m["agent"]["name"] == "echo"]
    assert echoed[0]["payload"] == {"rows": 5, "r": "daily"}

    # Named by triggerId, with input laid over the payload.
    triggers = await server.gql(
        "query($id: UUID!) { workflow(id: $id) { triggers { id type } } }",
        {"id": workflow["id"]},
        token=account.token,
    )
    trigger_id = triggers["data"]["workflow"]["triggers"][0]["id"]
    body = await server.gql(
        """mutation($id: UUID!, $t: UUID!) {
          executeWorkflow(id: $id, triggerId: $t, input: {rows: 9}, wait: true) { input status }
        }""",
        {"id": workflow["id"], "t": trigger_id},
        token=account.token,
    )
    assert body["data"]["executeWorkflow"]["input"] == {"report": "daily", "rows": 9}
