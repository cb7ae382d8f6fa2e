"""Document 004's shared pieces: prefixed ids, the success envelope, page/limit and cursor paging,
dates, request-body checks, GraphQL error field names in REST spelling, and OpenAPI schemas."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from flowql.errors import ErrorCode, Forbidden, NotFound, ValidationFailed
from flowql.rest_compat.base import Call, OperationFailed, Shaper, Variables, int_param
from flowql.rest_compat.openapi import obj

PREFIXES = {
    "workflow": "wf",
    "execution": "exec",
    "form": "form",
    "submission": "sub",
    "credential": "cred",
    "integration": "int",
    "webhook": "wh",
}
INT32_MAX = 2**31 - 1
MAX_LIMIT = 100
MAX_PAGE = 1_000_000
PAGE = "totalCount pageInfo { hasNextPage endCursor }"
PAGE_ARGS = "first: $first, after: $after, offset: $offset"
PAGE_VARS = "$first: Int, $after: String, $offset: Int"


def error_format(status: int, code: ErrorCode, message: str, details: dict[str, Any]) -> Response:
    """Document 004: {"success": false, "error": {"code", "message", "details"}}."""
    body = {"success": False, "error": {"code": code.value, "message": message, "details": details}}
    return JSONResponse(body, status_code=status)


# -- ids ---------------------------------------------------------------------------------------


def render_id(kind: str, number: int | None) -> str | None:
    return None if number is None else f"{PREFIXES[kind]}_{number}"


def parse_id(value: Any, kind: str, field: str = "id") -> dict[str, Any]:
    """`wf_12`, `12` or a UUID -> GraphQL {number} or {id}. Malformed: VALIDATION_ERROR."""
    text = str(value or "").strip()
    match = re.fullmatch(rf"(?:{PREFIXES[kind]}_)?([0-9]{{1,30}})", text)
    if match:
        number = int(match.group(1))
        if number > INT32_MAX:
            raise NotFound(kind.capitalize())
        return {"number": number}
    try:
        return {"id": str(uuid.UUID(text))}
    except ValueError:
        pass
    raise ValidationFailed(
        {field: f"must be {PREFIXES[kind]}_<number>, a number or a UUID"},
        message=f"Invalid {kind} ID",
    )


# -- responses ---------------------------------------------------------------------------------


def ok(
    data: Any,
    status: int = 200,
    meta: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if meta is not None:
        body["meta"] = meta
    return JSONResponse(body, status_code=status, headers=headers)


def iso(value: str | None) -> str | None:
    """GraphQL's isoformat datetime as ISO 8601 UTC with `Z`."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_datetime(value: str | None, field: str) -> str | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationFailed.one(field, "must be an ISO 8601 date or datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


# -- paging ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paging:
    """`page`/`limit` (offset) or `cursor`/`limit`; every list answers with both kinds of meta."""

    limit: int
    page: int | None
    cursor: str | None

    @classmethod
    def of(cls, call: Call) -> Paging:
        limit = int_param(call.query.get("limit"), "limit", 20, minimum=1, maximum=MAX_LIMIT)
        cursor = call.query.get("cursor") or None
        page = int_param(call.query.get("page"), "page", 1, minimum=1, maximum=MAX_PAGE)
        assert limit is not None and page is not None
        return cls(limit=limit, page=None if cursor else page, cursor=cursor)

    def variables(self) -> dict[str, Any]:
        offset = None if self.page is None else (self.page - 1) * self.limit
        return {"first": self.limit, "after": self.cursor, "offset": offset}

    def meta(self, connection: Mapping[str, Any]) -> dict[str, Any]:
        more = bool(connection["pageInfo"]["hasNextPage"])
        return {
            "page": self.page,
            "limit": self.limit,
            "total": connection["totalCount"],
            "next_cursor": connection["pageInfo"]["endCursor"] if more else None,
            "has_more": more,
        }


# -- running GraphQL -----------------------------------------------------------------------------

Rename = list[tuple[str, str]]
DEFAULT_RENAME: Rename = [(r"^first$", "limit"), (r"^after$", "cursor"), (r"^offset$", "page")]
SNAKE = {
    "workflowId": "workflow_id",
    "workspaceId": "workspace_id",
    "keepMessagesFor": "keep_messages_for",
    "maxRetries": "max_retries",
    "timeoutSeconds": "timeout_seconds",
    "idempotencyKey": "idempotency_key",
}


def rest_field(path: str, rename: Rename) -> str:
    """A GraphQL validation field path in this API's spelling."""
    for pattern, replacement in [*rename, *DEFAULT_RENAME]:
        if re.search(pattern, path):
            path = re.sub(pattern, replacement, path, count=1)
            break
    if path.startswith("data."):
        return path  # a form's own field names
    return ".".join(SNAKE.get(part, part) for part in path.split("."))


# flowql's object kinds under this API's names.
KINDS = {"Process": "Execution", "WebhookSubscription": "Webhook"}


async def run(
    call: Call, document: str, variables: dict[str, Any], rename: Rename | None = None
) -> dict[str, Any]:
    """`call.run`, with errors naming this API's fields and kinds."""
    try:
        return await call.run(document, variables)
    except OperationFailed as failed:
        in_rest_terms(failed, rename)
        raise


def in_rest_terms(failed: OperationFailed, rename: Rename | None = None) -> None:
    """A failed operation's error naming this API's fields and kinds."""
    kind = failed.details.get("type")
    if failed.code is ErrorCode.NOT_FOUND and kind in KINDS:
        failed.details["type"] = KINDS[kind]
        failed.message = f"{KINDS[kind]} not found"
    fields = failed.details.get("fields")
    if failed.code is ErrorCode.VALIDATION_ERROR and isinstance(fields, dict):
        renamed = {rest_field(str(k), rename or []): v for k, v in fields.items()}
        failed.details["fields"] = renamed
        failed.message = "; ".join(f"{k}: {v}" for k, v in renamed.items())


# -- the common route, declared ------------------------------------------------------------------


def by_reference(kind: str) -> Variables:
    """`{id}` (`wf_12`, `12` or a UUID) as the GraphQL `id` or `number` argument."""
    return lambda call: parse_id(call.path["id"], kind)


def operation(kind: str, field: str, selection: str, mutation: bool = False) -> str:
    """One operation on the object `{id}` names: `field(id: $id, number: $number)`."""
    verb = "mutation" if mutation else "query"
    return (
        f"{verb}($id: UUID, $number: Int) {{ {field}(id: $id, number: $number) {{ {selection} }} }}"
    )


def shaped(field: str, to_json: Callable[[dict[str, Any]], Any], status: int = 200) -> Shaper:
    """The success envelope around `to_json` of the operation's `field`."""
    return lambda call, data: ok(to_json(data[field]), status=status)


def deleted(kind: str, field: str) -> Shaper:
    return lambda call, data: ok({"id": render_id(kind, data[field]["number"]), "deleted": True})


def require(call: Call, privilege: str) -> None:
    """Listing needs the privilege in some workspace; without it the answer is 403, not []."""
    if not call.principal.workspaces_with(privilege):
        raise Forbidden(f"missing privilege {privilege}", privilege=privilege)


# -- one object, one list -------------------------------------------------------------------


async def listing(call: Call, privilege: str, field: str, fields: str) -> Any:
    """The connection page of a top-level list (newest first) and its meta."""
    require(call, privilege)
    paging = Paging.of(call)
    document = f"query({PAGE_VARS}) {{ {field}({PAGE_ARGS}) {{ {PAGE} nodes {{ {fields} }} }} }}"
    connection = (await run(call, document, paging.variables()))[field]
    return connection["nodes"], paging.meta(connection)


# -- request bodies ----------------------------------------------------------------------------


class Body:
    """Checks a JSON object body field by field; `done()` raises every problem at once."""

    def __init__(self, raw: Any, optional: bool = False) -> None:
        if raw is None and optional:
            raw = {}
        if not isinstance(raw, dict):
            raise ValidationFailed.one("body", "must be a JSON object")
        self.raw: dict[str, Any] = raw
        self.problems: dict[str, str] = {}

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def _get(self, name: str, required: bool, kind: type | tuple[type, ...], what: str) -> Any:
        value = self.raw.get(name)
        if value is None:
            if required:
                self.problems[name] = "required"
            return None
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            self.problems[name] = f"must be {what}"
            return None
        return value

    def text(self, name: str, required: bool = False, choices: tuple[str, ...] = ()) -> Any:
        value = self._get(name, required, str, "a string")
        if value is not None and choices and value not in choices:
            self.problems[name] = f"must be one of: {', '.join(choices)}"
            return None
        return value

    def mapping(self, name: str, required: bool = False) -> Any:
        return self._get(name, required, dict, "an object")

    def array(self, name: str, required: bool = False) -> Any:
        return self._get(name, required, list, "an array")

    def flag(self, name: str) -> Any:
        return self._get(name, False, bool, "true or false")

    def strings(self, name: str, required: bool = False) -> Any:
        value = self.array(name, required)
        if value is not None and not all(isinstance(v, str) for v in value):
            self.problems[name] = "must be an array of strings"
            return None
        return value

    def done(self) -> None:
        if self.problems:
            raise ValidationFailed(dict(self.problems))


# -- OpenAPI -----------------------------------------------------------------------------------

ERROR_SCHEMA = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {
        "success": {"const": False},
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "enum": [c.value for c in ErrorCode]},
                "message": {"type": "string"},
                "details": {
                    "type": "object",
                    "description": "VALIDATION_ERROR: `fields` maps each invalid field to "
                    "its problem",
                },
            },
        },
    },
}
META_SCHEMA = {
    "type": "object",
    "required": ["page", "limit", "total", "next_cursor", "has_more"],
    "properties": {
        "page": {"type": ["integer", "null"], "description": "null when paging by cursor"},
        "limit": {"type": "integer"},
        "total": {"type": "integer"},
        "next_cursor": {"type": ["string", "null"]},
        "has_more": {"type": "boolean"},
    },
}
PAGE_PARAMETERS = [
    {
        "name": "page",
        "in": "query",
        "description": "Page number, from 1 (ignored with cursor)",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
    },
    {
        "name": "limit",
        "in": "query",
        "description": "Items per page",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20},
    },
    {
        "name": "cursor",
        "in": "query",
        "description": "meta.next_cursor of the previous page",
        "schema": {"type": "string"},
    },
]
STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
DATETIME = {"type": "string", "format": "date-time"}
NULLABLE_DATETIME = {"type": ["string", "null"], "format": "date-time"}


def respond(
    status: int, data: dict[str, Any], description: str = "Success", listing: bool = False
) -> dict[str, Any]:
    properties: dict[str, Any] = {"success": {"const": True}, "data": data}
    required = ["success", "data"]
    if listing:
        properties["data"] = {"type": "array", "items": data}
        properties["meta"] = META_SCHEMA
        required.append("meta")
    schema = {"type": "object", "required": required, "properties": properties}
    content = {"application/json": {"schema": schema}}
    return {str(status): {"description": description, "content": content}}


def request_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    }


def id_schema(kind: str) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{PREFIXES[kind]}_[0-9]+$"}


DELETED = obj({"id": STRING, "deleted": {"const": True}})
