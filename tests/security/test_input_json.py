"""Hostile JSON on every entry point (GraphQL POST, GET and WebSocket, every REST route that takes
a body, /hooks): a 4xx in the mount's own error format that says what is wrong, nothing stored,
never a 500. One parser (flowql.jsonsafe) refuses all of them; NaN never reaches a JSON column."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import pytest
import uvicorn
from sqlalchemy.exc import StatementError
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from flowql import jsonsafe
from flowql.db import create_database
from flowql.models import Workflow
from tests.conftest import Factory, LiveServer, free_port
from tests.security.conftest import (
    assert_family_error,
    rest_routes,
    stored,
    webhook_workflow,
)

# Each hostile value as raw JSON text, and what the refusal says about it.
HOSTILE: dict[str, tuple[bytes, str]] = {
    "deep": (b"[" * 10_000 + b"]" * 10_000, "nested deeper than"),
    "invalid utf-8": (b'"\xff\xfe"', "UTF-8"),
    "lone surrogate": (b'"\\ud800"', "surrogate"),
    "NaN": (b"NaN", "NaN"),
    "Infinity": (b"-Infinity", "Infinity"),
    "overflowing number": (b"1e999", "out of range"),
}


def wrap(value: bytes) -> bytes:
    return b'{"name": "x", "input": ' + value + b', "data": ' + value + b"}"


def test_parser_refuses_each_hostile_value_and_accepts_json() -> None:
    for raw, says in HOSTILE.values():
        with pytest.raises(jsonsafe.JSONRefused, match=says):
            jsonsafe.loads(wrap(raw))
    assert jsonsafe.loads(b'{"a": [1, 2.5, "\\ud83d\\ude00", {"b": null}]}') == {
        "a": [1, 2.5, "\U0001f600", {"b": None}]
    }
    assert jsonsafe.loads("[" * 64 + "]" * 64) is not None
    assert jsonsafe.loads('"[[[[ \\" {{{{"') == '[[[[ " {{{{'  # brackets in strings are text


def test_parser_is_fast_on_a_large_body() -> None:
    body = json.dumps([{"id": i, "tags": ["a", "b"], "x": {"y": i}} for i in range(20_000)])
    started = time.perf_counter()
    assert len(jsonsafe.loads(body, max_bytes=None)) == 20_000
    assert time.perf_counter() - started < 5


async def test_graphql_post_refuses_hostile_variables(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await webhook_workflow(server, account.token)
    before = await stored(server)
    document = "mutation($id: UUID!, $i: JSON) { executeWorkflow(id: $id, input: $i) { id } }"
    for name, (raw, says) in HOSTILE.items():
        body = (
            b'{"query": '
            + json.dumps(document).encode()
            + b', "variables": {"id": "'
            + workflow["id"].encode()
            + b'", "i": '
            + raw
            + b"}}"
        )
        response = await server.client.post(
            "/graphql",
            content=body,
            headers={
                "Authorization": f"Bearer {account.token}",
                "Content-Type": "application/json",
            },
        )
        assert_family_error(response, 400, says)
        assert response.json()["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR", name
    for empty in (b"", b"  "):
        response = await server.client.post(
            "/graphql", content=empty, headers={"Content-Type": "application/json"}
        )
        assert_family_error(response, 400, "empty body")
    # A document literal that overflows to infinity is refused the same way.
    literal = await server.gql(
        "mutation($id: UUID!) { executeWorkflow(id: $id, input: {x: 1e999}) { id } }",
        {"id": workflow["id"]},
        token=account.token,
        expect_errors=True,
    )
    assert literal["errors"][0]["extensions"]["limit"] == "numbers"
    assert await stored(server) == before


async def test_graphql_get_refuses_hostile_variables(server: LiveServer) -> None:
    for raw in (b"[" * 10_000 + b"]" * 10_000, b'{"a": NaN}', b'{"a": "\\udc00"}'):
        response = await server.client.get(
            "/graphql", params={"query": "{ __typename }", "variables": raw.decode()}
        )
        assert_family_error(response, 400, "variables refused")


async def test_every_rest_route_refuses_hostile_json(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    before = await stored(server)
    routes = rest_routes()
    assert len(routes) >= 20  # every family's routes, not a sample
    for method, path in routes:
        for raw, says in HOSTILE.values():
            response = await server.client.request(
                method,
                path,
                content=wrap(raw),
                headers={
                    "Authorization": f"Bearer {account.token}",
                    "Content-Type": "application/json",
                },
            )
            assert_family_error(response, 400, says)
    assert await stored(server) == before


async def test_hooks_refuse_hostile_json(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await webhook_workflow(server, account.token)
    before = await stored(server)
    for raw, says in HOSTILE.values():
        response = await server.client.post(
            f"/hooks/{workflow['id']}/in",
            content=wrap(raw),
            headers={"Content-Type": "application/json"},
        )
        assert_family_error(response, 400, says)
    assert await stored(server) == before
    accepted = await server.client.post(f"/hooks/{workflow['id']}/in", json={"ok": 1.5})
    assert accepted.status_code == 202


async def test_websocket_message_with_hostile_json_closes_only_that_socket(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    url = server.url.replace("http", "ws") + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps(
                {
                    "type": "connection_init",
                    "payload": {"Authorization": f"Bearer {account.token}"},
                }
            )
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        deep = "[" * 10_000 + "]" * 10_000
        await ws.send('{"id": "1", "type": "subscribe", "payload": {"variables": ' + deep + "}}")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and 4400 <= closed.value.rcvd.code < 4500
    assert (await server.client.post("/graphql", json={"query": "{ __typename }"})).json() == {
        "data": {"__typename": "Query"}
    }


async def test_json_columns_refuse_nan(server: LiveServer, factory: Factory) -> None:
    """The last line of defence: a NaN that got past every parser is never written."""
    account = await factory.account()
    database = create_database(server.runtime.settings)
    try:
        with pytest.raises((ValueError, StatementError), match="not JSON compliant"):
            async with database.transaction() as session:
                session.add(
                    Workflow(workspace_id=account.workspace_id, name="nan", variables={"x": 1e999})
                )
    finally:
        await database.dispose()
    async with server.runtime.db.read() as session:
        names = (await session.exec(select(Workflow.name))).all()
    assert "nan" not in names


async def test_token_missing_an_expected_claim_is_refused_not_a_500(
    server: LiveServer, factory: Factory
) -> None:
    """An execution token signed with the server's key but without its `ws` claim."""
    settings = server.runtime.settings
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "00000000-0000-4000-8000-000000000001",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience + "-exec",
        "typ": "execution",
        "jti": "x",
    }
    assert settings.secret_key is not None
    token = jwt.encode(claims, settings.secret_key, algorithm="HS256")
    response = await server.client.post(
        "/graphql",
        json={"query": "{ viewer { user { id } } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"
    rest = await server.client.get("/v1/workflows", headers={"Authorization": f"Bearer {token}"})
    assert_family_error(rest, 401)


async def test_nan_from_an_outbound_response_is_never_stored(
    server: LiveServer, factory: Factory
) -> None:
    """An `http_request` agent's target answers `{"x": NaN}`: the process finishes (before, the
    write failed and the process stayed RUNNING, resumed forever), every row of it stays readable,
    and the body is kept as text, not as a number JSON columns cannot hold."""
    port = free_port()

    async def nan(request: Request) -> Response:
        return Response(b'{"x": NaN, "y": [Infinity]}', media_type="application/json")

    target = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/nan", nan, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    task = asyncio.create_task(target.serve())
    while not target.started:
        await asyncio.sleep(0.01)
    try:
        account = await factory.account()
        created = await server.gql(
            """mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { id } }""",
            {
                "input": {
                    "name": "nan",
                    "agents": [
                        {"name": "start", "type": "manual"},
                        {
                            "name": "call",
                            "type": "http_request",
                            "sources": ["start"],
                            "options": {"url": f"http://127.0.0.1:{port}/nan", "method": "POST"},
                        },
                    ],
                }
            },
            token=account.token,
        )
        workflow_id = created["data"]["createWorkflow"]["id"]
        ran = await server.gql(
            """mutation($id: UUID!) {
              executeWorkflow(id: $id, wait: true, waitTimeout: 20) { id status error } }""",
            {"id": workflow_id},
            token=account.token,
        )
        process = ran["data"]["executeWorkflow"]
        assert process["status"] == "COMPLETED", process
        read = await server.gql(
            """query($id: UUID!) { process(id: $id) { output }
              messages(filter: {processId: $id}) { nodes { payload } } }""",
            {"id": process["id"]},
            token=account.token,
        )
        # Not JSON flowql accepts, so kept as the text it was.
        bodies = [m["payload"].get("body") for m in read["data"]["messages"]["nodes"]]
        assert '{"x": NaN, "y": [Infinity]}' in bodies
    finally:
        target.should_exit = True
        await task
