"""Document 004: connected integrations and their live test."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from flowql.rest_compat.base import Call
from flowql.rest_compat.platform_v1.envelope import (
    iso,
    listing,
    ok,
    operation,
    render_id,
)

INTEGRATION_FIELDS = (
    "number name type settings hasCredentials createdAt lastTestedAt lastTestResult"
)


def integration_json(integration: dict[str, Any]) -> dict[str, Any]:
    result = integration["lastTestResult"]
    status = "untested" if result is None else ("ok" if result.get("ok") else "failing")
    return {
        "id": render_id("integration", integration["number"]),
        "name": integration["name"],
        "type": integration["type"],
        "status": status,
        "settings": integration["settings"],
        "has_credentials": integration["hasCredentials"],
        "created_at": iso(integration["createdAt"]),
        "last_tested_at": iso(integration["lastTestedAt"]),
    }


async def list_integrations(call: Call) -> Response:
    nodes, meta = await listing(call, "integration:read", "integrations", INTEGRATION_FIELDS)
    return ok([integration_json(i) for i in nodes], meta=meta)


TEST = operation(
    "integration", "testIntegration", "number lastTestedAt lastTestResult", mutation=True
)


def test_result(tested: dict[str, Any]) -> dict[str, Any]:
    result = tested["lastTestResult"] or {}
    return {
        "id": render_id("integration", tested["number"]),
        "ok": bool(result.get("ok")),
        "status_code": result.get("status"),
        "error": result.get("error"),
        "tested_at": iso(tested["lastTestedAt"]),
    }
