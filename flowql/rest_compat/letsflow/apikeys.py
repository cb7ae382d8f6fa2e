"""Document 003: API keys with LetsFlow's privileges and process scopes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.responses import Response

from flowql.errors import ValidationFailed
from flowql.rest_compat.base import Call, Endpoint
from flowql.rest_compat.letsflow.envelope import (
    json_body,
    no_content,
    optional_text,
    require_object,
    respond,
    workspace_param,
)
from flowql.rest_compat.letsflow.openapi import (
    APIKEY_SCHEMA,
    SCOPE_SCHEMA,
    TEXT,
    TEXTS,
    TIME,
    WORKSPACE_QUERY,
    empty,
    json_request,
    ok,
)
from flowql.rest_compat.openapi import obj
from flowql.rest_compat.paging import all_nodes

# LetsFlow's privilege names -> flowql's; flowql's own names are accepted as they are.
TO_FLOWQL = {
    "apikey:issue": "apikey:write",
    "apikey:revoke": "apikey:write",
    "process:start": "process:run",
    "process:step": "process:run",
}
# flowql's -> LetsFlow's, when listing; the other names are served as they are.
TO_LETSFLOW = {
    "apikey:write": ["apikey:issue", "apikey:revoke"],
    "process:run": ["process:start", "process:step"],
}
DEFAULT_EXPIRATION_DAYS = 30  # as LetsFlow's engine, when neither expiration is given
# The public part of a token: `fql_<prefix>_<secret>`; only the prefix is ever listed.
MASK = "fql_{prefix}_****"

KEY_FIELDS = """id name description prefix privileges createdAt expiresAt lastUsedAt revokedAt
  processScopes { scenario actors actions }"""
CREATE = f"""mutation($input: CreateApiKeyInput!) {{
  createApiKey(input: $input) {{ token apiKey {{ {KEY_FIELDS} }} }} }}"""
REVOKE = "mutation($id: UUID!) { revokeApiKey(id: $id) { id } }"


def letsflow_privileges(privileges: list[str]) -> list[str]:
    names: list[str] = []
    for privilege in privileges:
        for name in TO_LETSFLOW.get(privilege, [privilege]):
            if name not in names:
                names.append(name)
    return names


def expiration_days(key: dict[str, Any]) -> int | None:
    if key["expiresAt"] is None:
        return None
    issued = datetime.fromisoformat(key["createdAt"])
    expires = datetime.fromisoformat(key["expiresAt"])
    return round((expires - issued).total_seconds() / 86400)


def apikey_json(key: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    return {
        "id": key["id"],
        "token": token or MASK.format(prefix=key["prefix"]),
        "name": key["name"],
        "description": key["description"],
        "issued": key["createdAt"],
        "expirationDays": expiration_days(key),
        "expiration": key["expiresAt"],
        "lastUsed": key["lastUsedAt"],
        "revoked": key["revokedAt"],
        "privileges": letsflow_privileges(key["privileges"]),
        "processes": [
            {"scenario": s["scenario"], "actors": s["actors"], "actions": s["actions"]}
            for s in key["processScopes"]
        ],
    }


async def list_keys(call: Call) -> Response:
    nodes = await all_nodes(
        call,
        f"apiKeys(first: 100, after: $after, filter: {{includeRevoked: true}}) "
        f"{{ {{PAGE}} nodes {{ {KEY_FIELDS} }} }}",
        "apiKeys",
    )
    return respond(call, [apikey_json(k) for k in reversed(nodes)])


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed.one(name, "must be a list of strings")
    return value


def _privileges(value: Any) -> list[str]:
    if value is None:
        return []
    names = _strings(value, "privileges")
    return sorted({TO_FLOWQL.get(name, name) for name in names})


def _scopes(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValidationFailed.one("processes", "must be a list of {scenario, actors, actions}")
    scopes = []
    for i, scope in enumerate(value):
        scope = require_object(scope, f"processes.{i}")
        scopes.append(
            {
                "scenario": scope.get("scenario") or None,
                "actors": _strings(scope.get("actors") or [], f"processes.{i}.actors"),
                "actions": _strings(scope.get("actions") or [], f"processes.{i}.actions"),
            }
        )
    return scopes


def _expiry(body: dict[str, Any]) -> dict[str, Any]:
    expiration = optional_text(body, "expiration")
    if expiration:
        return {"expiresAt": expiration}
    days = body.get("expirationDays", DEFAULT_EXPIRATION_DAYS)
    if days is None:
        days = DEFAULT_EXPIRATION_DAYS
    if isinstance(days, bool) or not isinstance(days, int):
        raise ValidationFailed.one("expirationDays", "must be an integer")
    return {"expirationDays": days}


async def issue_key(call: Call) -> Response:
    body = require_object(await json_body(call.request))
    name = optional_text(body, "name")
    if not name or not name.strip():
        raise ValidationFailed.one("name", "Name is required")
    variables = {
        "input": {
            "name": name,
            "workspaceId": workspace_param(call),
            "description": optional_text(body, "description") or "",
            "privileges": _privileges(body.get("privileges")),
            "processScopes": _scopes(body.get("processes")),
            **_expiry(body),
        }
    }
    issued = (await call.run(CREATE, variables))["createApiKey"]
    return respond(call, apikey_json(issued["apiKey"], issued["token"]), 201)


async def revoke_key(call: Call) -> Response:
    await call.run(REVOKE, {"id": str(call.path["id"])})
    return no_content()


ISSUE_BODY = obj(
    {
        "name": TEXT,
        "description": TEXT,
        "privileges": TEXTS,
        "processes": {"type": "array", "items": SCOPE_SCHEMA},
        "expirationDays": {"type": "integer", "minimum": 1, "maximum": 3650},
        "expiration": TIME,
    },
    optional=("description", "privileges", "processes", "expirationDays", "expiration"),
)

ENDPOINTS = [
    Endpoint(
        "GET",
        "/apikey",
        "List API keys",
        handler=list_keys,
        openapi={"responses": ok({"type": "array", "items": APIKEY_SCHEMA})},
    ),
    Endpoint(
        "POST",
        "/apikey",
        "Issue a new API key",
        handler=issue_key,
        openapi={
            "parameters": [WORKSPACE_QUERY],
            "requestBody": json_request(ISSUE_BODY),
            "responses": ok(APIKEY_SCHEMA, "201", "Created; `token` is the secret, shown once"),
        },
    ),
    Endpoint(
        "DELETE",
        "/apikey/{id:uuid}",
        "Revoke an API key",
        handler=revoke_key,
        openapi={"responses": empty()},
    ),
]
