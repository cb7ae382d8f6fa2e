"""Outgoing webhook subscriptions: write-only secrets, event names, tenancy, deliveries."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from flowql.models import DeliveryStatus, Role, WebhookDelivery, utcnow
from tests.conftest import Account, Factory, LiveServer, error_of, raw_rows

SECRET = "whsec-0a9b8c7d6e5f"
FIELDS = "id number workspaceId url events active description createdAt hasSecret"
DELIVERY = """
  id number subscriptionId eventType eventId payload status attempts nextAttemptAt
  lastStatusCode lastResponse lastError deliveredAt createdAt
"""
CREATE = f"""
mutation ($input: CreateWebhookSubscriptionInput!) {{
  createWebhookSubscription(input: $input) {{ {FIELDS} }}
}}"""
UPDATE = f"""
mutation ($id: UUID!, $input: UpdateWebhookSubscriptionInput!) {{
  updateWebhookSubscription(id: $id, input: $input) {{ {FIELDS} }}
}}"""
DELETE = "mutation ($id: UUID!) { deleteWebhookSubscription(id: $id) { id } }"
GET = f"""
query ($id: UUID, $number: Int) {{
  webhookSubscription(id: $id, number: $number) {{
    {FIELDS} deliveries(first: 10) {{ totalCount nodes {{ {DELIVERY} }} }}
  }}
}}"""
LIST = f"""
query ($filter: WebhookSubscriptionFilterInput) {{
  webhookSubscriptions(filter: $filter) {{ totalCount nodes {{ {FIELDS} }} }}
}}"""
DELIVERIES = f"""
query ($filter: WebhookDeliveryFilterInput) {{
  webhookDeliveries(filter: $filter) {{ totalCount nodes {{ {DELIVERY} }} }}
}}"""
HOOK_URL = "https://hooks.example.com/flowql"


async def create(server: LiveServer, account: Account, **values: Any) -> dict[str, Any]:
    values.setdefault("url", HOOK_URL)
    values.setdefault("events", ["workflow.executed", "form.submitted"])
    body = await server.gql(CREATE, {"input": values}, token=account.token)
    created: dict[str, Any] = body["data"]["createWebhookSubscription"]
    return created


async def add_deliveries(server: LiveServer, account: Account, subscription_id: str) -> None:
    """Rows as the outbox would write them; none is due, so the engine leaves them alone."""
    async with server.runtime.db.transaction() as session:
        for status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD, DeliveryStatus.DELIVERED):
            session.add(
                WebhookDelivery(
                    workspace_id=account.workspace_id,
                    subscription_id=uuid.UUID(subscription_id),
                    event_type="form.submitted",
                    payload={"type": "form.submitted", "data": {"n": 1}},
                    status=status,
                    attempts=1,
                    last_status_code=200 if status is DeliveryStatus.DELIVERED else 500,
                    delivered_at=utcnow() if status is DeliveryStatus.DELIVERED else None,
                )
            )


async def test_subscription_crud_never_returns_the_secret(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    created = await create(server, owner, secret=SECRET, description="CRM sync")
    assert created["hasSecret"] is True
    assert created["active"] is True
    assert created["events"] == ["workflow.executed", "form.submitted"]
    by_number = await server.gql(GET, {"number": created["number"]}, token=owner.token)
    assert by_number["data"]["webhookSubscription"]["url"] == HOOK_URL
    listed = await server.gql(LIST, {"filter": {"search": "hooks.example"}}, token=owner.token)
    assert listed["data"]["webhookSubscriptions"]["totalCount"] == 1
    inactive = await server.gql(LIST, {"filter": {"active": False}}, token=owner.token)
    assert inactive["data"]["webhookSubscriptions"]["totalCount"] == 0

    updated = await server.gql(
        UPDATE,
        {"id": created["id"], "input": {"events": ["*", "process.failed"], "active": False}},
        token=owner.token,
    )
    assert updated["data"]["updateWebhookSubscription"]["events"] == ["*"]
    assert updated["data"]["updateWebhookSubscription"]["active"] is False
    assert updated["data"]["updateWebhookSubscription"]["hasSecret"] is True
    cleared = await server.gql(
        UPDATE, {"id": created["id"], "input": {"clearSecret": True}}, token=owner.token
    )
    assert cleared["data"]["updateWebhookSubscription"]["hasSecret"] is False
    for body in (created, by_number, listed, updated, cleared):
        assert SECRET not in json.dumps(body)

    await server.gql(DELETE, {"id": created["id"]}, token=owner.token)
    gone = await server.gql(GET, {"id": created["id"]}, token=owner.token, expect_errors=True)
    assert error_of(gone)["code"] == "NOT_FOUND"


async def test_secrets_are_stored_only_encrypted(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    created = await create(server, owner, secret=SECRET)
    await server.gql(UPDATE, {"id": created["id"], "input": {"secret": SECRET}}, token=owner.token)
    rows = await raw_rows(server, "webhook_subscriptions")
    assert len(rows) == 1
    assert all(SECRET not in str(value) for value in rows[0])


async def test_deliveries_are_listed_per_subscription_and_status(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    first = await create(server, owner)
    second = await create(server, owner, url="https://other.example.com/")
    await add_deliveries(server, owner, first["id"])
    own = await server.gql(GET, {"id": first["id"]}, token=owner.token)
    deliveries = own["data"]["webhookSubscription"]["deliveries"]
    assert deliveries["totalCount"] == 3
    newest = deliveries["nodes"][0]
    assert newest["subscriptionId"] == first["id"]
    assert newest["status"] == "DELIVERED"
    assert newest["payload"] == {"type": "form.submitted", "data": {"n": 1}}
    dead = await server.gql(
        DELIVERIES, {"filter": {"subscriptionId": first["id"], "status": "DEAD"}}, token=owner.token
    )
    assert [n["lastStatusCode"] for n in dead["data"]["webhookDeliveries"]["nodes"]] == [500]
    none = await server.gql(
        DELIVERIES, {"filter": {"subscriptionId": second["id"]}}, token=owner.token
    )
    assert none["data"]["webhookDeliveries"]["totalCount"] == 0


async def test_another_workspace_cannot_see_or_touch_subscriptions(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    stranger = await factory.account()
    created = await create(server, owner, secret=SECRET, description="Owner Hook")
    await add_deliveries(server, owner, created["id"])
    before = await raw_rows(server, "webhook_subscriptions")

    listed = await server.gql(LIST, token=stranger.token)
    assert listed["data"]["webhookSubscriptions"] == {"totalCount": 0, "nodes": []}
    for filters in ({}, {"subscriptionId": created["id"]}):
        deliveries = await server.gql(DELIVERIES, {"filter": filters}, token=stranger.token)
        assert deliveries["data"]["webhookDeliveries"] == {"totalCount": 0, "nodes": []}
    attempts: list[tuple[str, dict[str, Any]]] = [
        (GET, {"id": created["id"]}),
        (GET, {"number": created["number"]}),
        (UPDATE, {"id": created["id"], "input": {"url": "https://evil.example.com/"}}),
        (DELETE, {"id": created["id"]}),
        (
            CREATE,
            {
                "input": {
                    "url": HOOK_URL,
                    "events": ["*"],
                    "workspaceId": str(owner.workspace_id),
                }
            },
        ),
    ]
    for query, variables in attempts:
        body = await server.gql(query, variables, token=stranger.token, expect_errors=True)
        assert error_of(body)["code"] == "NOT_FOUND", query
        assert "Owner Hook" not in json.dumps(body)
    assert await raw_rows(server, "webhook_subscriptions") == before


async def test_members_read_subscriptions_but_cannot_change_them(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    member = await factory.account(role=Role.MEMBER, join=owner.workspace_id)
    created = await create(server, owner)
    seen = await server.gql(GET, {"id": created["id"]}, token=member.token)
    assert seen["data"]["webhookSubscription"]["id"] == created["id"]
    refused = await server.gql(
        CREATE,
        {"input": {"url": HOOK_URL, "events": ["*"]}},
        token=member.token,
        expect_errors=True,
    )
    assert error_of(refused)["code"] == "FORBIDDEN"
    body = await server.gql(DELETE, {"id": created["id"]}, token=member.token, expect_errors=True)
    assert error_of(body)["code"] == "FORBIDDEN"


INVALID = [
    ({"url": "ftp://example.com/hook"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": ""}, "url"),
    ({"url": "https://user:pass@example.com/hook"}, "url"),
    ({"url": "https://example.com/" + "x" * 2000}, "url"),
    ({"events": ["process.exploded"]}, "events"),
    ({"events": []}, "events"),
    ({"secret": ""}, "secret"),
    ({"secret": "s" * 501}, "secret"),
    ({"description": "d" * 1001}, "description"),
]


@pytest.mark.parametrize(("values", "field_name"), INVALID)
async def test_invalid_subscription_input_is_refused_naming_the_field(
    server: LiveServer, factory: Factory, values: dict[str, Any], field_name: str
) -> None:
    owner = await factory.account()
    existing = await create(server, owner, secret=SECRET)
    before = await raw_rows(server, "webhook_subscriptions")
    body = await server.gql(
        CREATE,
        {"input": {"url": HOOK_URL, "events": ["*"], **values}},
        token=owner.token,
        expect_errors=True,
    )
    assert error_of(body)["code"] == "VALIDATION_ERROR"
    assert field_name in error_of(body)["fields"]
    body = await server.gql(
        UPDATE, {"id": existing["id"], "input": values}, token=owner.token, expect_errors=True
    )
    assert error_of(body)["code"] == "VALIDATION_ERROR"
    assert field_name in error_of(body)["fields"]
    assert await raw_rows(server, "webhook_subscriptions") == before


async def test_private_address_urls_are_refused_unless_allowed(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    loopback = {"url": "http://127.0.0.1:9/hook", "events": ["*"]}
    allowing = server.runtime.settings
    server.runtime.settings = allowing.model_copy(update={"allow_private_networks": False})
    try:
        body = await server.gql(CREATE, {"input": loopback}, token=owner.token, expect_errors=True)
    finally:
        server.runtime.settings = allowing
    assert list(error_of(body)["fields"]) == ["url"]
    assert await raw_rows(server, "webhook_subscriptions") == []
    allowed = await server.gql(CREATE, {"input": loopback}, token=owner.token)
    assert allowed["data"]["createWebhookSubscription"]["url"] == loopback["url"]
