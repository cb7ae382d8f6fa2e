"""Document 003 (LetsFlow's engine API): content negotiation, bodies and OpenAPI schemas."""

from __future__ import annotations

import uuid
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from flowql.errors import ErrorCode, ValidationFailed
from flowql.rest_compat.base import YAML_TYPES, Call, parse_json_body

PREFIX = "/compat/letsflow"
JSON_TYPE = "application/json"


def error_format(status: int, code: ErrorCode, message: str, details: dict[str, Any]) -> Response:
    """Document 003, as LetsFlow's engine answers a refused step: {"error": {"message",
    "reason": [...]}}, plus flowql's `code`, the invalid `fields` and a skipped `eventId`."""
    fields = details.get("fields")
    reasons = details.get("reasons")
    if reasons is None:
        reasons = [f"{k}: {v}" for k, v in fields.items()] if isinstance(fields, dict) else []
    error: dict[str, Any] = {"message": message, "code": code.value, "reason": list(reasons)}
    if isinstance(fields, dict) and fields:
        error["fields"] = fields
    if details.get("eventId"):
        error["eventId"] = details["eventId"]
    return JSONResponse({"error": error}, status_code=status)


# -- content negotiation ------------------------------------------------------------------------


def _preference(accept: str, media: str) -> tuple[float, int]:
    """(q, specificity) of the most specific range of `accept` matching `media`."""
    kind = media.split("/", 1)[0]
    best: tuple[int, float] = (-1, 0.0)
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        ranged = pieces[0].lower()
        specificity = {media: 2, f"{kind}/*": 1, "*/*": 0}.get(ranged)
        if specificity is None or specificity <= best[0]:
            continue
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = (specificity, q)
    return (best[1], best[0])


def wants_yaml(request: Request) -> bool:
    """Accept negotiation between JSON and YAML, as LetsFlow's engine does; JSON by default."""
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return False
    as_yaml = max(_preference(accept, media) for media in YAML_TYPES)
    return as_yaml[0] > 0 and as_yaml > _preference(accept, JSON_TYPE)


def respond(
    call: Call,
    body: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    yaml_text: str | None = None,
) -> Response:
    """JSON, or YAML when the caller's Accept prefers it (`yaml_text` when already rendered)."""
    if wants_yaml(call.request):
        text = yaml_text if yaml_text is not None else dump_yaml(body)
        return Response(text, status_code=status, headers=headers, media_type="application/yaml")
    return JSONResponse(body, status_code=status, headers=headers)


def dump_yaml(body: Any) -> str:
    return yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def no_content() -> Response:
    return Response(status_code=204)


# -- request bodies and parameters --------------------------------------------------------------


def is_yaml(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media in YAML_TYPES


async def json_body(request: Request) -> Any:
    return await parse_json_body(request)


def require_object(value: Any, name: str = "body") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed.one(name, "must be a JSON object")
    return value


def optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ValidationFailed.one(name, "must be a string")
    return value


def uuid_text(value: Any, name: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValidationFailed.one(name, "must be a UUID") from None


def workspace_param(call: Call) -> str | None:
    """`?workspace=<uuid>`: where a new scenario or API key goes when the caller has several."""
    value = call.query.get("workspace")
    return uuid_text(value, "workspace") if value else None


def as_actor(call: Call) -> str | None:
    value = call.request.headers.get("as-actor", "").strip()
    return value or None


def location(path: str) -> dict[str, str]:
    return {"Location": f"{PREFIX}{path}"}
