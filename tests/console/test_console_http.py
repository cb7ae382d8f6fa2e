"""The console's files over plain HTTP (content types, CSP, 404s, nothing secret in them) and the
GraphQL it added: `health` and `workflowActivity`, with their refusals."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, update

from flowql import console
from flowql.models import Process, ProcessStatus, Role, utcnow
from flowql.models.base import utcnow as now_utc
from tests.conftest import Factory, LiveServer, error_of
from tests.console.conftest import data_of, serve
from tests.engine.conftest import create_workflow, execute

pytestmark = pytest.mark.asyncio(loop_scope="module")

HEALTH = """query($ws: UUID!) { health(workspaceId: $ws) {
  dispatcher queueDepth running waiting checkedAt
  workers { id name lastHeartbeatAt }
  scheduledTriggers { id name workflowId workflowName cron nextRunAt }
  failedDeliveries { id eventType status attempts lastError }
} }"""
ACTIVITY = """query($id: UUID!, $hours: Int!) { workflowActivity(workflowId: $id, hours: $hours) {
  hour completed failed } }"""


async def test_the_page_and_its_modules_are_served_with_a_strict_csp(
    console_server: LiveServer,
) -> None:
    page = await console_server.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'", name
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    # No inline script or style: every <script> has a src, no <style>, no style= attributes.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) == []
    assert "<style" not in page.text and "style=" not in page.text
    expected = {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
    }
    served = [p for p in console.files() if p != "index.html"]
    assert {"app.js", "gql.js", "dom.js", "diagram.js", "chart.js", "console.css"} <= set(served)
    for path in served:
        response = await console_server.client.get(console.PREFIX + path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == expected[path[path.rindex(".") :]], path
        assert response.headers["content-security-policy"] == csp


@pytest.mark.parametrize(
    "path",
    [
        "/console/nope.js",
        "/console/__init__.py",
        "/console/../__init__.py",
        "/console/%2e%2e/__init__.py",
        "/console/..%2fapp.py",
        "/console/",
        "/console/static/app.js",
        "/app.js",
    ],
)
async def test_unknown_or_outside_paths_are_404(console_server: LiveServer, path: str) -> None:
    response = await console_server.client.get(path)
    assert response.status_code == 404, path
    assert "import " not in response.text


async def test_no_secret_reaches_the_served_files(console_server: LiveServer) -> None:
    settings = console_server.runtime.settings
    secrets = [settings.secret_key, *(settings.encryption_keys or "").split(",")]
    for path in console.files():
        text = (await console_server.client.get(console.PREFIX + path)).text
        for secret in secrets:
            assert secret and secret not in text, path
        # Tokens live in memory only: nothing is written to web storage or cookies.
        assert "localStorage" not in text and "sessionStorage" not in text, path
        assert "document.cookie" not in text, path
        assert "innerHTML" not in text, path  # API data is never parsed as markup


async def test_health_for_an_owner_and_forbidden_for_a_member(
    console_server: LiveServer, console_factory: Factory
) -> None:
    owner = await console_factory.account()
    member = await console_factory.account(join=owner.workspace_id, role=Role.MEMBER)
    stranger = await console_factory.account()
    scheduled = await create_workflow(
        console_server,
        owner.token,
        "hourly",
        [{"name": "tick", "type": "schedule", "options": {"cron": "0 * * * *"}}],
    )
    ws = str(owner.workspace_id)
    health = data_of(await console_server.gql(HEALTH, {"ws": ws}, token=owner.token))["health"]
    assert health["dispatcher"] == "inline"
    assert health["workers"] and health["workers"][0]["id"] == "inline"
    assert health["queueDepth"] == 0 and health["failedDeliveries"] == []
    [trigger] = health["scheduledTriggers"]
    assert trigger["workflowId"] == scheduled["id"] and trigger["workflowName"] == "hourly"
    assert trigger["cron"] == "0 * * * *" and trigger["nextRunAt"]

    refused = await console_server.gql(HEALTH, {"ws": ws}, token=member.token, expect_errors=True)
    assert error_of(refused)["code"] == "FORBIDDEN"
    assert refused["errors"][0]["message"] == "missing privilege audit:read"
    hidden = await console_server.gql(HEALTH, {"ws": ws}, token=stranger.token, expect_errors=True)
    assert error_of(hidden)["code"] == "NOT_FOUND"
    anonymous = await console_server.gql(HEALTH, {"ws": ws}, expect_errors=True)
    assert error_of(anonymous)["code"] == "UNAUTHORIZED"


async def test_workflow_activity_counts_ended_processes_per_hour(
    console_server: LiveServer, console_factory: Factory
) -> None:
    owner = await console_factory.account()
    stranger = await console_factory.account()
    workflow = await create_workflow(
        console_server,
        owner.token,
        "counted",
        [{"name": "t", "type": "transform", "options": {"payload": {"ok": True}}}],
    )
    done = [await execute(console_server, owner.token, workflow["id"]) for _ in range(3)]
    assert {p["status"] for p in done} == {"COMPLETED"}
    # One of them failed two hours ago (moved back in time as stored, FAILED).
    async with console_server.runtime.db.transaction() as session:
        await session.exec(
            update(Process)
            .where(col(Process.id) == uuid.UUID(done[0]["id"]))
            .values(status=ProcessStatus.FAILED, completed_at=utcnow() - timedelta(hours=2))
        )
    variables = {"id": workflow["id"], "hours": 24}
    buckets = data_of(await console_server.gql(ACTIVITY, variables, token=owner.token))[
        "workflowActivity"
    ]
    assert len(buckets) == 24
    assert buckets[-1]["completed"] == 2 and buckets[-1]["failed"] == 0
    assert buckets[-3]["failed"] == 1 and buckets[-3]["completed"] == 0
    assert sum(b["completed"] + b["failed"] for b in buckets) == 3
    hour = now_utc().replace(minute=0, second=0, microsecond=0)
    assert buckets[-1]["hour"].startswith(hour.strftime("%Y-%m-%dT%H:00:00"))

    bad = await console_server.gql(
        ACTIVITY, {**variables, "hours": 0}, token=owner.token, expect_errors=True
    )
    assert error_of(bad)["code"] == "VALIDATION_ERROR" and "hours" in error_of(bad)["fields"]
    hidden = await console_server.gql(ACTIVITY, variables, token=stranger.token, expect_errors=True)
    assert error_of(hidden)["code"] == "NOT_FOUND"


async def test_the_consoles_files_are_not_counted_against_the_rate_limit(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """Anonymous callers get 60 requests a minute per IP: loading the console (its page and
    modules) more often than that is not refused, while the API still is."""
    async with serve(sqlite_template, tmp_path, rate_limits_enabled=True) as server:
        for _ in range(70):
            response = await server.client.get(console.PREFIX + "app.js")
            assert response.status_code == 200
        statuses = [
            (
                await server.client.post("/graphql", json={"query": "{ serverInfo { name } }"})
            ).status_code
            for _ in range(61)
        ]
        assert statuses[0] == 200 and statuses[-1] == 429
