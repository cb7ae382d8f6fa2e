"""Document 000, WayScript's HTTP API: routes -> GraphQL operations -> WayScript's JSON.

A lair is a workflow, a lair trigger is a trigger, an application key is any flowql credential
with a user behind it (an API key, a user token). Every id is a UUID; JSON blobs are strings
where the document says "json blob as string"; datetimes are ISO 8601.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.responses import JSONResponse, Response

from flowql.errors import NotFound, ValidationFailed
from flowql.rest_compat.base import Call, Endpoint, Variables
from flowql.rest_compat.openapi import ok
from flowql.rest_compat.paging import all_nodes
from flowql.rest_compat.wayscript.openapi import (
    ANY_JSON,
    DETAIL_SCHEMA,
    EMPTY_SCHEMA,
    ERROR_SCHEMA,
    INTEGRATION_SCHEMA,
    LAIR_SCHEMA,
    TOKENS_SCHEMA,
    USER_SCHEMA,
    WORKSPACE_SCHEMA,
    body,
)


def lowered(value: str | None) -> str | None:
    return value.lower() if value else value


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "lair"


def json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def require_object(call: Call) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise ValidationFailed.one("body", "must be a JSON object")
    return call.body


def require_text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationFailed.one(name, "must be a non-empty string")
    return value


# -- process detail ----------------------------------------------------------------------------

TRIGGER_FIELDS = (
    "id workflowId workspaceId type testEvent command integrationId settings data createdAt"
    " archivedAt"
)
PROCESS_DETAIL = f"""query($id: UUID!) {{ process(id: $id) {{
  id workflowId triggerId userId workspaceId eventId createdAt completedAt lastActivityAt
  event {{ id triggerType data meta createdAt }}
  workflow {{ triggers {{ {TRIGGER_FIELDS} }} }}
}} }}"""


def detail_json(call: Call, data: dict[str, Any]) -> Response:
    process = data["process"]
    triggers = (process["workflow"] or {}).get("triggers") or []
    trigger = next((t for t in triggers if t["id"] == process["triggerId"]), None)
    event = process["event"]
    return JSONResponse(
        {
            "event": event
            and {
                "id": event["id"],
                "trigger_type": event["triggerType"],
                "data": event["data"],
                "meta": event["meta"],
                "created_date": event["createdAt"],
            },
            "process": {
                "id": process["id"],
                "lair_id": process["workflowId"],
                "trigger_id": process["triggerId"],
                "service_id": None,
                "event_id": process["eventId"],
                "workspace_id": process["workspaceId"],
                "user_id": process["userId"],
                "command": trigger["command"] if trigger else None,
                "port": None,
                "created_date": process["createdAt"],
                "commpleted_date": process["completedAt"],
                "completed_date": process["completedAt"],
                "last_activity": process["lastActivityAt"],
            },
            "lair_trigger": trigger
            and {
                "trigger_id": trigger["id"],
                "lair_id": trigger["workflowId"],
                "workspace_id": trigger["workspaceId"],
                "type": lowered(trigger["type"]),
                "test_event": trigger["testEvent"],
                "command": trigger["command"],
                "workspace_integration_id": trigger["integrationId"],
                "settings": trigger["settings"],
                "data": trigger["data"],
                "created_date": trigger["createdAt"],
                "archived_date": trigger["archivedAt"],
            },
        }
    )


# -- workspace, user, lair ---------------------------------------------------------------------

WORKSPACE = """query($id: UUID!) { workspace(id: $id) {
  id name ownerId accountTierId cronTimezone createdAt } }"""
USER_SELF = """query($ws: UUID!) {
  viewer { actingUser { id email firstName lastName avatar createdAt lastLogin } }
  workspace(id: $ws) { viewerGroups { id name workspaceId ownerId systemManaged } } }"""
LAIR = """query($id: UUID!) { workflow(id: $id) {
  id number name workspaceId managerId lastRunAt isPublic endpointsArePrivate createdAt
  defaultPath environment lastDeployedAt } }"""


def workspace_json(call: Call, data: dict[str, Any]) -> Response:
    ws = data["workspace"]
    return JSONResponse(
        {
            "id": ws["id"],
            "name": ws["name"],
            "owner_id": ws["ownerId"],
            "account_tier_id": ws["accountTierId"],
            "cron_timezone": ws["cronTimezone"],
            "created_date": ws["createdAt"],
        }
    )


def user_json(call: Call, data: dict[str, Any]) -> Response:
    user = data["viewer"]["actingUser"]
    if user is None:
        raise NotFound("Application Key")
    groups = data["workspace"]["viewerGroups"]
    return JSONResponse(
        {
            "id": user["id"],
            "email": user["email"],
            "first_name": user["firstName"],
            "last_name": user["lastName"],
            "avatar": user["avatar"],
            "created_date": user["createdAt"],
            "last_login": user["lastLogin"],
            "groups": [
                {
                    "id": g["id"],
                    "name": g["name"],
                    "workspace_id": g["workspaceId"],
                    "owner_id": g["ownerId"],
                    "system_managed": g["systemManaged"],
                }
                for g in groups
            ],
        }
    )


def lair_json(call: Call, data: dict[str, Any]) -> Response:
    lair = data["workflow"]
    return JSONResponse(
        {
            "id": lair["id"],
            "internal_id": lair["number"],
            "name": slug(lair["name"]),
            "friendly_name": lair["name"],
            "workspace_id": lair["workspaceId"],
            "workspace_uuid": lair["workspaceId"],
            "manager_id": lair["managerId"],
            "last_run_date": lair["lastRunAt"],
            "is_public": lair["isPublic"],
            "endpoints_are_private": lair["endpointsArePrivate"],
            "created_date": lair["createdAt"],
            "default_path": lair["defaultPath"],
            "environment": lair["environment"],
            "last_deployed": lair["lastDeployedAt"],
            "endpoint": f"{str(call.request.base_url).rstrip('/')}/hooks/{lair['id']}",
        }
    )


# -- workspace integrations --------------------------------------------------------------------

INTEGRATION_FIELDS = (
    "id name userId workspaceId type credentials credentialsState externalAccountId settings"
)


def integration_json(integration: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": integration["id"],
        "name": integration["name"],
        "user_id": integration["userId"],
        "workspace_id": integration["workspaceId"],
        "type": integration["type"],
        "credentials": json_text(integration["credentials"]),
        "credentials_state": integration["credentialsState"],
        "external_account_id": integration["externalAccountId"],
        "settings": json.dumps(integration["settings"]),
    }


async def workspace_integrations(call: Call) -> Response:
    workspace_id = str(call.path["workspace_id"])
    nodes = await all_nodes(
        call,
        "integrations(first: 100, after: $after, filter: {workspaceId: $ws})"
        f" {{ {{PAGE}} nodes {{ {INTEGRATION_FIELDS} }} }}",
        "integrations",
        {"ws": workspace_id},
        {"ws": "UUID!"},
        also="workspace(id: $ws) { id }",
    )
    return JSONResponse([integration_json(i) for i in reversed(nodes)])


# -- writes ------------------------------------------------------------------------------------

RESPOND = """mutation($id: UUID!, $status: Int!, $headers: JSON, $body: JSON) {
  respondToHttpTrigger(processId: $id, status: $status, headers: $headers, body: $body) { id } }"""
SET_SECRET = """mutation($id: UUID!, $key: String!, $value: String!) {
  setWorkflowSecret(workflowId: $id, key: $key, value: $value) { id } }"""
REFRESH = """mutation($token: String!) {
  refreshExecutionToken(refreshToken: $token) { accessToken refreshToken } }"""


async def http_trigger_response(call: Call) -> Response:
    data = {} if call.body is None else require_object(call)
    status = data.get("status_code", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValidationFailed.one("status_code", "must be an HTTP status between 100 and 599")
    headers = data.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise ValidationFailed.one("headers", "must be an object of header names to values")
    variables = {
        "id": str(call.path["process_id"]),
        "status": status,
        "headers": headers,
        "body": data.get("data"),
    }
    await call.run(RESPOND, variables)
    return JSONResponse({})


async def set_lair_secret(call: Call) -> Response:
    data = require_object(call)
    variables = {
        "id": str(call.path["lair_id"]),
        "key": require_text(data, "key"),
        "value": require_text(data, "value"),
    }
    await call.run(SET_SECRET, variables)
    return JSONResponse({})


async def refresh(call: Call) -> Response:
    token = require_text(require_object(call), "refresh_token")
    tokens = (await call.run(REFRESH, {"token": token}))["refreshExecutionToken"]
    return JSONResponse(
        {"refresh_token": tokens["refreshToken"], "access_token": tokens["accessToken"]}
    )


def by_id(name: str) -> Variables:
    return lambda call: {"id": str(call.path[name])}


ENDPOINTS = [
    Endpoint(
        "GET",
        "/processes/{process_id:uuid}/detail",
        "Get Process Details",
        document=PROCESS_DETAIL,
        variables=by_id("process_id"),
        shape=detail_json,
        openapi={"responses": ok(DETAIL_SCHEMA, "JSON payload of process details")},
    ),
    Endpoint(
        "GET",
        "/workspaces/{workspace_id:uuid}",
        "Get Workspace Details",
        document=WORKSPACE,
        variables=by_id("workspace_id"),
        shape=workspace_json,
        openapi={"responses": ok(WORKSPACE_SCHEMA, "JSON payload of workspace details")},
    ),
    Endpoint(
        "GET",
        "/workspaces/{workspace_id:uuid}/users/self",
        "Get User Details via Application Key",
        document=USER_SELF,
        variables=lambda call: {"ws": str(call.path["workspace_id"])},
        shape=user_json,
        openapi={"responses": ok(USER_SCHEMA, "JSON payload of user details")},
    ),
    Endpoint(
        "GET",
        "/lairs/{lair_id:uuid}",
        "Get Lair Details",
        document=LAIR,
        variables=by_id("lair_id"),
        shape=lair_json,
        openapi={"responses": ok(LAIR_SCHEMA, "JSON payload of lair details")},
    ),
    Endpoint(
        "GET",
        "/workspace-integrations/{workspace_integration_id:uuid}",
        "Get Workspace Integration Details",
        document=f"query($id: UUID!) {{ integration(id: $id) {{ {INTEGRATION_FIELDS} }} }}",
        variables=by_id("workspace_integration_id"),
        shape=lambda call, data: JSONResponse(integration_json(data["integration"])),
        openapi={"responses": ok(INTEGRATION_SCHEMA, "Workspace integration details")},
    ),
    Endpoint(
        "GET",
        "/workspace-integrations/workspace/{workspace_id:uuid}",
        "Get All Workspace Integrations Details",
        handler=workspace_integrations,
        openapi={"responses": ok({"type": "array", "items": INTEGRATION_SCHEMA})},
    ),
    Endpoint(
        "POST",
        "/webhooks/http-trigger/response/{process_id:uuid}",
        "Post HTTP Trigger Response",
        handler=http_trigger_response,
        json_body=True,
        openapi={
            "requestBody": body(
                {
                    "data": ANY_JSON,
                    "headers": {"type": ["object", "null"]},
                    "status_code": {"type": "integer", "minimum": 100, "maximum": 599},
                },
                [],
            ),
            "responses": ok(EMPTY_SCHEMA, "The answer is on its way to the waiting caller"),
        },
    ),
    Endpoint(
        "POST",
        "/files/lairs/{lair_id:uuid}/secrets",
        "Set Lair Secret",
        handler=set_lair_secret,
        json_body=True,
        openapi={
            "requestBody": body(
                {"key": {"type": "string", "minLength": 1}, "value": {"type": "string"}},
                ["key", "value"],
            ),
            "responses": ok(EMPTY_SCHEMA, "Stored (encrypted)"),
        },
    ),
    Endpoint(
        "POST",
        "/auth/refresh",
        "Request New Authorization Token",
        handler=refresh,
        json_body=True,
        public=True,
        openapi={
            "requestBody": body({"refresh_token": {"type": "string"}}, ["refresh_token"]),
            "responses": {
                **ok(TOKENS_SCHEMA, "JSON payload with tokens"),
                "401": {
                    "description": "Unknown, expired, rotated or revoked refresh token",
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                },
            },
        },
    ),
]
