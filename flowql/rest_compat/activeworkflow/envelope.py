"""Document 002's errors: {"error": "<status> <reason>"}."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from flowql.errors import ErrorCode
from flowql.rest_compat.errors import REASONS

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}


def error_format(status: int, code: ErrorCode, message: str, details: dict[str, Any]) -> Response:
    """Document 002: {"error": "401 Unauthorized"}."""
    return JSONResponse({"error": f"{status} {REASONS.get(status, message)}"}, status_code=status)
