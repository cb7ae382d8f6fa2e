"""Document 002's OpenAPI schemas: agents, messages, workflows."""

from __future__ import annotations

from typing import Any

AGENT_SCHEMA = {
    "type": "object",
    "required": ["id", "name", "type", "disabled", "messages_count", "sources"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "type": {"type": "string"},
        "disabled": {"type": "boolean"},
        "messages_count": {"type": "integer"},
        "sources": {
            "type": "array",
            "items": {"type": "object", "properties": {"id": {"type": "integer"}}},
        },
    },
}
MESSAGE_SCHEMA = {
    "type": "object",
    "required": ["id", "agent_id", "created_at", "expires_at"],
    "properties": {
        "id": {"type": "integer"},
        "agent_id": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "payload": {"type": "object"},
    },
}
WORKFLOW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "description"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "description": {"type": "string"},
    },
}
