"""Document 004's OpenAPI schemas: the `data` of each response and each request body."""

from __future__ import annotations

from typing import Any

from flowql.rest_compat.openapi import obj, query_param
from flowql.rest_compat.platform_v1.envelope import (
    DATETIME,
    NULLABLE_DATETIME,
    NULLABLE_STRING,
    PAGE_PARAMETERS,
    STRING,
    id_schema,
)

STATUSES = ["pending", "running", "completed", "failed", "cancelled"]
FIELD_TYPES = ["text", "textarea", "email", "number", "integer", "boolean", "select", "date"]
FIELD_TYPES += ["url", "phone"]
EVENTS = ["process.started", "process.completed", "process.failed", "workflow.executed"]
EVENTS += ["form.submitted", "message.created", "*"]
INTEGER = {"type": "integer"}
NULLABLE_INTEGER = {"type": ["integer", "null"]}
BOOLEAN = {"type": "boolean"}
OBJECT = {"type": "object"}
STRINGS = {"type": "array", "items": STRING}
WORKFLOW_STATUS = {"type": "string", "enum": ["draft", "published"]}

WORKFLOW_SUMMARY = obj(
    {
        "id": id_schema("workflow"),
        "name": STRING,
        "description": STRING,
        "status": WORKFLOW_STATUS,
        "created_at": DATETIME,
        "updated_at": DATETIME,
    }
)
NODE = obj(
    {
        "id": STRING,
        "name": STRING,
        "type": STRING,
        "config": OBJECT,
        "disabled": BOOLEAN,
        "max_retries": INTEGER,
        "timeout_seconds": {"type": ["number", "null"]},
        "keep_messages_for": NULLABLE_INTEGER,
    }
)
EDGE = obj({"source": STRING, "target": STRING})
WORKFLOW = obj(
    {
        **WORKFLOW_SUMMARY["properties"],
        "nodes": {"type": "array", "items": NODE},
        "edges": {"type": "array", "items": EDGE},
        "variables": OBJECT,
    }
)
NODE_INPUT = obj(
    {
        **NODE["properties"],
        "options": {**OBJECT, "description": "Same as config"},
        "position": {**OBJECT, "description": "Accepted, not stored"},
    },
    required=["type"],
)
WORKFLOW_INPUT = obj(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string", "maxLength": 5000},
        "status": WORKFLOW_STATUS,
        "variables": OBJECT,
        "nodes": {"type": "array", "items": NODE_INPUT},
        "edges": {"type": "array", "items": EDGE},
    },
    required=["name"],
)
EXECUTION_STATUS = {"type": "string", "enum": STATUSES}
EXECUTION = obj(
    {
        "id": id_schema("execution"),
        "workflow_id": {"type": ["string", "null"]},
        "status": EXECUTION_STATUS,
        "started_at": DATETIME,
        "completed_at": NULLABLE_DATETIME,
    }
)
LOG = obj({"timestamp": DATETIME, "level": STRING, "message": STRING, "data": OBJECT})
STEP = obj(
    {
        "node": NULLABLE_STRING,
        "status": STRING,
        "attempt": INTEGER,
        "started_at": NULLABLE_DATETIME,
        "finished_at": NULLABLE_DATETIME,
        "error": NULLABLE_STRING,
    }
)
EXECUTION_DETAIL = obj(
    {
        **EXECUTION["properties"],
        "input": OBJECT,
        "output": {"description": "What the execution produced (null until it completes)"},
        "error": NULLABLE_STRING,
        "logs": {"type": "array", "items": LOG},
        "steps": {"type": "array", "items": STEP},
    }
)
STARTED = obj(
    {
        "execution_id": id_schema("execution"),
        "workflow_id": id_schema("workflow"),
        "status": EXECUTION_STATUS,
        "started_at": DATETIME,
    }
)
EXECUTION_FILTERS = [
    query_param(
        "status",
        STRING,
        "Comma-separated: pending, running, completed, failed, cancelled",
    ),
    query_param("from", STRING, "Started at or after (ISO 8601)"),
    query_param("to", STRING, "Started at or before (ISO 8601)"),
    *PAGE_PARAMETERS,
]
FIELD = obj(
    {
        "name": STRING,
        "type": STRING,
        "required": BOOLEAN,
        "label": NULLABLE_STRING,
        "options": {"type": ["array", "null"], "items": STRING},
    }
)
FORM = obj(
    {
        "id": id_schema("form"),
        "name": STRING,
        "description": STRING,
        "workflow_id": {"type": ["string", "null"]},
        "fields": {"type": "array", "items": FIELD},
        "submissions_count": INTEGER,
        "created_at": DATETIME,
    }
)
FORM_INPUT = obj(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": STRING,
        "workflow_id": {**STRING, "description": "The workflow a submission starts"},
        "fields": {
            "type": "array",
            "items": obj(
                {
                    "name": STRING,
                    "type": {"type": "string", "enum": FIELD_TYPES},
                    "required": BOOLEAN,
                    "label": STRING,
                    "options": {**STRINGS, "description": "The choices of a select field"},
                },
                required=["name", "type"],
            ),
        },
    },
    required=["name"],
)
SUBMISSION = obj(
    {
        "id": id_schema("submission"),
        "form_id": id_schema("form"),
        "data": OBJECT,
        "execution_id": {"type": ["string", "null"]},
        "created_at": DATETIME,
    }
)
CREDENTIAL = obj(
    {
        "id": id_schema("credential"),
        "name": STRING,
        "type": STRING,
        "created_at": DATETIME,
        "updated_at": DATETIME,
    }
)
CREDENTIAL_INPUT = obj(
    {
        "name": STRING,
        "type": {**STRING, "default": "secret"},
        "value": {**STRING, "description": "Write-only, stored encrypted"},
    },
    required=["name", "value"],
)
INTEGRATION = obj(
    {
        "id": id_schema("integration"),
        "name": STRING,
        "type": STRING,
        "status": {"type": "string", "enum": ["untested", "ok", "failing"]},
        "settings": OBJECT,
        "has_credentials": BOOLEAN,
        "created_at": DATETIME,
        "last_tested_at": NULLABLE_DATETIME,
    }
)
TEST_RESULT = obj(
    {
        "id": id_schema("integration"),
        "ok": BOOLEAN,
        "status_code": NULLABLE_INTEGER,
        "error": NULLABLE_STRING,
        "tested_at": DATETIME,
    }
)
WEBHOOK = obj(
    {
        "id": id_schema("webhook"),
        "url": STRING,
        "events": STRINGS,
        "active": BOOLEAN,
        "description": STRING,
        "has_secret": BOOLEAN,
        "created_at": DATETIME,
    }
)
WEBHOOK_INPUT = obj(
    {
        "url": {"type": "string", "format": "uri"},
        "events": {"type": "array", "items": {"type": "string", "enum": EVENTS}},
        "secret": {**STRING, "description": "Signs each delivery; write-only"},
        "description": STRING,
        "active": BOOLEAN,
    },
    required=["url", "events"],
)
DEPRECATION = {
    "Deprecation": "@1793491200",
    "Sunset": "Mon, 01 Nov 2027 00:00:00 GMT",
    "Link": '</v1/openapi.json>; rel="deprecation"; type="application/json"',
}


def deprecated(responses: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI of a deprecated route: marked, with its Deprecation and Sunset headers."""
    headers = {
        "Deprecation": {"description": "When the route was deprecated", "schema": STRING},
        "Sunset": {"description": "When the route stops answering", "schema": STRING},
    }
    return {
        "deprecated": True,
        "responses": {k: {**v, "headers": headers} for k, v in responses.items()},
    }
