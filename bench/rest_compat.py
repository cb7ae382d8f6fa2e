"""REST compatibility overhead: each family's most used read through its REST route vs the same
GraphQL operation sent directly to /graphql, on one `flowql serve` in the same run.

Each pair is loaded with wrk (one connection, alternating short rounds) and prints the p50
latency of both, their ratio, and the server's CPU per request (steadier than latency on a
shared machine). The REST route runs the same GraphQL document in process, then shapes it: the
ratio is the price of the translation. Needs wrk (`apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from bench.reads import Load, combine, environment, free_port, loaded, lua_get, lua_post, started
from flowql.app import build_runtime
from flowql.db import upgrade
from flowql.rest_compat.activeworkflow import AGENT_FIELDS
from flowql.rest_compat.wayscript.http import LAIR
from flowql.services.auth import create_api_key, create_user, login
from flowql.services.workspaces import create_workspace
from flowql.settings import Settings


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        settings = Settings(
            database_url=f"sqlite:///{tmp / 'bench.db'}",
            data_dir=tmp,
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
        await runtime.db.dispose()

        port = free_port()
        command = [
            sys.executable,
            "-c",
            "import sys; from flowql.cli import main; sys.exit(main())",
        ]
        command += ["serve", "--no-worker", "--port", str(port), "--log-level", "warning"]
        async with started(command, environment(settings), port) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                response = await client.post(
                    "/graphql",
                    headers={"Authorization": f"Bearer {token}"},
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
                created = response.json()["data"]["createWorkflow"]

            def gql(document: str, variables: dict[str, Any], bearer: str = token) -> str:
                return lua_post({"query": document, "variables": variables}, bearer)

            # name -> (REST path, its bearer, the same operation sent to /graphql)
            families = {
                "ActiveWorkflow GET /api/v1/workflows/:id": (
                    f"/compat/activeworkflow/api/v1/workflows/{created['number']}",
                    token,
                    gql(
                        f"query($n: Int!) {{ workflow(number: $n) {{ number name description agents {{ {AGENT_FIELDS} }} }} }}",
                        {"n": created["number"]},
                    ),
                ),
                "WayScript GET /lairs/:id": (
                    f"/compat/wayscript/lairs/{created['id']}",
                    token,
                    gql(LAIR, {"id": created["id"]}),
                ),
                "platform v1 GET /workflows": (
                    "/v1/workflows",
                    key,
                    gql(
                        "{ workflows(first: 20) { totalCount nodes { number name status createdAt updatedAt } } }",
                        {},
                        key,
                    ),
                ),
                "LetsFlow GET /scenarios": (
                    "/compat/letsflow/scenarios",
                    token,
                    gql("{ scenarios(first: 100) { nodes { id name title description } } }", {}),
                ),
            }
            print(
                f"REST compatibility vs direct GraphQL (SQLite; wrk, 1 connection, "
                f"{args.rounds} x {args.duration:g} s per side, alternating)"
            )
            for name, (path, bearer, direct) in families.items():
                rest_runs: list[Load] = []
                direct_runs: list[Load] = []
                loaded(server, path, lua_get(bearer), 1, args, tmp)  # warm-up
                loaded(server, "/graphql", direct, 1, args, tmp)
                for _ in range(args.rounds):
                    rest_runs.append(
                        loaded(server, path, lua_get(bearer), args.duration, args, tmp)
                    )
                    direct_runs.append(loaded(server, "/graphql", direct, args.duration, args, tmp))
                r, d = combine(rest_runs), combine(direct_runs)
                print(
                    f"  {name}: REST p50 {r.p50_ms:.2f} ms, GraphQL p50 {d.p50_ms:.2f} ms"
                    f" -> ratio {r.p50_ms / d.p50_ms:.2f}x; CPU/request REST {r.cpu_ms:.2f} ms,"
                    f" GraphQL {d.cpu_ms:.2f} ms -> {r.cpu_ms / d.cpu_ms:.2f}x"
                    f"; errors {r.errors + d.errors}"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=1, help=argparse.SUPPRESS)
    asyncio.run(main(parser.parse_args()))
