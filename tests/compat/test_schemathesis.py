"""schemathesis against each mount's OpenAPI: no 5xx, every response conforms to the schema.

A real `flowql serve` runs in a subprocess (schemathesis calls are synchronous) on a SQLite file
seeded with a workflow, processes and messages, so generated requests also hit existing rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from tests.conftest import free_port
from tests.security.live import report

FLOWQL = str(Path(sys.executable).parent / "flowql")
MOUNTS = ["/compat/activeworkflow", "/v1", "/compat/wayscript", "/compat/letsflow"]

pytestmark = pytest.mark.slow


def graphql(
    url: str, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers
    ).json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


@pytest.fixture(scope="module")
def compat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("schemathesis")
    env = {
        **os.environ,
        "FLOWQL_DATA_DIR": str(data_dir),
        "FLOWQL_SECRET_KEY": "schemathesis-secret-" + "k" * 32,
        "FLOWQL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "FLOWQL_DEMO_ACCOUNTS": "false",
        "FLOWQL_RATE_LIMITS_ENABLED": "false",
        "FLOWQL_ALLOW_PRIVATE_NETWORKS": "true",
    }
    subprocess.run(
        [
            FLOWQL,
            "user",
            "create",
            "--email",
            "fuzz@example.com",
            "--password",
            "fuzz-password",
            "--workspace",
            "Fuzz",
            "--create-workspace",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    api_key = (
        subprocess.run(
            [FLOWQL, "apikey", "create", "--workspace", "Fuzz", "--name", "fuzz"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    port = free_port()
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [FLOWQL, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    token = graphql(
        url,
        'mutation { login(email: "fuzz@example.com", password: "fuzz-password") { accessToken } }',
        {},
    )["login"]["accessToken"]
    workflow = graphql(
        url,
        "mutation($i: CreateWorkflowInput!) { createWorkflow(input: $i) { id } }",
        {
            "i": {
                "name": "Fuzzed",
                "agents": [
                    {"name": "start", "type": "message"},
                    {
                        "name": "next",
                        "type": "transform",
                        "sources": ["start"],
                        "options": {"payload": {"a": "1"}},
                    },
                ],
            }
        },
        token,
    )["createWorkflow"]
    for n in range(3):
        graphql(
            url,
            "mutation($id: UUID!, $n: JSON) { executeWorkflow(id: $id, input: $n, wait: true) { id } }",
            {"id": workflow["id"], "n": {"n": n}},
            token,
        )
    yield {"url": url, "token": token, "api_key": api_key}
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def headers_for(mount: str, server: dict[str, Any]) -> dict[str, str]:
    if mount == "/v1":
        return {"Authorization": f"Bearer {server['api_key']}"}
    return {"Authorization": f"Bearer {server['token']}"}


@pytest.mark.parametrize("mount", MOUNTS)
def test_mount_conforms_to_its_openapi(compat_server: dict[str, Any], mount: str) -> None:
    url = compat_server["url"]
    schema = schemathesis.openapi.from_url(f"{url}{mount}/openapi.json")
    failures: list[str] = []
    sent = 0
    operations = 0
    for result in schema.get_all_operations():
        operations += 1
        operation = result.ok()

        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            nonlocal sent
            sent += 1
            response = case.call(
                base_url=f"{url}{mount}", headers=headers_for(mount, compat_server)
            )
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
            )
            case.validate_response(
                response, excluded_checks=[positive_data_acceptance, negative_data_rejection]
            )

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then fail once
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    report(
        f"schemathesis {mount}: {sent} requests over {operations} operations, "
        f"{len(failures)} operations failing"
    )
    assert not failures, "\n\n".join(failures)
