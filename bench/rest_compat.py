"""REST compatibility overhead: each family's most used read through its REST route vs the same
GraphQL operation sent directly to /graphql, on one server in the same run.

Prints the p50 latency of both and their ratio per family (the REST route runs the same
GraphQL document in process, then shapes it; the ratio is the price of the translation).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from bench.engine import serve
from flowql.app import build_runtime, create_app
from flowql.db import upgrade
from flowql.rest_compat.activeworkflow import AGENT_FIELDS
from flowql.rest_compat.wayscript_http import LAIR
from flowql.services.auth import create_api_key, create_user, login
from flowql.services.workspaces import create_workspace
from flowql.settings import Settings


async def timed(client: httpx.AsyncClient, n: int, send: Any) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = await send(client)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return samples


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            data_dir=Path(tmp),
            secret_key="bench" * 8,
            encryption_keys=Fernet.generate_key().decode(),
            demo_accounts=False,
            rate_limits_enabled=False,
        )
        upgrade(settings)
        runtime = build_runtime(settings)
        async with runtime.db.transaction() as session:
            user = await create_user(
                session, f"b-{uuid.uuid4().hex[:6]}@example.com", "bench-password"
            )
            workspace = await create_workspace(session, user, "bench")
            key = (await create_api_key(session, workspace.id, "bench", user_id=user.id)).token
        async with runtime.db.transaction() as session:
            token = (await login(session, settings, user.email, "bench-password")).access_token
        server, task, url = await serve(create_app(settings, runtime))
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            created = (
                await client.post(
                    "/graphql",
                    headers=auth,
                    json={
                        "query": "mutation($i: CreateWorkflowInput!) { createWorkflow(input: $i) { id number } }",
                        "variables": {
                            "i": {
                                "name": "bench",
                                "agents": [
                                    {"name": "a", "type": "message"},
                                    {"name": "b", "type": "message", "sources": ["a"]},
                                ],
                            }
                        },
                    },
                )
            ).json()["data"]["createWorkflow"]

            def gql(
                document: str, variables: dict[str, Any], headers: dict[str, str] = auth
            ) -> Any:
                return lambda c: c.post(
                    "/graphql", headers=headers, json={"query": document, "variables": variables}
                )

            families = {
                "ActiveWorkflow GET /api/v1/workflows/:id": (
                    lambda c: c.get(
                        f"/compat/activeworkflow/api/v1/workflows/{created['number']}", headers=auth
                    ),
                    gql(
                        f"query($n: Int!) {{ workflow(number: $n) {{ number name description agents {{ {AGENT_FIELDS} }} }} }}",
                        {"n": created["number"]},
                    ),
                ),
                "WayScript GET /lairs/:id": (
                    lambda c: c.get(f"/compat/wayscript/lairs/{created['id']}", headers=auth),
                    gql(LAIR, {"id": created["id"]}),
                ),
                "platform v1 GET /workflows": (
                    lambda c: c.get("/v1/workflows", headers={"Authorization": f"Bearer {key}"}),
                    gql(
                        "{ workflows(first: 20) { totalCount nodes { number name status createdAt updatedAt } } }",
                        {},
                        {"Authorization": f"Bearer {key}"},
                    ),
                ),
                "LetsFlow GET /scenarios": (
                    lambda c: c.get("/compat/letsflow/scenarios", headers=auth),
                    gql("{ scenarios(first: 100) { nodes { id name title description } } }", {}),
                ),
            }
            print(
                f"REST compatibility vs direct GraphQL ({args.requests} sequential requests each, SQLite)"
            )
            for name, (rest, direct) in families.items():
                await timed(client, 5, rest)
                await timed(client, 5, direct)
                rest_lat = await timed(client, args.requests, rest)
                direct_lat = await timed(client, args.requests, direct)
                r, d = statistics.median(rest_lat) * 1000, statistics.median(direct_lat) * 1000
                print(
                    f"  {name}: REST p50 {r:.2f} ms, GraphQL p50 {d:.2f} ms -> ratio {r / d:.2f}x"
                )
        server.should_exit = True
        await task
        await runtime.db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
