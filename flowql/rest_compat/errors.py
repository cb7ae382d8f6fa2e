"""Each documented family's own error format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse, Response

from flowql.errors import ErrorCode

ErrorFormat = Callable[[int, ErrorCode, str, dict[str, Any]], Response]

REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def platform_v1(status: int, code: ErrorCode, message: str, details: dict[str, Any]) -> Response:
    """Document 004: {"success": false, "error": {"code", "message", "details"}}."""
    body = {"success": False, "error": {"code": code.value, "message": message, "details": details}}
    return JSONResponse(body, status_code=status)


def activeworkflow(status: int, code: ErrorCode, message: str, details: dict[str, Any]) -> Response:
    """Document 002: {"error": "401 Unauthorized"}."""
    return JSONResponse({"error": f"{status} {REASONS.get(status, message)}"}, status_code=status)


def plain(status: int, code: ErrorCode, message: str, details: dict[str, Any]) -> Response:
    """Documents 000 and 001 give bare statuses; a short JSON reason helps scripts log it."""
    return JSONResponse({"error": message, "code": code.value}, status_code=status)


def letsflow(status: int, code: ErrorCode, message: str, details: dict[str, Any]) -> Response:
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


ERROR_FORMATS: dict[str, ErrorFormat] = {
    "/v1": platform_v1,
    "/compat/activeworkflow": activeworkflow,
    "/compat/wayscript": plain,
    "/compat/letsflow": letsflow,
}

# Document 001 authenticates with `?api_key=…`.
QUERY_KEY_PATHS = ("/compat/wayscript/api",)
