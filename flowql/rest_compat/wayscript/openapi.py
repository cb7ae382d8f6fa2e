"""OpenAPI schemas of WayScript's documented JSON (documents 000 and 001)."""

from __future__ import annotations

from typing import Any

from flowql.rest_compat.openapi import obj

UUID = {"type": "string", "format": "uuid"}
UUID_OR_NULL = {"type": ["string", "null"], "format": "uuid"}
TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
TEXT_OR_NULL = {"type": ["string", "null"]}
ANY_JSON: dict[str, Any] = {}


EVENT_SCHEMA = obj(
    {
        "id": UUID,
        "trigger_type": {"type": "string"},
        "data": ANY_JSON,
        "meta": ANY_JSON,
        "created_date": TIME,
    },
    nullable=True,
)
PROCESS_SCHEMA = obj(
    {
        "id": UUID,
        "lair_id": UUID_OR_NULL,
        "trigger_id": TEXT_OR_NULL,
        "service_id": TEXT_OR_NULL,
        "event_id": UUID_OR_NULL,
        "workspace_id": UUID,
        "user_id": UUID_OR_NULL,
        "command": TEXT_OR_NULL,
        "port": TEXT_OR_NULL,
        "created_date": TIME,
        "commpleted_date": TIME_OR_NULL,
        "completed_date": TIME_OR_NULL,
        "last_activity": TIME_OR_NULL,
    }
)
TRIGGER_SCHEMA = obj(
    {
        "trigger_id": UUID,
        "lair_id": UUID,
        "workspace_id": UUID,
        "type": {"type": "string"},
        "test_event": {"type": "string"},
        "command": {"type": "string"},
        "workspace_integration_id": UUID_OR_NULL,
        "settings": ANY_JSON,
        "data": ANY_JSON,
        "created_date": TIME,
        "archived_date": TIME_OR_NULL,
    },
    nullable=True,
)
DETAIL_SCHEMA = obj(
    {"event": EVENT_SCHEMA, "process": PROCESS_SCHEMA, "lair_trigger": TRIGGER_SCHEMA}
)
WORKSPACE_SCHEMA = obj(
    {
        "id": UUID,
        "name": {"type": "string"},
        "owner_id": UUID_OR_NULL,
        "account_tier_id": UUID,
        "cron_timezone": {"type": "string"},
        "created_date": TIME,
    }
)
GROUP_SCHEMA = obj(
    {
        "id": UUID,
        "name": {"type": "string"},
        "workspace_id": UUID,
        "owner_id": UUID_OR_NULL,
        "system_managed": {"type": "boolean"},
    }
)
USER_SCHEMA = obj(
    {
        "id": UUID,
        "email": {"type": "string"},
        "first_name": {"type": "string"},
        "last_name": {"type": "string"},
        "avatar": {"type": "string"},
        "created_date": {"type": "string"},
        "last_login": TEXT_OR_NULL,
        "groups": {"type": "array", "items": GROUP_SCHEMA},
    }
)
LAIR_SCHEMA = obj(
    {
        "id": UUID,
        "internal_id": {"type": "integer"},
        "name": {"type": "string"},
        "friendly_name": {"type": "string"},
        "workspace_id": UUID,
        "workspace_uuid": UUID,
        "manager_id": UUID_OR_NULL,
        "last_run_date": TIME_OR_NULL,
        "is_public": {"type": "boolean"},
        "endpoints_are_private": {"type": "boolean"},
        "created_date": TIME,
        "default_path": {"type": "string"},
        "environment": {"type": "string"},
        "last_deployed": TIME_OR_NULL,
        "endpoint": {"type": "string"},
    }
)
INTEGRATION_SCHEMA = obj(
    {
        "id": UUID,
        "name": {"type": "string"},
        "user_id": UUID_OR_NULL,
        "workspace_id": UUID,
        "type": {"type": "string"},
        "credentials": TEXT_OR_NULL,
        "credentials_state": {"type": "string"},
        "external_account_id": {"type": "string"},
        "settings": {"type": "string"},
    }
)
EMPTY_SCHEMA = {"type": "object", "maxProperties": 0}
ERROR_SCHEMA = obj({"error": {"type": "string"}, "code": {"type": "string"}})
TOKENS_SCHEMA = obj({"refresh_token": {"type": "string"}, "access_token": {"type": "string"}})


def body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}
