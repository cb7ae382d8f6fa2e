"""GraphQL limits as settings (flowql.schema.limits): each refusal has a stable code and names
its limit; a refused document costs little and never stalls other requests; production hides
introspection, GraphiQL and field suggestions unless configured otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from graphql import get_introspection_query

from flowql.app import create_app
from flowql.auth.principal import ANONYMOUS
from flowql.models import Role
from flowql.schema import build_schema
from flowql.services.runtime import Runtime
from flowql.settings import Exposure, Settings
from tests.conftest import Factory, LiveServer, free_port


def limit_of(body: dict[str, Any]) -> tuple[str, str | None]:
    extensions = body["errors"][0]["extensions"]
    return extensions["code"], extensions.get("limit")


async def run(query: str, settings: Settings, variables: dict[str, Any] | None = None) -> Any:
    """In process, as the app does for its REST mounts, with `settings` in the context."""
    context = SimpleNamespace(runtime=SimpleNamespace(settings=settings), principal=ANONYMOUS)
    result = await build_schema().execute(query, variable_values=variables, context_value=context)
    return result


def refused_by(result: Any) -> str | None:
    """The limit that refused the operation (None: it ran, whatever its resolvers said)."""
    for error in result.errors or ():
        if (error.extensions or {}).get("limit"):
            return str(error.extensions["limit"])
    return None


HOSTILE_DOCUMENTS = {
    "depth": "{ viewer { user { id } } "
    + "workflows { nodes { agents { workflow {" * 4
    + " id"
    + " } } } }" * 4
    + " }",
    "aliases": "{ " + " ".join(f"a{i}: __typename" for i in range(51)) + " }",
    "duplicateFields": "{ viewer { user { " + " ".join(["id"] * 21) + " } } }",
    "rootFields": "{ " + " ".join(f"f{i}: serverInfo {{ name }}" for i in range(21)) + " }",
    "cost": "{ processes(first: 100) { nodes { workflow { processes(last: 100) { workflow {"
    " agents { id } } } } } } }",
    "tokens": "{ " + "viewer { user { id } } " * 1000 + "}",
    "documentBytes": "{ __typename }" + " " * 70_000,
    "numbers": "{ processes(filter: {workflowNumber: 1e999}) { totalCount } }",
}


@pytest.mark.parametrize("limit", sorted(HOSTILE_DOCUMENTS))
async def test_each_limit_refuses_with_a_stable_code(limit: str) -> None:
    result = await run(HOSTILE_DOCUMENTS[limit], Settings())
    assert result.errors, result
    extensions = result.errors[0].extensions
    assert extensions["code"] == "VALIDATION_ERROR"
    assert extensions["limit"] == limit, result.errors[0].message


async def test_limits_come_from_the_settings() -> None:
    query = "{ viewer { user { id email } } }"
    assert refused_by(await run(query, Settings())) is None
    strict = Settings(graphql_max_depth=1, graphql_max_cost=1_000)
    refused = await run(query, strict)
    assert refused_by(refused) == "depth"
    assert refused.errors[0].extensions["maximum"] == 1
    cheap = Settings(graphql_max_cost=1_000)
    paged = "query($n: Int) { processes(first: $n) { nodes { id steps { id } } } }"
    assert refused_by(await run(paged, cheap, {"n": 10})) is None
    assert refused_by(await run(paged, cheap, {"n": 100})) == "cost"


async def test_introspection_query_fits_the_default_limits() -> None:
    assert refused_by(await run(get_introspection_query(), Settings())) is None


async def test_a_refused_document_never_stalls_other_requests(server: LiveServer) -> None:
    """Without the limits this document takes seconds of validation on the event loop."""
    hostile = {"query": "{ " + " ".join(["viewer { user { id email } }"] * 300) + " }"}
    cheap = {"query": "{ __typename }"}

    async def timed(body: dict[str, Any]) -> tuple[float, httpx.Response]:
        started = time.perf_counter()
        response = await server.client.post("/graphql", json=body)
        return time.perf_counter() - started, response

    await timed(cheap)  # warm
    attacks = [asyncio.create_task(timed(hostile)) for _ in range(3)]
    cheap_latencies = []
    for _ in range(10):
        latency, response = await timed(cheap)
        assert response.json() == {"data": {"__typename": "Query"}}
        cheap_latencies.append(latency)
    refusals = await asyncio.gather(*attacks)
    # Without the limits the cheap requests wait ~20 s here; 3 s leaves room for a busy CI box.
    assert max(cheap_latencies) < 3.0, cheap_latencies
    for _, response in refusals:
        assert limit_of(response.json()) == ("VALIDATION_ERROR", "duplicateFields")


# -- production exposure ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def live(runtime: Runtime, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another real server on the same database, with other settings."""
    runtime_copy = Runtime(settings=settings, db=runtime.db, box=runtime.box, bus=runtime.bus)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, runtime_copy, run_worker=False),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        uv.should_exit = True
        await task


def production(settings: Settings, **overrides: Any) -> Settings:
    values = {**settings.model_dump(), "env": "production", **overrides}
    values.pop("graphql_introspection", None) if "graphql_introspection" not in overrides else None
    values.pop("graphiql", None) if "graphiql" not in overrides else None
    return Settings(**values)


INTROSPECT = {"query": "{ __schema { queryType { name } } }"}
HTML = {"Accept": "text/html"}


async def test_production_hides_introspection_graphiql_and_suggestions(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    assert server.runtime.settings.graphql_introspection is Exposure.ON  # development
    assert (await server.client.post("/graphql", json=INTROSPECT)).json()["data"]
    assert (await server.client.get("/graphql", headers=HTML)).status_code == 200

    settings = production(server.runtime.settings)
    assert settings.graphql_introspection is Exposure.OFF and settings.graphiql is Exposure.OFF
    async with live(server.runtime, settings) as client:
        for headers in ({}, {"Authorization": f"Bearer {owner.token}"}):
            refused = (await client.post("/graphql", json=INTROSPECT, headers=headers)).json()
            assert limit_of(refused) == ("FORBIDDEN", "introspection")
            assert (await client.get("/graphql", headers={**HTML, **headers})).status_code == 404
        typename = await client.post("/graphql", json={"query": "{ __typename }"})
        assert typename.json() == {"data": {"__typename": "Query"}}
        typo = (await client.post("/graphql", json={"query": "{ viewr { id } }"})).json()
        assert "Cannot query field 'viewr'" in typo["errors"][0]["message"]
        assert "Did you mean" not in typo["errors"][0]["message"]
    development_typo = (await server.client.post("/graphql", json={"query": "{ viewr }"})).json()
    assert "Did you mean 'viewer'?" in development_typo["errors"][0]["message"]


async def test_production_can_open_introspection_and_graphiql_to_admins(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    member = await factory.account(role=Role.MEMBER, join=owner.workspace_id)
    key = await factory.api_key(owner)
    settings = production(
        server.runtime.settings, graphql_introspection="admins", graphiql="admins"
    )
    async with live(server.runtime, settings) as client:
        as_owner = {"Authorization": f"Bearer {owner.token}"}
        allowed = await client.post("/graphql", json=INTROSPECT, headers=as_owner)
        assert allowed.json()["data"]["__schema"]["queryType"]["name"] == "Query"
        page = await client.get("/graphql", headers={**HTML, **as_owner})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        for token in (None, member.token, key):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            refused = (await client.post("/graphql", json=INTROSPECT, headers=headers)).json()
            assert limit_of(refused) == ("FORBIDDEN", "introspection")
            assert (await client.get("/graphql", headers={**HTML, **headers})).status_code == 404
