"""Document 004: webhook subscriptions."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from flowql.rest_compat.base import Call
from flowql.rest_compat.platform_v1.envelope import (
    Body,
    iso,
    listing,
    ok,
    operation,
    render_id,
    run,
)

WEBHOOK_FIELDS = "number url events active description hasSecret createdAt"


def webhook_json(webhook: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": render_id("webhook", webhook["number"]),
        "url": webhook["url"],
        "events": webhook["events"],
        "active": webhook["active"],
        "description": webhook["description"],
        "has_secret": webhook["hasSecret"],
        "created_at": iso(webhook["createdAt"]),
    }


async def list_webhooks(call: Call) -> Response:
    nodes, meta = await listing(call, "webhook:read", "webhookSubscriptions", WEBHOOK_FIELDS)
    return ok([webhook_json(w) for w in nodes], meta=meta)


async def create_webhook(call: Call) -> Response:
    body = Body(call.body)
    values = {
        "url": body.text("url", required=True),
        "events": body.strings("events", required=True),
        "secret": body.text("secret"),
        "description": body.text("description") or "",
        "active": body.flag("active"),
    }
    body.done()
    if values["active"] is None:
        values["active"] = True
    document = (
        "mutation($input: CreateWebhookSubscriptionInput!) "
        f"{{ createWebhookSubscription(input: $input) {{ {WEBHOOK_FIELDS} }} }}"
    )
    data = await run(call, document, {"input": values})
    return ok(webhook_json(data["createWebhookSubscription"]), status=201)


DELETE = operation("webhook", "deleteWebhookSubscription", "number", mutation=True)
