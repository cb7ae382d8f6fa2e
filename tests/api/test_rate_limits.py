"""Per-plan rate limits on every HTTP request, with X-RateLimit-* headers and 429 past the limit.

Self-hosted, a workspace has no plan (UNLIMITED) until an instance admin assigns one: its callers
are never refused; anonymous callers keep a per-client budget; `/v1` always sends the headers."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import col, update

from flowql.auth.ratelimit import UNLIMITED_REPORTED
from flowql.models import Plan, Workspace
from flowql.settings import Settings
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow


@pytest.fixture(autouse=True)
def limits_on(settings: Settings) -> None:
    settings.rate_limits_enabled = True


VIEWER = {"query": "{ viewer { kind } }"}


async def set_plan(server: LiveServer, workspace_id: uuid.UUID, plan: Plan) -> None:
    async with server.runtime.db.transaction() as session:
        await session.exec(
            update(Workspace).where(col(Workspace.id) == workspace_id).values(plan=plan)
        )


async def test_a_workspace_without_a_plan_is_never_limited(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    key = await factory.api_key(account)
    headers = {"Authorization": f"Bearer {account.token}"}
    for _ in range(75):
        response = await server.client.post("/graphql", json=VIEWER, headers=headers)
        assert response.status_code == 200
        assert "x-ratelimit-limit" not in response.headers
    # Document 004's API still reports its headers, counting, and never refuses.
    key_headers = {"Authorization": f"Bearer {key}"}
    for number in range(1, 76):
        listed = await server.client.get("/v1/workflows", headers=key_headers)
        assert listed.status_code == 200
        assert listed.headers["x-ratelimit-limit"] == str(UNLIMITED_REPORTED)
        assert listed.headers["x-ratelimit-remaining"] == str(UNLIMITED_REPORTED - number)
        assert int(listed.headers["x-ratelimit-reset"]) > 0


async def test_anonymous_callers_keep_a_per_client_budget(server: LiveServer) -> None:
    login = {
        "query": 'mutation { login(email: "nobody@example.com", password: "guess") { accessToken } }'
    }
    statuses = [(await server.client.post("/graphql", json=login)).status_code for _ in range(61)]
    assert statuses[:60].count(429) == 0
    assert statuses[60] == 429


async def test_free_plan_allows_60_per_minute_then_429_with_retry_after(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    await set_plan(server, account.workspace_id, Plan.FREE)
    headers = {"Authorization": f"Bearer {account.token}"}
    first = await server.client.post("/graphql", json=VIEWER, headers=headers)
    assert first.headers["x-ratelimit-limit"] == "60"
    assert first.headers["x-ratelimit-remaining"] == "59"
    assert int(first.headers["x-ratelimit-reset"]) > 0
    for _ in range(59):
        ok = await server.client.post("/graphql", json=VIEWER, headers=headers)
        assert ok.status_code == 200
    limited = await server.client.post("/graphql", json=VIEWER, headers=headers)
    assert limited.status_code == 429
    assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-ratelimit-remaining"] == "0"
    # Another caller has a budget of its own.
    other = await factory.account()
    await set_plan(server, other.workspace_id, Plan.FREE)
    fresh = await server.client.post(
        "/graphql", json=VIEWER, headers={"Authorization": f"Bearer {other.token}"}
    )
    assert fresh.status_code == 200


async def test_limits_follow_the_workspace_plan(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    await set_plan(server, account.workspace_id, Plan.PRO)
    response = await server.client.post(
        "/graphql", json=VIEWER, headers={"Authorization": f"Bearer {account.token}"}
    )
    assert response.headers["x-ratelimit-limit"] == "300"


async def test_rest_mounts_answer_429_in_their_own_format(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    await set_plan(server, account.workspace_id, Plan.FREE)
    key = await factory.api_key(account)
    headers = {"Authorization": f"Bearer {key}"}
    last = None
    for _ in range(61):
        last = await server.client.get("/v1/workflows", headers=headers)
    assert last is not None and last.status_code == 429
    assert last.json() == {
        "success": False,
        "error": {
            "code": "RATE_LIMITED",
            "message": "Too many requests: rate limit exceeded",
            "details": {"retryAfter": int(last.headers["retry-after"])},
        },
    }


INBOX = [{"name": "inbox", "type": "webhook", "options": {"path": "in"}}]


async def test_hooks_count_against_their_workspaces_plan(
    server: LiveServer, factory: Factory
) -> None:
    unlimited = await factory.account()
    limited = await factory.account()
    await set_plan(server, limited.workspace_id, Plan.FREE)
    open_hook = await create_workflow(server, unlimited.token, "open", INBOX)
    free_hook = await create_workflow(server, limited.token, "free", INBOX)

    for _ in range(65):  # no plan: a batch from one sender is never refused
        response = await server.client.post(f"/hooks/{open_hook['id']}/in", json={})
        assert response.status_code < 400, response.text
        assert "x-ratelimit-limit" not in response.headers
    statuses = [
        (await server.client.post(f"/hooks/{free_hook['id']}/in", json={})).status_code
        for _ in range(61)
    ]
    assert 429 not in statuses[:60] and statuses[60] == 429
