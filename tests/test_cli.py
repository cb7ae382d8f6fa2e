"""The `flowql` console script, run as a user runs it: real subprocesses, real servers on loopback.

Storage-touching commands run on SQLite and on a fresh (empty, unmigrated) PostgreSQL database.
Every server started here is stopped at teardown: terminate, then kill after a timeout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from sqlalchemy import Engine, create_engine, inspect, text
from sqlmodel import Session, SQLModel, select

from flowql.auth.privileges import ALL_PRIVILEGES
from flowql.auth.tokens import hash_token
from flowql.db import alembic_config
from flowql.models import ApiKey, Membership, Role, User, Workspace
from flowql.settings import Settings, async_database_url, sync_database_url
from tests.conftest import POSTGRES_URL, free_port, require_postgres

ROOT = Path(__file__).resolve().parent.parent
COMMITTED_SCHEMA = ROOT / "schema.graphql"
PASSWORD = "correct-horse-battery"
COMMAND_TIMEOUT = 120
START_TIMEOUT = 60
STOP_TIMEOUT = 15


def flowql_executable() -> str:
    beside = Path(sys.executable).parent / "flowql"
    if beside.exists():
        return str(beside)
    found = shutil.which("flowql")
    if found is None:
        pytest.fail("the flowql console script is not installed (pip install -e .)")
    return found


FLOWQL = flowql_executable()


# -- environment and databases -----------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def base_env(tmp_path: Path, data_dir: Path) -> dict[str, str]:
    """The caller's environment without any FLOWQL_* setting, with this test's data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWQL_")}
    env["FLOWQL_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all: SQLite file path, or a brand-new PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'flowql.db'}"
        return
    require_postgres()
    name = f"flowql_cli_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{POSTGRES_URL}/{name}"
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def env(base_env: dict[str, str], empty_database_url: str) -> dict[str, str]:
    return {**base_env, "FLOWQL_DATABASE_URL": empty_database_url}


def sync_engine(url: str) -> Engine:
    """A plain synchronous engine on the URL as the CLI was given it."""
    return create_engine(sync_database_url(async_database_url(url)))


def flowql(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWQL, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"{result.args} exited {result.returncode}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}"
    )
    return result


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers=headers,
            timeout=30,
        )
        body: dict[str, Any] = response.json()
        return body

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        return self.proc.returncode


Launch = Callable[..., Served]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Starts `flowql serve` on a free loopback port and waits for /healthz; stops all at the end."""
    started: list[Served] = []

    def start(env: dict[str, str], *extra: str) -> Served:
        port = free_port()
        n = len(started)
        stdout_path = tmp_path / f"serve-{n}.out"
        stderr_path = tmp_path / f"serve-{n}.err"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                [FLOWQL, "serve", "--host", "127.0.0.1", "--port", str(port), *extra],
                env=env,
                stdout=out,
                stderr=err,
                cwd=tmp_path,
            )
        served = Served(proc, f"http://127.0.0.1:{port}", stdout_path, stderr_path)
        started.append(served)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(
                    f"flowql serve exited {proc.returncode} before answering\n"
                    f"stdout:\n{served.stdout}\nstderr:\n{served.stderr}"
                )
            try:
                if httpx.get(f"{served.url}/healthz", timeout=2).status_code == 200:
                    return served
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"flowql serve did not answer /healthz in {START_TIMEOUT}s\n{served.stderr}")

    yield start
    for served in started:
        served.stop()


# -- db upgrade --------------------------------------------------------------------------------


def test_db_upgrade_creates_every_table_and_is_idempotent(
    env: dict[str, str], empty_database_url: str
) -> None:
    engine = sync_engine(empty_database_url)
    try:
        result = ok(flowql(env, "db", "upgrade"))
        assert "newest migration" in result.stdout

        tables = set(inspect(engine).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables
        assert "alembic_version" in tables

        ok(flowql(env, "db", "upgrade"))  # a second run changes nothing and does not fail
        head = ScriptDirectory.from_config(
            alembic_config(Settings(database_url=empty_database_url))
        ).get_current_head()
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [v for (v,) in versions] == [head]
    finally:
        engine.dispose()


# -- user create -------------------------------------------------------------------------------


def user_create(
    env: dict[str, str],
    email: str,
    workspace: str | None = None,
    *,
    role: str | None = None,
    password: str = PASSWORD,
    create: bool = False,
    instance_admin: bool = False,
) -> subprocess.CompletedProcess[str]:
    args = ["user", "create", "--email", email, "--password", password]
    if instance_admin:
        args += ["--instance-admin"]
    if workspace is not None:
        args += ["--workspace", workspace]
    if create:
        args += ["--create-workspace"]
    if role is not None:
        args += ["--role", role]
    return flowql(env, *args)


def memberships_of(engine: Engine, email: str) -> list[tuple[str, Role]]:
    with Session(engine) as session:
        rows = session.exec(
            select(Workspace.name, Membership.role)
            .join(Membership, Membership.workspace_id == Workspace.id)
            .join(User, User.id == Membership.user_id)
            .where(User.email == email)
        ).all()
    return [(name, Role(role)) for name, role in rows]


def test_user_create_prints_the_new_user_id_and_owns_the_new_workspace(
    env: dict[str, str], empty_database_url: str
) -> None:
    result = ok(user_create(env, "Ada@Example.com", "Acme", create=True))
    user_id = uuid.UUID(result.stdout.strip())

    joined = ok(user_create(env, "bob@example.com", "Acme", role="member"))

    engine = sync_engine(empty_database_url)
    try:
        with Session(engine) as session:
            user = session.exec(select(User).where(User.id == user_id)).one()
            assert user.email == "ada@example.com"
            assert PASSWORD not in user.password_hash
            assert len(session.exec(select(Workspace)).all()) == 1
        assert memberships_of(engine, "ada@example.com") == [("Acme", Role.OWNER)]
        assert memberships_of(engine, "bob@example.com") == [("Acme", Role.MEMBER)]
        assert uuid.UUID(joined.stdout.strip()) != user_id
    finally:
        engine.dispose()


def test_user_create_refuses_bad_input_cleanly_and_writes_nothing(
    env: dict[str, str], empty_database_url: str
) -> None:
    ok(user_create(env, "ada@example.com"))

    duplicate = user_create(env, "ada@example.com")
    short = user_create(env, "eve@example.com", password="short")
    # A member cannot create a workspace: it would be left without an owner.
    ownerless = user_create(env, "mo@example.com", "Nobody owns me", role="member", create=True)
    # A workspace that does not exist is created only when asked: never from a typo.
    typo = user_create(env, "ty@example.com", "Acne")
    # --role says which role in --workspace: alone it is a mistake.
    roleless = user_create(env, "ro@example.com", role="admin")

    for result, words in (
        (duplicate, "already registered"),
        (short, "password"),
        (ownerless, "owner"),
        (typo, "--create-workspace"),
        (roleless, "--role needs --workspace"),
    ):
        assert result.returncode != 0
        assert words in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""

    engine = sync_engine(empty_database_url)
    try:
        with Session(engine) as session:
            assert [u.email for u in session.exec(select(User)).all()] == ["ada@example.com"]
            assert session.exec(select(Workspace)).all() == []
    finally:
        engine.dispose()


# -- apikey create -----------------------------------------------------------------------------

VIEWER = "{ viewer { kind user { id } workspaces { name viewerPrivileges } } }"
CREATE_WORKFLOW = 'mutation { createWorkflow(input: {name: "From the CLI key"}) { id name } }'
WORKFLOWS = "{ workflows { totalCount edges { node { name } } } }"


def create_key(env: dict[str, str], *args: str) -> str:
    result = ok(flowql(env, "apikey", "create", "--workspace", "Acme", *args))
    lines = result.stdout.splitlines()
    key = lines[-1]
    assert key == key.strip() and " " not in key and key.startswith("fql_"), result.stdout
    assert "shown only this once" in result.stderr
    return key


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


def test_apikey_create_prints_a_key_that_authenticates_with_its_privileges(
    env: dict[str, str], launch: Launch
) -> None:
    env = {**env, "FLOWQL_DEMO_ACCOUNTS": "false"}
    ok(user_create(env, "ada@example.com", "Acme", create=True))
    full = create_key(env, "--name", "deploy", "--description", "everything")
    read_only = create_key(env, "--name", "reader", "--privilege", "workflow:read")
    missing = flowql(env, "apikey", "create", "--workspace", "Nowhere", "--name", "x")
    assert missing.returncode != 0
    assert "Workspace not found" in missing.stderr
    assert missing.stdout == ""

    server = launch(env, "--no-worker")

    body = server.gql(VIEWER, token=full)
    assert body["data"]["viewer"] == {
        "kind": "api_key",
        "user": None,
        "workspaces": [{"name": "Acme", "viewerPrivileges": sorted(ALL_PRIVILEGES)}],
    }
    created = server.gql(CREATE_WORKFLOW, token=full)
    assert created["data"]["createWorkflow"]["name"] == "From the CLI key"

    body = server.gql(VIEWER, token=read_only)
    assert body["data"]["viewer"]["workspaces"] == [
        {"name": "Acme", "viewerPrivileges": ["workflow:read"]}
    ]
    listed = server.gql(WORKFLOWS, token=read_only)
    assert listed["data"]["workflows"]["totalCount"] == 1
    refused = server.gql(CREATE_WORKFLOW, token=read_only)
    assert error_codes(refused) == ["FORBIDDEN"]
    assert server.gql(WORKFLOWS, token=full)["data"]["workflows"]["totalCount"] == 1

    forged = full[:-4] + ("AAAA" if not full.endswith("AAAA") else "BBBB")
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": VIEWER},
        headers={"Authorization": f"Bearer {forged}"},
        timeout=30,
    )
    assert response.status_code == 401
    assert error_codes(response.json()) == ["UNAUTHORIZED"]


def test_a_workspace_name_several_tenants_share_is_refused_and_an_id_is_accepted(
    env: dict[str, str], empty_database_url: str
) -> None:
    ada = uuid.UUID(ok(user_create(env, "ada@example.com", "Acme", create=True)).stdout.strip())
    eve = uuid.UUID(ok(user_create(env, "eve@example.com", "Eve's", create=True)).stdout.strip())
    engine = sync_engine(empty_database_url)
    try:
        with Session(engine) as session:  # another tenant renames its workspace to "Acme"
            renamed = session.exec(select(Workspace).where(Workspace.name == "Eve's")).one()
            renamed.name = "Acme"
            session.add(renamed)
            session.commit()
            eves_workspace = renamed.id
            adas_workspace = (
                session.exec(select(Workspace).where(Workspace.owner_id == ada)).one().id
            )

        by_name = flowql(env, "apikey", "create", "--workspace", "Acme", "--name", "k")
        joining = user_create(env, "mo@example.com", "Acme", role="member")
        unknown = flowql(env, "apikey", "create", "--workspace", str(uuid.uuid4()), "--name", "k")
        for result, words in (
            (by_name, "several workspaces are named 'Acme'"),
            (joining, "several workspaces are named 'Acme'"),
            (unknown, "Workspace not found"),
        ):
            assert result.returncode != 0
            assert words in result.stderr
            assert result.stdout == ""

        key = ok(
            flowql(env, "apikey", "create", "--workspace", str(eves_workspace), "--name", "k")
        ).stdout.splitlines()[-1]
        ok(user_create(env, "mo@example.com", str(adas_workspace), role="member"))
        with Session(engine) as session:
            issued = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_token(key))).one()
            assert (issued.workspace_id, issued.user_id) == (eves_workspace, eve)
        assert memberships_of(engine, "mo@example.com") == [("Acme", Role.MEMBER)]
        with Session(engine) as session:
            mo = session.exec(select(User).where(User.email == "mo@example.com")).one()
            membership = session.exec(select(Membership).where(Membership.user_id == mo.id)).one()
            assert membership.workspace_id == adas_workspace
    finally:
        engine.dispose()


# -- serve -------------------------------------------------------------------------------------

DEMO_HINT = re.compile(r"flowql demo account: (\S+) / (\S+) \(workspace '([^']+)'\)")
LOGIN = "mutation ($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"


@pytest.fixture
def serve_env(backend: str, base_env: dict[str, str], request: pytest.FixtureRequest) -> Any:
    """SQLite: nothing but a data dir (the embedded default). PostgreSQL: a fresh database."""
    if backend == "sqlite":
        return base_env
    url: str = request.getfixturevalue("empty_database_url")
    return {**base_env, "FLOWQL_DATABASE_URL": url}


def test_serve_on_a_fresh_data_dir_migrates_creates_the_demo_account_and_keeps_its_keys(
    backend: str, serve_env: dict[str, str], data_dir: Path, launch: Launch
) -> None:
    assert not data_dir.exists()
    server = launch(serve_env)

    assert f"GraphiQL at {server.url}/graphql" in server.stdout
    hint = DEMO_HINT.search(server.stdout)
    assert hint is not None, server.stdout
    email, password, workspace = hint.groups()
    assert f'login(email: "{email}", password: "{password}")' in server.stdout

    body = server.gql(LOGIN, {"e": email, "p": password})
    token = body["data"]["login"]["accessToken"]
    viewer = server.gql(VIEWER, token=token)["data"]["viewer"]
    assert viewer["kind"] == "user"
    assert [w["name"] for w in viewer["workspaces"]] == [workspace]

    for name in ("secret.key", "encryption.key"):
        key_file = data_dir / name
        assert key_file.read_text().strip()
        assert key_file.stat().st_mode & 0o077 == 0, f"{name} is readable by others"
    Fernet((data_dir / "encryption.key").read_text().strip().encode())
    if backend == "sqlite":
        assert (data_dir / "flowql.db").is_file()
    # SIGTERM shuts down gracefully (uvicorn then re-raises the signal, hence -SIGTERM).
    assert server.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.stderr

    # A restart keeps the keys (so sessions survive) and does not make a second demo account.
    keys = {name: (data_dir / name).read_text() for name in ("secret.key", "encryption.key")}
    again = launch(serve_env)
    assert DEMO_HINT.search(again.stdout) is None, (
        "the demo login is printed on the first start only"
    )
    assert f"GraphiQL at {again.url}/graphql" in again.stdout
    assert {name: (data_dir / name).read_text() for name in keys} == keys
    assert again.gql(VIEWER, token=token)["data"]["viewer"] == viewer
    assert "login" in again.gql(LOGIN, {"e": email, "p": password})["data"]


def production_env(base_env: dict[str, str], tmp_path: Path, **settings: str) -> dict[str, str]:
    return {
        **base_env,
        "FLOWQL_ENV": "production",
        "FLOWQL_DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}",
        **{f"FLOWQL_{k.upper()}": v for k, v in settings.items()},
    }


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        pytest.param({}, "FLOWQL_SECRET_KEY", id="no-secret-key"),
        pytest.param(
            {"encryption_keys": Fernet.generate_key().decode()},
            "FLOWQL_SECRET_KEY",
            id="encryption-keys-but-no-secret-key",
        ),
        pytest.param({"secret_key": "s" * 48}, "FLOWQL_ENCRYPTION_KEYS", id="no-encryption-keys"),
        pytest.param(
            {
                "secret_key": "s" * 48,
                "encryption_keys": Fernet.generate_key().decode(),
                "demo_accounts": "true",
            },
            "FLOWQL_DEMO_ACCOUNTS",
            id="demo-accounts-on",
        ),
    ],
)
def test_production_refuses_to_start_with_a_clear_message(
    settings: dict[str, str],
    named: str,
    base_env: dict[str, str],
    data_dir: Path,
    tmp_path: Path,
) -> None:
    env = production_env(base_env, tmp_path, **settings)
    result = flowql(env, "serve", "--host", "127.0.0.1", "--port", str(free_port()))
    assert result.returncode != 0
    assert named in result.stderr
    assert "production" in result.stderr
    assert "Traceback" not in result.stderr
    # Refused before touching anything: no generated keys, no database.
    assert not (data_dir / "secret.key").exists()
    assert not (data_dir / "encryption.key").exists()
    assert not (tmp_path / "prod.db").exists()


def test_production_with_its_keys_starts_without_demo_account_or_generated_keys(
    base_env: dict[str, str], data_dir: Path, tmp_path: Path, launch: Launch
) -> None:
    env = production_env(
        base_env, tmp_path, secret_key="s" * 48, encryption_keys=Fernet.generate_key().decode()
    )
    server = launch(env, "--no-worker")
    assert "demo account" not in server.stdout
    body = server.gql(LOGIN, {"e": "demo@flowql.local", "p": "flowql-demo"})
    assert error_codes(body) == ["UNAUTHORIZED"]
    assert not (data_dir / "secret.key").exists()
    assert not (data_dir / "encryption.key").exists()


# -- settings errors and schema print ----------------------------------------------------------


def test_invalid_settings_are_reported_by_name_without_a_traceback(
    base_env: dict[str, str],
) -> None:
    result = flowql({**base_env, "FLOWQL_PORT": "eighty", "FLOWQL_ENV": "staging"}, "db", "upgrade")
    assert result.returncode != 0
    assert "FLOWQL_PORT" in result.stderr
    assert "FLOWQL_ENV" in result.stderr
    assert "Traceback" not in result.stderr


REGENERATE = "schema.graphql is stale: run `flowql schema print -o schema.graphql` and commit it"


def test_schema_print_matches_the_committed_schema_graphql(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    printed = ok(flowql(base_env, "schema", "print")).stdout
    assert printed == COMMITTED_SCHEMA.read_text(), REGENERATE

    out = tmp_path / "schema.graphql"
    ok(flowql(base_env, "schema", "print", "-o", str(out)))
    assert out.read_text() == printed


# -- what an operator expects --------------------------------------------------------------------


def test_version_and_every_commands_help_describes_its_arguments(base_env: dict[str, str]) -> None:
    from flowql import __version__
    from flowql.cli import build_parser

    version = ok(flowql(base_env, "--version"))
    assert version.stdout.strip() == f"flowql {__version__}"

    def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Any]:
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from commands(child, (*path, name))

    seen = []
    for path, parser in commands(build_parser()):
        seen.append(" ".join(path))
        assert parser.description, f"`flowql {' '.join(path)} --help` has no description"
        for action in parser._actions:
            assert action.help, f"`flowql {' '.join(path)}`: {action.dest} has no help"
    assert {"serve", "user create", "user admin", "apikey create", "workspace plan"} <= set(seen)
    shown = ok(flowql(base_env, "apikey", "create", "--help")).stdout
    assert "--privilege" in shown and "workflow:read" in shown


def test_apikey_create_lists_the_valid_privileges_when_one_is_wrong(
    env: dict[str, str],
) -> None:
    ok(user_create(env, "ada@example.com", "Acme", create=True))
    wrong = flowql(
        env,
        "apikey",
        "create",
        "--workspace",
        "Acme",
        "--name",
        "k",
        "--privilege",
        "workflow:raed",
    )
    assert wrong.returncode != 0 and wrong.stdout == ""
    assert "unknown privilege workflow:raed" in wrong.stderr
    for privilege in ALL_PRIVILEGES:
        assert privilege in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_plans_from_the_cli_and_instance_admins(
    env: dict[str, str], empty_database_url: str
) -> None:
    ok(user_create(env, "ada@example.com", "Acme", create=True))
    assert ok(flowql(env, "workspace", "plan", "Acme")).stdout.strip() == "unlimited"
    assert ok(flowql(env, "workspace", "plan", "Acme", "starter")).stdout.strip() == "starter"
    assert ok(flowql(env, "workspace", "plan", "Acme")).stdout.strip() == "starter"
    bad = flowql(env, "workspace", "plan", "Acme", "gold")
    assert bad.returncode != 0 and "invalid choice" in bad.stderr and "unlimited" in bad.stderr
    missing = flowql(env, "workspace", "plan", "Nowhere", "free")
    assert missing.returncode != 0 and "Workspace not found" in missing.stderr

    ok(user_create(env, "root@example.com", instance_admin=True))
    ok(flowql(env, "user", "admin", "ada@example.com"))
    engine = sync_engine(empty_database_url)
    try:
        with Session(engine) as session:
            admins = session.exec(select(User.email).where(User.is_instance_admin)).all()
            assert sorted(admins) == ["ada@example.com", "root@example.com"]
        ok(flowql(env, "user", "admin", "ada@example.com", "--off"))
        with Session(engine) as session:
            admins = session.exec(select(User.email).where(User.is_instance_admin)).all()
            assert admins == ["root@example.com"]
    finally:
        engine.dispose()


def test_serve_on_a_busy_port_says_so_before_announcing_anything(
    base_env: dict[str, str], data_dir: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = flowql(base_env, "serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "serving" not in result.stdout and "demo account" not in result.stdout
    assert "Traceback" not in result.stderr
