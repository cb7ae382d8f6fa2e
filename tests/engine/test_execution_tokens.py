"""A running process's own credentials, and answering an http trigger's caller from outside."""

from __future__ import annotations

import asyncio

from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute


async def test_http_trigger_caller_gets_the_answer_posted_for_its_process(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "handled elsewhere",
        [
            {"name": "endpoint", "type": "http", "options": {"path": "ask", "timeout_seconds": 15}},
            {"name": "think", "type": "delay", "options": {"seconds": 30}, "sources": ["endpoint"]},
        ],
    )
    caller = asyncio.create_task(
        server.client.post(f"/hooks/{workflow['id']}/ask", json={"q": "?"})
    )
    process_id = None
    for _ in range(100):
        listed = await server.gql("{ processes { nodes { id } } }", token=account.token)
        if listed["data"]["processes"]["nodes"]:
            process_id = listed["data"]["processes"]["nodes"][0]["id"]
            break
        await asyncio.sleep(0.05)
    assert process_id is not None
    tokens = (
        await server.gql(
            "mutation($id: UUID!) { issueExecutionToken(id: $id) { accessToken } }",
            {"id": process_id},
            token=account.token,
        )
    )["data"]["issueExecutionToken"]
    answer = await server.gql(
        """mutation($id: UUID!, $h: JSON, $b: JSON) {
             respondToHttpTrigger(processId: $id, status: 202, headers: $h, body: $b) { id } }""",
        {"id": process_id, "h": {"X-Answer": "yes"}, "b": {"answer": 42}},
        token=tokens["accessToken"],
    )
    assert answer["data"]["respondToHttpTrigger"]["id"] == process_id
    response = await asyncio.wait_for(caller, 10)
    assert response.status_code == 202
    assert response.headers["x-answer"] == "yes"
    assert response.json() == {"answer": 42}
    again = await server.gql(
        "mutation($id: UUID!) { respondToHttpTrigger(processId: $id, body: 1) { id } }",
        {"id": process_id},
        token=account.token,
        expect_errors=True,
    )
    assert again["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"


async def test_execution_token_is_scoped_to_its_workspace_and_rotates(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    other = await factory.account()
    mine = await create_workflow(server, account.token, "mine", [{"name": "m", "type": "message"}])
    theirs = await create_workflow(
        server, other.token, "theirs", [{"name": "m", "type": "message"}]
    )
    process = await execute(server, account.token, mine["id"])
    issued = (
        await server.gql(
            "mutation($id: UUID!) { issueExecutionToken(id: $id) { accessToken refreshToken expiresIn } }",
            {"id": process["id"]},
            token=account.token,
        )
    )["data"]["issueExecutionToken"]
    viewer = await server.gql("{ viewer { kind workspaces { id } } }", token=issued["accessToken"])
    assert viewer["data"]["viewer"] == {
        "kind": "execution",
        "workspaces": [{"id": str(account.workspace_id)}],
    }
    hidden = await server.gql(
        "query($id: UUID!) { workflow(id: $id) { id } }",
        {"id": theirs["id"]},
        token=issued["accessToken"],
        expect_errors=True,
    )
    assert hidden["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    rotate = "mutation($r: String!) { refreshExecutionToken(refreshToken: $r) { accessToken refreshToken } }"
    rotated = (await server.gql(rotate, {"r": issued["refreshToken"]}))["data"][
        "refreshExecutionToken"
    ]
    assert rotated["refreshToken"] != issued["refreshToken"]
    reuse = await server.gql(rotate, {"r": issued["refreshToken"]}, expect_errors=True)
    assert reuse["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"
    revoked = await server.gql(rotate, {"r": rotated["refreshToken"]}, expect_errors=True)
    assert revoked["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"


async def test_templates_cannot_read_an_execution_token(
    server: LiveServer, factory: Factory
) -> None:
    """Options render user-controlled text into requests; no credential is in their context."""
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "leaky",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "shape",
                "type": "transform",
                "sources": ["start"],
                "options": {"payload": {"token": "{{ process.token }}", "id": "{{ process.id }}"}},
            },
        ],
    )
    process = await execute(server, account.token, workflow["id"])
    assert process["status"] == "COMPLETED"
    # An undefined variable: null (a whole-value `{{ expression }}` keeps its type).
    assert process["output"] == {"token": None, "id": process["id"]}
