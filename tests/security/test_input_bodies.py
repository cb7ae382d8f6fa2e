"""Request bodies: bounded per route (413) and typed (415), each in the mount's error format,
before anything reads them; what documented clients send keeps working."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tests.conftest import Factory, LiveServer
from tests.security.conftest import (
    LIMIT,
    assert_family_error,
    rest_routes,
    stored,
    webhook_workflow,
)

BROWSER_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x")


def entry_points(workflow_id: str) -> list[tuple[str, str]]:
    return [("POST", "/graphql"), ("POST", f"/hooks/{workflow_id}/in"), *rest_routes()]


async def test_oversized_bodies_are_refused_413_on_every_route(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await webhook_workflow(server, account.token)
    before = await stored(server)
    big = b'{"x": "' + b"a" * LIMIT + b'"}'
    headers = {"Authorization": f"Bearer {account.token}", "Content-Type": "application/json"}
    for method, path in entry_points(workflow["id"]):
        response = await server.client.request(method, path, content=big, headers=headers)
        assert_family_error(response, 413, "larger than")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(LIMIT // 1024 + 2):
            yield b" " * 1024

    for path in ("/graphql", "/v1/workflows", f"/hooks/{workflow['id']}/in"):
        response = await server.client.post(path, content=chunks(), headers=headers)
        assert_family_error(response, 413, "larger than")
    assert await stored(server) == before


async def test_browser_simple_types_are_refused_415_on_json_routes(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    before = await stored(server)
    for method, path in [("POST", "/graphql"), *rest_routes()]:
        for media in BROWSER_TYPES:
            response = await server.client.request(
                method,
                path,
                content=b'{"query": "{ __typename }", "name": "x"}',
                headers={"Authorization": f"Bearer {account.token}", "Content-Type": media},
            )
            assert_family_error(response, 415, "unsupported media type")
    assert await stored(server) == before


async def test_documented_clients_keep_working(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    auth = {"Authorization": f"Bearer {account.token}"}
    charset = await server.client.post(
        "/graphql",
        content=b'{"query": "{ __typename }"}',
        headers={**auth, "Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.json() == {"data": {"__typename": "Query"}}
    created = await server.client.post(
        "/v1/workflows", json={"name": "kept", "nodes": [], "edges": []}, headers=auth
    )
    assert created.status_code == 201, created.text
    # Document 003 stores YAML scenarios.
    yaml = await server.client.post(
        "/compat/letsflow/scenarios",
        content=b"title: kept\nactions:\n  go: {}\nstates:\n  initial:\n    on: go\n    goto: (done)\n",
        headers={**auth, "Content-Type": "application/yaml"},
    )
    assert yaml.status_code == 201, yaml.text
    # Document 001's `curl -X POST 'https://…/api?api_key=…&program_id=…'`: no body, no type.
    run = await server.client.post(
        "/compat/wayscript/api", params={"api_key": account.token, "program_id": "999"}
    )
    assert run.status_code == 404 and run.json() == {"Error": "Program not found."}
    # Webhook senders post forms and text as well as JSON.
    workflow = await webhook_workflow(server, account.token)
    for content, media in (
        (b"a=1&b=2", "application/x-www-form-urlencoded"),
        (b"hi", "text/plain"),
    ):
        hook = await server.client.post(
            f"/hooks/{workflow['id']}/in", content=content, headers={"Content-Type": media}
        )
        assert hook.status_code == 202, hook.text
