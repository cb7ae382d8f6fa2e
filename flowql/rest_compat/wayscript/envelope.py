"""Documents 000 and 001's errors: bare statuses, with a short JSON reason."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from flowql.errors import ErrorCode


def error_format(status: int, code: ErrorCode, message: str, details: dict[str, Any]) -> Response:
    """Documents 000 and 001 give bare statuses; a short JSON reason helps scripts log it."""
    return JSONResponse({"error": message, "code": code.value}, status_code=status)
