"""Each REST route that addresses one object runs one GraphQL operation, whether the object is
named by its number (`wf_12`, `12`) or its UUID: mutations take a reference, so a route no longer
looks the object up first and acts in a second operation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from starlette.requests import Request

from flowql.rest_compat import base
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute


@contextmanager
def counted() -> Iterator[list[tuple[str, str, int]]]:
    """(method, path, operations) for each REST request while inside."""
    seen: list[tuple[str, str, int]] = []

    def listen(request: Request, operations: int) -> None:
        seen.append((request.method, request.url.path, operations))

    base.OPERATION_LISTENERS.append(listen)
    try:
        yield seen
    finally:
        base.OPERATION_LISTENERS.remove(listen)


async def one_operation(
    server: LiveServer, method: str, path: str, token: str, status: int, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    with counted() as seen:
        response = await server.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, (method, path, response.text)
    assert seen == [(method, path.partition("?")[0], 1)], seen
    return response


async def test_platform_v1_routes_by_number_run_one_operation(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    key = await factory.api_key(account)

    async def v1(method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = await one_operation(server, method, f"/v1{path}", key, status, **kwargs)
        return response.json()["data"]

    graph = {
        "nodes": [{"id": "start", "type": "message"}, {"id": "echo", "type": "transform"}],
        "edges": [{"source": "start", "target": "echo"}],
    }
    created = await v1("POST", "/workflows", 201, json={"name": "Counted", **graph})
    wf = created["id"]
    number = wf.removeprefix("wf_")
    assert (await v1("GET", f"/workflows/{number}"))["id"] == wf
    patched = await v1("PATCH", f"/workflows/{wf}", json={"name": "Renamed", **graph})
    assert patched["name"] == "Renamed" and patched["edges"] == created["edges"]
    assert (await v1("PATCH", f"/workflows/{wf}", json={"status": "published"}))["nodes"]
    started = await v1("POST", f"/workflows/{wf}/execute", 202, json={"input": {"a": 1}})
    assert started["workflow_id"] == wf
    [listed] = await v1("GET", f"/workflows/{number}/executions")
    assert listed["id"] == started["execution_id"]
    assert [e["id"] for e in await v1("GET", f"/executions?workflow_id={wf}")] == [listed["id"]]
    assert (await v1("GET", f"/executions/{listed['id']}"))["workflow_id"] == wf

    # A missing workflow is still NOT_FOUND, in the same single operation.
    missing = await one_operation(server, "GET", "/v1/workflows/wf_999999/executions", key, 404)
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    await one_operation(server, "DELETE", "/v1/workflows/999999", key, 404)

    form = await v1(
        "POST", "/forms", 201, json={"name": "F", "fields": [{"name": "x", "type": "text"}]}
    )
    assert (await v1("GET", f"/forms/{form['id']}"))["id"] == form["id"]
    submitted = await v1("POST", f"/forms/{form['id']}/submissions", 201, json={"data": {}})
    assert submitted["form_id"] == form["id"]
    assert len(await v1("GET", f"/forms/{form['id']}/submissions")) == 1
    # A form bound to a workflow (by its wf_ id or bare number) is one createForm too.
    bound = await v1("POST", "/forms", 201, json={"name": "B", "workflow_id": wf})
    assert bound["workflow_id"] == wf
    bare = await v1("POST", "/forms", 201, json={"name": "B2", "workflow_id": number})
    assert bare["workflow_id"] == wf
    unknown = await one_operation(
        server, "POST", "/v1/forms", key, 400, json={"name": "F", "workflow_id": "wf_999999"}
    )
    assert unknown.json()["error"]["details"]["fields"] == {"workflow_id": "no such workflow"}

    credential = await v1("POST", "/credentials", 201, json={"name": "c", "value": "s3cret"})
    deleted = await v1("DELETE", f"/credentials/{credential['id']}")
    assert deleted == {"id": credential["id"], "deleted": True}
    hook = await v1(
        "POST",
        "/webhooks",
        201,
        json={"url": "https://example.com/h", "events": ["form.submitted"]},
    )
    assert (await v1("DELETE", f"/webhooks/{hook['id']}"))["deleted"] is True

    made = await server.gql(
        "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { number } }",
        {"input": {"name": "I", "type": "http", "settings": {"url": "http://127.0.0.1:9/"}}},
        token=key,
    )
    integration = f"int_{made['data']['createIntegration']['number']}"
    tested = await v1("POST", f"/integrations/{integration}/test")
    assert tested["id"] == integration and tested["ok"] is False

    assert await v1("DELETE", f"/workflows/{wf}") == {"id": wf, "deleted": True}


async def test_activeworkflow_routes_by_number_run_one_operation(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server, account.token, "Numbers", [{"name": "Source", "type": "message"}]
    )
    await execute(server, account.token, workflow["id"], {"title": "hello"})
    data = await server.gql(
        "query($id: UUID!) { workflow(id: $id) { number agents { number } } }",
        {"id": workflow["id"]},
        token=account.token,
    )
    number = data["data"]["workflow"]["number"]
    agent = data["data"]["workflow"]["agents"][0]["number"]
    prefix = "/compat/activeworkflow/api/v1"
    for path in (
        f"/agents/{agent}",
        f"/agents/{agent}/messages",
        f"/workflows/{number}",
        f"/workflows/{number}/export",
    ):
        await one_operation(server, "GET", prefix + path, account.token, 200)
    await one_operation(server, "GET", f"{prefix}/agents/999999/messages", account.token, 404)


async def test_wayscript_and_letsflow_routes_by_id_run_one_operation(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "Lair", [])
    wayscript = "/compat/wayscript"
    for path in (
        f"/lairs/{workflow['id']}",
        f"/workspaces/{account.workspace_id}",
        f"/workspace-integrations/workspace/{account.workspace_id}",
    ):
        await one_operation(server, "GET", wayscript + path, account.token, 200)
    await one_operation(
        server,
        "GET",
        f"{wayscript}/workspace-integrations/workspace/{uuid.uuid4()}",
        account.token,
        404,
    )

    letsflow = "/compat/letsflow"
    issued = await one_operation(
        server, "POST", f"{letsflow}/apikey", account.token, 201, json={"name": "k"}
    )
    await one_operation(
        server, "DELETE", f"{letsflow}/apikey/{issued.json()['id']}", account.token, 204
    )
