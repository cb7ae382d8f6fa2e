"""The one JSON parser for everything a caller sends: request bodies on every mount, GraphQL
variables (POST, GET and WebSocket messages) and webhook payloads.

Stricter than `json.loads`, never more lenient, so a document it accepts parses the same with
either: bounded size and nesting depth, no `NaN`/`Infinity` (nor numbers that overflow to them),
strict UTF-8, no lone surrogates (`"\\ud800"` decodes to a string no database can store). Every
refusal is a `JSONRefused`, a `json.JSONDecodeError` (so code expecting that still catches it)
whose message says what is wrong.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
MAX_BYTES = 1024 * 1024

# A JSON string (valid JSON only: run after the document has parsed), then every escape of a
# UTF-16 surrogate; a pair is fine, a lone half is not.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]", re.ASCII)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SQUARE = str.maketrans("{}", "[]")


class JSONRefused(json.JSONDecodeError):
    """The body is not JSON flowql accepts; `str(exc)` and `.reason` say why, `.problem` says
    it as a field's problem (`must be valid JSON` for a syntax error)."""

    def __init__(
        self, reason: str, document: str = "", position: int = 0, problem: str | None = None
    ) -> None:
        super().__init__(reason, document, position)
        self.reason = reason
        self.problem = problem or reason

    def __str__(self) -> str:
        return self.reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (JSONRefused, (self.reason, self.doc, self.pos, self.problem))


def _refuse_constant(name: str) -> Any:
    raise JSONRefused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONRefused(f"number {text[:40]} is out of range")
    return value


def loads(
    data: bytes | bytearray | memoryview | str,
    *,
    max_depth: int = MAX_DEPTH,
    max_bytes: int | None = MAX_BYTES,
) -> Any:
    """Parse one JSON document, or raise `JSONRefused` saying why it is refused."""
    if max_bytes is not None and len(data) > max_bytes:
        raise JSONRefused(f"JSON document larger than {max_bytes} bytes")
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONRefused(f"not valid UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise JSONRefused("a byte order mark is not allowed before JSON")
    if not text.strip():
        raise JSONRefused("empty body: a JSON document is expected")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JSONRefused:
        raise
    except RecursionError:
        raise JSONRefused(f"JSON nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise JSONRefused(
            f"not valid JSON: {exc.msg} (position {exc.pos})", problem="must be valid JSON"
        ) from None
    except ValueError:  # an integer with more digits than Python converts (4300)
        raise JSONRefused("a number has too many digits") from None
    if _opening_brackets(text) > max_depth and _deeper_than(text, max_depth):
        raise JSONRefused(f"JSON nested deeper than {max_depth} levels")
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise JSONRefused("a string holds a lone UTF-16 surrogate (not valid Unicode)")
    return value


def _opening_brackets(text: str) -> int:
    return text.count("[") + text.count("{")


def _deeper_than(text: str, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than `max_depth` (brackets in strings ignored).
    Each pass removes the innermost level; at most `max_depth + 1` passes at C speed."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).translate(_SQUARE)
    for _ in range(max_depth):
        brackets = brackets.replace("[]", "")
        if not brackets:
            return False
    return True


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def is_json_media_type(media_type: str) -> bool:
    """`application/json`, `text/json` and any `…+json` (parameters already removed)."""
    kind, _, subtype = media_type.partition("/")
    return kind in ("application", "text") and (subtype == "json" or subtype.endswith("+json"))


def media_type(content_type: str | None) -> str:
    """The lower-cased `type/subtype` of a Content-Type header, '' when absent."""
    return (content_type or "").split(";", 1)[0].strip().lower()
