"""Log hygiene: no credential reaches a log line, and expected input errors are one line.

`RedactSecrets` is a logging.Filter that rewrites a record before any handler formats it:
credential-named query parameters and fields (`?api_key=`, `password=`, `"token": "…"`),
Authorization/Cookie header values, flowql's own key shapes (`fql_…`, `fqr_…`) and JWTs are
masked wherever they appear, in the message, its arguments, the traceback and the stack. A
traceback of an expected input error (a DomainError, a malformed body) becomes one line.

`install()` puts it on the root and uvicorn loggers and on their handlers (a logger's filter
sees only records logged to that very logger; a handler's sees every record it emits).
`flowql serve` also builds uvicorn's logging config with it (`uvicorn_log_config`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

import yaml
from graphql import GraphQLError

from flowql.errors import DomainError

MASK = "***"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

# A parameter or field whose name ends in one of these holds a credential: api_key, apiKey,
# x-api-key, key, token, access_token, id_token, client_secret, password, signature, sig,
# auth, authorization, credentials, session, cookie ...
_SECRET_NAME = re.compile(
    r"(?:key|token|secret|password|passwd|pwd|signature|sig|auth|authorization|credentials?"
    r"|session|cookie)$",
    re.IGNORECASE,
)
# Cheap first test: a line with none of these (most lines) cannot hold anything we mask.
_HINTS = (
    "key",
    "token",
    "secret",
    "pass",
    "pwd",
    "sig",
    "auth",
    "cred",
    "session",
    "cookie",
    "bearer",
    "fq",
    "eyj",
)


def _mask_named(match: re.Match[str]) -> str:
    if _SECRET_NAME.search(match["name"]) is None:
        return match[0]
    return f"{match['head']}{MASK}{match['tail']}"


_PATTERNS: tuple[tuple[re.Pattern[str], Any], ...] = (
    # Header lines and reprs: "Authorization: Bearer x", "'cookie': 'a=b; c=d'".
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization|\b(?:set-)?cookie|\bx-[\w-]*(?:api-key|token|secret"
            r"|signature))(['\"]?\s*:\s*['\"]?)([^'\"\r\n]+)"
        ),
        rf"\1\2{MASK}",
    ),
    # name=value in a query string, a form body or a message: value up to & # ; , whitespace.
    (
        re.compile(r"(?P<head>(?<![\w.-])(?P<name>[\w.-]+)=)[^&#;,\s'\"]+(?P<tail>)"),
        _mask_named,
    ),
    # "name": "value" and 'name': 'value' (JSON and Python reprs).
    (
        re.compile(
            r"(?P<head>(['\"])(?P<name>[\w.-]+)\2\s*:\s*(['\"]))(?:\\.|(?!\4).)*(?P<tail>\4)"
        ),
        _mask_named,
    ),
    # A bearer credential wherever it is (one with a digit or punctuation, not a word).
    (
        re.compile(r"(?i)\b(bearer)\s+(?=[\w.~+/=-]*[\d._~+/=-])[\w.~+/=-]{8,}"),
        rf"\1 {MASK}",
    ),
    # flowql API keys keep their public prefix (which key it was); refresh tokens and the rest.
    (re.compile(r"(?<![A-Za-z0-9])(fql_[A-Za-z0-9]{12})_[\w-]+"), rf"\1_{MASK}"),
    (re.compile(r"(?<![A-Za-z0-9])(fq[a-z])_[\w-]{16,}"), rf"\1_{MASK}"),
    # JWTs: three base64url segments, the first two JSON objects ("eyJ").
    (re.compile(r"(?<![\w-])eyJ[\w-]+\.eyJ[\w-]+\.[\w-]*"), MASK),
)

# Failures a caller's input causes: the answer says what was wrong; a log needs one line.
EXPECTED_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    DomainError,
    json.JSONDecodeError,
    UnicodeDecodeError,
    yaml.YAMLError,
)


def redact(text: str) -> str:
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def is_expected_input_error(exc: BaseException | None) -> bool:
    if isinstance(exc, GraphQLError):
        # Parse and validation errors carry no original error; a resolver's failure does.
        return exc.original_error is None or is_expected_input_error(exc.original_error)
    if isinstance(exc, BaseExceptionGroup):
        return all(is_expected_input_error(e) for e in exc.exceptions)
    return isinstance(exc, EXPECTED_INPUT_ERRORS)


def _redact_arg(arg: Any) -> Any:
    if isinstance(arg, int | float | bool) or arg is None:
        return arg
    text = arg if isinstance(arg, str) else str(arg)
    clean = redact(text)
    return arg if clean == text else clean


def _one_line(exc: BaseException) -> str:
    detail = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class RedactSecrets(logging.Filter):
    """Masks credentials in a record (never drops it); expected input errors lose their stack."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "flowql_redacted", False):
            return True  # the logger's filter did it; this is a handler's
        record.flowql_redacted = True
        try:
            self._redact_message(record)
            self._redact_exception(record)
        except Exception:  # a log line must never be lost to its own redaction
            record.msg, record.args = redact(str(record.msg)), ()
        return True

    def _redact_message(self, record: logging.LogRecord) -> None:
        try:
            full = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format
            record.msg, record.args = redact(f"{record.msg} {record.args!r}"), ()
            return
        clean = redact(full)
        if clean == full:
            return
        # Keep the arguments' shape where masking them one by one is enough (uvicorn's access
        # formatter reads record.args); else the message is rendered once and masked whole.
        if isinstance(record.args, tuple) and isinstance(record.msg, str):
            args = tuple(_redact_arg(a) for a in record.args)
            try:
                rendered = record.msg % args if args else record.msg
            except (TypeError, ValueError):
                rendered = None
            if rendered is not None and redact(rendered) == rendered:
                record.args = args
                return
        record.msg, record.args = clean, ()

    def _redact_exception(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if is_expected_input_error(exc):
                record.msg = f"{record.getMessage()} ({redact(_one_line(exc))})"
                record.args = ()
                record.exc_info = None
                record.exc_text = None
            else:
                record.exc_text = redact(self._formatter.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)


def _add(target: logging.Logger | logging.Handler) -> None:
    if not any(isinstance(f, RedactSecrets) for f in target.filters):
        target.addFilter(RedactSecrets())


def install(names: Iterable[str] = ("", *UVICORN_LOGGERS)) -> None:
    """Put the filter on these loggers (root and uvicorn's by default) and all their handlers.
    Idempotent; call again after logging is reconfigured (uvicorn configures it at startup)."""
    for name in names:
        logger = logging.getLogger(name or None)
        _add(logger)
        for handler in logger.handlers:
            _add(handler)
    if logging.lastResort is not None:
        _add(logging.lastResort)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging config, every handler filtered, and a root handler so flowql's
    own warnings go through the same filter."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = json.loads(json.dumps(LOGGING_CONFIG))
    config["filters"] = {"redact_secrets": {"()": RedactSecrets}}
    for name, logger in config["loggers"].items():
        if name in UVICORN_LOGGERS:
            logger.setdefault("filters", []).append("redact_secrets")
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_secrets")
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
