"""What every family's errors share: the error format's signature, one status per stable
code, and reason phrases. Each family's own format lives in its package (`<family>/envelope.py`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from flowql.errors import ErrorCode

ErrorFormat = Callable[[int, ErrorCode, str, dict[str, Any]], Response]

# One HTTP status per stable error code, for every family.
STATUS_FOR_CODE = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
}

REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def status_for(code: ErrorCode) -> int:
    return STATUS_FOR_CODE.get(code, 500)
