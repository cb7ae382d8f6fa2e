"""Document 003 (LetsFlow's engine API): OpenAPI schemas of its bodies and answers."""

from __future__ import annotations

from typing import Any

from flowql.rest_compat.openapi import obj
from flowql.rest_compat.openapi import ok as shared_ok

UUID = {"type": "string", "format": "uuid"}
TEXT = {"type": "string"}
TEXTS = {"type": "array", "items": TEXT}
TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
ANY_JSON: dict[str, Any] = {}
OBJECT = {"type": "object"}


def ok(
    schema: dict[str, Any], status: str = "200", description: str = "Success", yaml: bool = True
) -> dict[str, Any]:
    """A documented answer, in JSON or (what LetsFlow's engine also serves) YAML."""
    return shared_ok(
        schema, description, status, {"application/yaml": {"schema": TEXT}} if yaml else None
    )


def empty(status: str = "204", description: str = "No Content") -> dict[str, Any]:
    return {status: {"description": description}}


def json_request(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


ACCEPT_HEADER = {
    "name": "Accept",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "enum": ["application/json", "application/yaml"]},
}
AS_ACTOR_HEADER = {
    "name": "As-Actor",
    "in": "header",
    "required": False,
    "description": "The actor key to act as, when the caller could be several actors.",
    "schema": TEXT,
}
WORKSPACE_QUERY = {
    "name": "workspace",
    "in": "query",
    "required": False,
    "description": "flowql: the workspace, when the caller belongs to several.",
    "schema": UUID,
}

ERROR_SCHEMA = obj(
    {
        "error": obj(
            {
                "message": TEXT,
                "code": TEXT,
                "reason": TEXTS,
                "fields": {"type": "object", "additionalProperties": TEXT},
                "eventId": UUID,
            },
            optional=("fields", "eventId"),
        )
    }
)
INFO_SCHEMA = obj({"name": TEXT, "version": TEXT, "description": TEXT, "env": TEXT})
DEMO_ACCOUNT_SCHEMA = obj({"id": UUID, "name": TEXT, "email": TEXT, "roles": TEXTS, "token": TEXT})
SCENARIO_SUMMARY_SCHEMA = obj(
    {"id": UUID, "name": TEXT, "title": TEXT, "description": TEXT, "tags": TEXTS},
    optional=("tags",),
)
SCENARIO_SCHEMA = {
    **obj({"actors": OBJECT, "actions": OBJECT, "states": OBJECT}),
    "description": "The normalised scenario (schemas.letsflow.io/v1.0/scenario)",
}
ACTOR_SCHEMA = {
    "type": "object",
    "properties": {"id": TEXT, "title": TEXT},
    "additionalProperties": True,
}
STATE_SCHEMA = obj(
    {
        "key": TEXT,
        "title": TEXT,
        "description": ANY_JSON,
        "instructions": OBJECT,
        "actions": {"type": "array", "items": {**obj({"key": TEXT}), "additionalProperties": True}},
        "notify": {"type": "array"},
        "timestamp": TIME,
    }
)
PROCESS_SCHEMA = {
    **obj(
        {
            "id": UUID,
            "title": TEXT,
            "tags": TEXTS,
            "scenario": OBJECT,
            "actors": {"type": "object", "additionalProperties": ACTOR_SCHEMA},
            "vars": OBJECT,
            "result": ANY_JSON,
            "current": STATE_SCHEMA,
            "previous": {"type": "array", "items": OBJECT},
            "events": {"type": "array", "items": OBJECT},
        }
    ),
    "description": "A process (schemas.letsflow.io/v1.0/process)",
}
PROCESS_SUMMARY_SCHEMA = obj(
    {
        "id": UUID,
        "title": TEXT,
        "tags": TEXTS,
        "scenario": SCENARIO_SUMMARY_SCHEMA,
        "actors": {"type": "array", "items": {**ACTOR_SCHEMA, "required": ["key"]}},
        "created": TIME,
        "lastUpdated": TIME,
    }
)
SCOPE_SCHEMA = obj(
    {"scenario": {"type": ["string", "null"], "format": "uuid"}, "actors": TEXTS, "actions": TEXTS}
)
APIKEY_SCHEMA = obj(
    {
        "id": UUID,
        "token": TEXT,
        "name": TEXT,
        "description": TEXT,
        "issued": TIME,
        "expirationDays": {"type": ["integer", "null"]},
        "expiration": TIME_OR_NULL,
        "lastUsed": TIME_OR_NULL,
        "revoked": TIME_OR_NULL,
        "privileges": TEXTS,
        "processes": {"type": "array", "items": SCOPE_SCHEMA},
    }
)


def error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
