"""Document 002: ActiveWorkflow's client REST API v1, mounted at /compat/activeworkflow.

Integer ids are flowql's sequential `number`s; agent types render as Huginn class names
(`Agents::WebhookAgent`). Errors are {"error": "<status> <reason>"}; a parameter validation error
is 400 (the document says 500 "for now"; flowql never answers 500 for bad input).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from flowql.errors import ValidationFailed
from flowql.formats.huginn import huginn_type
from flowql.rest_compat.activeworkflow.envelope import ERROR_SCHEMA, error_format
from flowql.rest_compat.activeworkflow.openapi import AGENT_SCHEMA, MESSAGE_SCHEMA, WORKFLOW_SCHEMA
from flowql.rest_compat.base import Call, Endpoint, int_param
from flowql.rest_compat.openapi import ok
from flowql.rest_compat.paging import all_nodes

AGENT_FIELDS = "number name type disabled messagesCount sources { number }"
MESSAGE_FIELDS = "number agent { number } createdAt expiresAt"


def agent_json(agent: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": agent["number"],
        "name": agent["name"],
        "type": huginn_type(agent["type"]),
        "disabled": agent["disabled"],
        "messages_count": agent["messagesCount"],
        "sources": [{"id": s["number"]} for s in agent["sources"]],
    }


def message_json(message: dict[str, Any], payload: bool = False) -> dict[str, Any]:
    shaped = {
        "id": message["number"],
        "agent_id": message["agent"]["number"],
        "created_at": message["createdAt"],
        "expires_at": message["expiresAt"],
    }
    if payload:
        shaped["payload"] = message["payload"]
    return shaped


def workflow_json(workflow: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": workflow["number"],
        "name": workflow["name"],
        "description": workflow["description"],
    }


async def list_agents(call: Call) -> Response:
    nodes = await all_nodes(
        call,
        f"agents(first: 100, after: $after) {{ {{PAGE}} nodes {{ {AGENT_FIELDS} }} }}",
        "agents",
    )
    return JSONResponse([agent_json(a) for a in nodes])


async def agent_messages(call: Call) -> Response:
    limit = int_param(call.query.get("limit"), "limit", minimum=0)
    after = call.query.get("after")
    if after:
        try:
            datetime.fromisoformat(after)
        except ValueError:
            raise ValidationFailed.one("after", "must be an ISO 8601 datetime") from None
    number = call.path["agent_id"]
    variables = {"n": number, "filter": {"agentNumber": number, "createdAfter": after}}
    nodes = await all_nodes(
        call,
        f"messages(first: 100, after: $after, filter: $filter) {{ {{PAGE}} nodes {{ {MESSAGE_FIELDS} }} }}",
        "messages",
        variables,
        {"n": "Int!", "filter": "MessageFilterInput"},
        limit=limit,
        also="agent(number: $n) { id }",
    )
    return JSONResponse([message_json(m) for m in reversed(nodes)])


def export_response(call: Call, data: dict[str, Any]) -> Response:
    workflow = data["workflow"]
    filename = workflow["exportFilename"]
    return JSONResponse(
        workflow["exportDefinition"],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def list_workflows(call: Call) -> Response:
    nodes = await all_nodes(
        call,
        "workflows(first: 100, after: $after) { {PAGE} nodes { number name description } }",
        "workflows",
    )
    return JSONResponse([workflow_json(w) for w in reversed(nodes)])


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/agents",
        "List agents",
        handler=list_agents,
        openapi={"responses": ok({"type": "array", "items": AGENT_SCHEMA})},
    ),
    Endpoint(
        "GET",
        "/api/v1/agents/{agent_id:int}",
        "Get an agent",
        document=f"query($n: Int!) {{ agent(number: $n) {{ {AGENT_FIELDS} }} }}",
        variables=lambda call: {"n": call.path["agent_id"]},
        shape=lambda call, data: JSONResponse(agent_json(data["agent"])),
        openapi={"responses": ok(AGENT_SCHEMA)},
    ),
    Endpoint(
        "GET",
        "/api/v1/agents/{agent_id:int}/messages",
        "Latest messages of an agent",
        handler=agent_messages,
        openapi={
            "parameters": [
                {
                    "name": "after",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            ],
            "responses": ok({"type": "array", "items": MESSAGE_SCHEMA}),
        },
    ),
    Endpoint(
        "GET",
        "/api/v1/messages/{message_id:int}",
        "Get a message with its payload",
        document=f"query($n: Int!) {{ message(number: $n) {{ {MESSAGE_FIELDS} payload }} }}",
        variables=lambda call: {"n": call.path["message_id"]},
        shape=lambda call, data: JSONResponse(message_json(data["message"], payload=True)),
        openapi={"responses": ok(MESSAGE_SCHEMA)},
    ),
    Endpoint(
        "GET",
        "/api/v1/workflows",
        "List workflows",
        handler=list_workflows,
        openapi={"responses": ok({"type": "array", "items": WORKFLOW_SCHEMA})},
    ),
    Endpoint(
        "GET",
        "/api/v1/workflows/{workflow_id:int}",
        "Get a workflow with its agents",
        document=f"query($n: Int!) {{ workflow(number: $n) {{ number name description agents {{ {AGENT_FIELDS} }} }} }}",
        variables=lambda call: {"n": call.path["workflow_id"]},
        shape=lambda call, data: JSONResponse(
            {
                **workflow_json(data["workflow"]),
                "agents": [agent_json(a) for a in data["workflow"]["agents"]],
            }
        ),
        openapi={
            "responses": ok(
                {
                    **WORKFLOW_SCHEMA,
                    "properties": {
                        **WORKFLOW_SCHEMA["properties"],
                        "agents": {"type": "array", "items": AGENT_SCHEMA},
                    },
                }
            )
        },
    ),
    Endpoint(
        "GET",
        "/api/v1/workflows/{workflow_id:int}/export",
        "Export a workflow (Huginn scenario format)",
        document="query($n: Int!) { workflow(number: $n) { exportDefinition exportFilename } }",
        variables=lambda call: {"n": call.path["workflow_id"]},
        shape=export_response,
        openapi={
            "responses": ok(
                {"type": "object", "required": ["schema_version", "agents", "links"]},
                "A JSON file; its name is in Content-Disposition",
            )
        },
    ),
]

PREFIX = "/compat/activeworkflow"
TITLE = "ActiveWorkflow client REST API v1 (flowql compatibility)"
DESCRIPTION = __doc__ or ""
ERROR = ERROR_SCHEMA
FORMAT = error_format
