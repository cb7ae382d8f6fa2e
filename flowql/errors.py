"""The few typed errors services raise. One place per surface maps them to codes."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    CONFLICT = "CONFLICT"


class DomainError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def extensions(self) -> dict[str, Any]:
        return {"code": self.code.value, **self.details}


class Unauthorized(DomainError):
    code = ErrorCode.UNAUTHORIZED


class Forbidden(DomainError):
    code = ErrorCode.FORBIDDEN


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, kind: str, ident: Any = None) -> None:
        super().__init__(f"{kind} not found", type=kind)
        self.kind = kind


class Conflict(DomainError):
    code = ErrorCode.CONFLICT


class RateLimited(DomainError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retryAfter=retry_after)
        self.retry_after = retry_after


class ValidationFailed(DomainError):
    """`fields` maps a field path (e.g. `input.options.url`) to what is wrong with it."""

    code = ErrorCode.VALIDATION_ERROR

    def __init__(self, fields: dict[str, str], message: str | None = None) -> None:
        summary = message or "; ".join(f"{k}: {v}" for k, v in fields.items())
        super().__init__(summary or "invalid input", fields=fields)
        self.fields = fields

    @classmethod
    def one(cls, field: str, problem: str) -> ValidationFailed:
        return cls({field: problem})
