"""Document 001 (WayScript's "Run Program" API) at /compat/wayscript/api, called as its curl
examples do: `POST /api?api_key=…&program_id=…&variables=…&function=…&run_async=…`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Account, Factory, LiveServer
from tests.engine.conftest import create_workflow, wait_status

URL = "/compat/wayscript/api"
INACTIVE = {"Error": "The function you specify must have an active Webhook Trigger."}

MESSAGES = """query($w: UUID!) { messages(filter: {workflowId: $w}) {
  nodes { processId payload agent { name } } } }"""
PROCESSES = "query($w: UUID!) { processes(filter: {workflowId: $w}) { nodes { id status } } }"


@pytest.fixture
async def world(server: LiveServer, factory: Factory) -> dict[str, Any]:
    owner = await factory.account()
    greeter = await create_workflow(
        server,
        owner.token,
        "Greeter",
        [
            {
                "name": "My Function",
                "type": "webhook",
                "options": {"path": "greet", "outputs": ["name", "greeting"]},
            },
            {
                "name": "compose",
                "type": "transform",
                "sources": ["My Function"],
                "options": {"payload": {"text": "{{ message.greeting }}, {{ message.name }}!"}},
            },
            {"name": "shout", "type": "webhook", "options": {"path": "shout", "outputs": ["w"]}},
            {
                "name": "loud",
                "type": "transform",
                "sources": ["shout"],
                "options": {"payload": {"loud": "{{ message.w }}!!"}},
            },
            {"name": "sleeping", "type": "webhook", "disabled": True, "options": {"path": "z"}},
        ],
    )
    solo = await create_workflow(
        server,
        owner.token,
        "Solo",
        [{"name": "only", "type": "webhook", "options": {"path": "only", "outputs": ["x"]}}],
    )
    key = await factory.api_key(owner)
    return {"owner": owner, "greeter": greeter, "solo": solo, "key": key}


async def run(server: LiveServer, params: list[tuple[str, Any]]) -> Any:
    return await server.client.post(URL, params=params)


async def messages(server: LiveServer, account: Account, workflow_id: str) -> list[dict[str, Any]]:
    body = await server.gql(MESSAGES, {"w": workflow_id}, token=account.token)
    nodes: list[dict[str, Any]] = body["data"]["messages"]["nodes"]
    return nodes


async def test_runs_the_function_synchronously_with_variables_in_output_order(
    server: LiveServer, world: dict[str, Any]
) -> None:
    number = world["greeter"]["number"]
    response = await run(
        server,
        [
            ("api_key", world["key"]),
            ("program_id", number),
            ("variables", "Ada"),
            ("variables", "Hello"),
            ("function", "My Function"),
        ],
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"Success": "Program finished.", "Result": [{"text": "Hello, Ada!"}]}
    emitted = await messages(server, world["owner"], world["greeter"]["id"])
    by_agent = {m["agent"]["name"]: m["payload"] for m in emitted}
    assert by_agent == {
        "My Function": {"name": "Ada", "greeting": "Hello"},
        "compose": {"text": "Hello, Ada!"},
    }


async def test_runs_asynchronously(server: LiveServer, world: dict[str, Any]) -> None:
    params = [
        ("api_key", world["key"]),
        ("program_id", world["greeter"]["number"]),
        ("function", "shout"),
        ("variables", "hey"),
        ("run_async", "True"),
    ]
    response = await run(server, params)
    assert response.status_code == 200 and response.json() == {"Success": "Program started."}
    owner = world["owner"]
    listed = await server.gql(PROCESSES, {"w": world["greeter"]["id"]}, token=owner.token)
    [process] = listed["data"]["processes"]["nodes"]
    await wait_status(server, owner.token, process["id"], {"COMPLETED"})
    emitted = await messages(server, owner, world["greeter"]["id"])
    assert {"loud": "hey!!"} in [m["payload"] for m in emitted]


async def test_the_only_webhook_runs_without_a_function(
    server: LiveServer, world: dict[str, Any]
) -> None:
    params = [("api_key", world["key"]), ("program_id", world["solo"]["number"])]
    response = await run(server, [*params, ("variables", "1")])
    assert response.json() == {"Success": "Program finished.", "Result": [{"x": "1"}]}
    plain = await run(server, params)  # the documented example: no variables at all
    assert plain.json() == {"Success": "Program finished.", "Result": [{}]}
    too_many = await run(server, [*params, ("variables", "1"), ("variables", "2")])
    assert too_many.status_code == 400 and "Too many variables" in too_many.json()["Error"]


async def test_ambiguous_or_inactive_functions_are_refused(
    server: LiveServer, world: dict[str, Any]
) -> None:
    params = [("api_key", world["key"]), ("program_id", world["greeter"]["number"])]
    ambiguous = await run(server, params)
    assert ambiguous.status_code == 400
    assert "specify which function you would like to run" in ambiguous.json()["Error"]
    for function in ("sleeping", "compose", "no such function"):
        refused = await run(server, [*params, ("function", function)])
        assert refused.status_code == 400 and refused.json() == INACTIVE, function
    listed = await server.gql(PROCESSES, {"w": world["greeter"]["id"]}, token=world["owner"].token)
    assert listed["data"]["processes"]["nodes"] == []  # nothing ran


async def test_keys_programs_and_parameters_are_checked(
    server: LiveServer, world: dict[str, Any], factory: Factory
) -> None:
    number = world["greeter"]["number"]
    missing_key = await run(server, [("program_id", number)])
    assert missing_key.status_code == 401 and missing_key.json() == {"Error": "Invalid API key."}
    bad_key = await run(server, [("api_key", "fql_nonsense"), ("program_id", number)])
    assert bad_key.status_code == 401 and bad_key.json() == {"Error": "Invalid API key."}
    key = world["key"]
    for program in (999999, 0, 2**40):
        unknown = await run(server, [("api_key", key), ("program_id", program)])
        assert unknown.status_code == 404 and unknown.json() == {"Error": "Program not found."}
    stranger = await factory.account()
    theirs = await run(
        server, [("api_key", await factory.api_key(stranger)), ("program_id", number)]
    )
    assert theirs.status_code == 404
    reader = await factory.api_key(world["owner"], privileges=["workflow:read", "process:read"])
    refused = await run(
        server, [("api_key", reader), ("program_id", number), ("function", "shout")]
    )
    assert refused.status_code == 403 and "Error" in refused.json()
    for params in ([], [("program_id", "abc")], [("program_id", number), ("run_async", "maybe")]):
        bad = await run(server, [("api_key", key), *params])
        assert bad.status_code == 400 and set(bad.json()) == {"Error"}, params
