"""Document 004: credentials (their values are never returned)."""

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

CREDENTIAL_FIELDS = "number name type createdAt updatedAt"


def credential_json(credential: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": render_id("credential", credential["number"]),
        "name": credential["name"],
        "type": credential["type"],
        "created_at": iso(credential["createdAt"]),
        "updated_at": iso(credential["updatedAt"] or credential["createdAt"]),
    }


async def list_credentials(call: Call) -> Response:
    nodes, meta = await listing(call, "credential:read", "credentials", CREDENTIAL_FIELDS)
    return ok([credential_json(c) for c in nodes], meta=meta)


async def create_credential(call: Call) -> Response:
    body = Body(call.body)
    values = {
        "name": body.text("name", required=True),
        "type": body.text("type") or "secret",
        "value": body.text("value", required=True),
    }
    body.done()
    document = (
        "mutation($input: CreateCredentialInput!) "
        f"{{ createCredential(input: $input) {{ {CREDENTIAL_FIELDS} }} }}"
    )
    data = await run(call, document, {"input": values})
    return ok(credential_json(data["createCredential"]), status=201)


DELETE = operation("credential", "deleteCredential", "number", mutation=True)
