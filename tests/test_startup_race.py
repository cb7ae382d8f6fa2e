"""Replicas that start together: two `flowql serve` processes started at the same moment on one
fresh PostgreSQL database (development mode, one data directory) both come up; migrations, the
generated keys and the demo account are made once, and both serve the same account."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import POSTGRES_URL, free_port, require_postgres
from tests.test_cli import FLOWQL, START_TIMEOUT, STOP_TIMEOUT

DEMO_HINT = re.compile(r"flowql demo account: (\S+) / (\S+) ")
LOGIN = "mutation ($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"


@pytest.fixture
def fresh_database() -> Iterator[str]:
    require_postgres()
    name = f"flowql_race_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{POSTGRES_URL}/{name}"
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_servers_started_at_once_both_come_up_with_one_demo_account(
    fresh_database: str, tmp_path: Path
) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWQL_")}
    env |= {
        "FLOWQL_DATABASE_URL": fresh_database,
        "FLOWQL_DATA_DIR": str(tmp_path / "data"),  # shared: the generated keys race too
        "PYTHONUNBUFFERED": "1",
    }
    procs: list[tuple[subprocess.Popen[bytes], str, Path, Path]] = []
    ports = [free_port(), free_port()]
    for n, port in enumerate(ports):
        out, err = tmp_path / f"serve-{n}.out", tmp_path / f"serve-{n}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [FLOWQL, "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=stdout,
                stderr=stderr,
                cwd=tmp_path,
            )
        procs.append((proc, f"http://127.0.0.1:{port}", out, err))
    try:
        deadline = time.monotonic() + START_TIMEOUT * 2
        pending = list(procs)
        while pending:
            for item in list(pending):
                proc, url, out, err = item
                assert proc.poll() is None, (
                    f"a server exited {proc.returncode}\n{out.read_text()}\n{err.read_text()}"
                )
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        pending.remove(item)
                except httpx.TransportError:
                    pass
            assert time.monotonic() < deadline, "the servers did not both come up"
            time.sleep(0.1)

        outputs = [out.read_text() for _, _, out, _ in procs]
        hints = [DEMO_HINT.search(text) for text in outputs]
        assert sum(hint is not None for hint in hints) == 1, outputs  # printed by the creator only
        for _, _, _, err in procs:
            assert "Traceback" not in err.read_text() and "UniqueViolation" not in err.read_text()
        with psycopg.connect(fresh_database) as conn:
            users = conn.execute(
                "SELECT count(*) FROM users WHERE email = %s", ("demo@flowql.local",)
            ).fetchone()
            workspaces = conn.execute("SELECT count(*) FROM workspaces").fetchone()
        assert users == (1,) and workspaces == (1,)

        # One account, one set of keys: a token from one replica is good at the other.
        first, second = (url for _, url, _, _ in procs)
        login = httpx.post(
            f"{first}/graphql",
            json={"query": LOGIN, "variables": {"e": "demo@flowql.local", "p": "flowql-demo"}},
            timeout=30,
        ).json()
        token = login["data"]["login"]["accessToken"]
        viewer = httpx.post(
            f"{second}/graphql",
            json={"query": "{ viewer { kind workspaces { name } } }"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        assert viewer["data"]["viewer"] == {"kind": "user", "workspaces": [{"name": "Demo"}]}
    finally:
        for proc, _, _, _ in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=STOP_TIMEOUT)
