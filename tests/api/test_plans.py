"""Plans are assigned per workspace by an instance admin (document 004's rate limits).

A workspace starts with no plan (UNLIMITED); only an instance admin, member of it or not, gives
it one, and its callers' limits follow at once. Owners cannot pick their own plan."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, update

from flowql.models import User
from flowql.settings import Settings
from tests.conftest import Account, Factory, LiveServer

ASSIGN = """
mutation ($ws: UUID!, $plan: Plan!) {
  assignWorkspacePlan(workspaceId: $ws, plan: $plan) { id plan }
}
"""
VIEWER = {"query": "{ viewer { kind } }"}


@pytest.fixture(autouse=True)
def limits_on(settings: Settings) -> None:
    settings.rate_limits_enabled = True


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


async def make_instance_admin(server: LiveServer, account: Account) -> None:
    async with server.runtime.db.transaction() as session:
        await session.exec(
            update(User).where(col(User.id) == account.user_id).values(is_instance_admin=True)
        )


async def test_an_instance_admin_assigns_a_plan_and_the_limits_follow(
    server: LiveServer, factory: Factory
) -> None:
    tenant = await factory.account()
    admin = await factory.account()
    await make_instance_admin(server, admin)
    headers = {"Authorization": f"Bearer {tenant.token}"}
    before = await server.client.post("/graphql", json=VIEWER, headers=headers)
    assert "x-ratelimit-limit" not in before.headers

    body = await server.gql(
        ASSIGN, {"ws": str(tenant.workspace_id), "plan": "STARTER"}, token=admin.token
    )
    assert body["data"]["assignWorkspacePlan"]["plan"] == "STARTER"
    after = await server.client.post("/graphql", json=VIEWER, headers=headers)
    assert after.headers["x-ratelimit-limit"] == "120"

    body = await server.gql(
        ASSIGN, {"ws": str(tenant.workspace_id), "plan": "UNLIMITED"}, token=admin.token
    )
    assert body["data"]["assignWorkspacePlan"]["plan"] == "UNLIMITED"
    again = await server.client.post("/graphql", json=VIEWER, headers=headers)
    assert "x-ratelimit-limit" not in again.headers


async def test_owners_and_api_keys_cannot_set_a_plan(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    key = await factory.api_key(owner)
    ws = str(owner.workspace_id)
    for token in (owner.token, key):
        body = await server.gql(
            ASSIGN, {"ws": ws, "plan": "BUSINESS"}, token=token, expect_errors=True
        )
        assert codes(body) == ["FORBIDDEN"]
    updated = await server.gql(
        "mutation ($id: UUID!) { updateWorkspace(id: $id, input: {plan: FREE}) { plan } }",
        {"id": ws},
        token=owner.token,
        expect_errors=True,
    )
    assert codes(updated) == ["FORBIDDEN"]
    created = await server.gql(
        'mutation { createWorkspace(name: "Mine", plan: BUSINESS) { plan } }',
        token=owner.token,
        expect_errors=True,
    )
    assert codes(created) == ["FORBIDDEN"]
    plan = await server.gql(
        "query ($id: UUID!) { workspace(id: $id) { plan } }", {"id": ws}, token=owner.token
    )
    assert plan["data"]["workspace"]["plan"] == "UNLIMITED"


async def test_an_unknown_workspace_is_not_found(server: LiveServer, factory: Factory) -> None:
    admin = await factory.account()
    await make_instance_admin(server, admin)
    body = await server.gql(
        ASSIGN,
        {"ws": "00000000-0000-4000-8000-000000000000", "plan": "FREE"},
        token=admin.token,
        expect_errors=True,
    )
    assert codes(body) == ["NOT_FOUND"]
