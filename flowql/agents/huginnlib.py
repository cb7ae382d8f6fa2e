"""What Huginn's and ActiveWorkflow's agents share: their loose booleans ("true", "false"), Ruby
regular expressions, JSONPath lookups (`Utils.value_at` / `values_at`), and the web request
options of WebRequestConcern (headers, basic_auth, user_agent, force_encoding, unzip)."""

from __future__ import annotations

import gzip
import json
import re
from functools import lru_cache
from typing import Any

import httpx
from jsonpath_ng.exceptions import JsonPathParserError
from jsonpath_ng.ext.parser import parse as jsonpath_parse
from pydantic import Field, field_validator

from flowql.agents.base import REDACTED, AgentRun, Options, StepFailed
from flowql.agents.templating import render

TRUE_STRINGS = ("true", "yes", "on", "1")
FALSE_STRINGS = ("false", "no", "off", "0", "")


def boolify(value: Any, default: bool = False) -> bool:
    """Huginn's `boolify`: true/false, "true"/"false" and friends; anything else is `default`."""
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    if isinstance(value, int | float):
        return value != 0
    text = str(value).strip().lower()
    if text in TRUE_STRINGS:
        return True
    if text in FALSE_STRINGS:
        return False
    return default


_FLOAT_PREFIX = re.compile(r"^\s*[+-]?(\d[\d_]*)?(\.\d+)?([eE][+-]?\d+)?")


def ruby_to_s(value: Any) -> str:
    """Ruby's `to_s` for JSON values: nil is "", booleans are true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def ruby_to_f(value: Any) -> float:
    """Ruby's `to_f`: the number a string starts with, else 0.0."""
    if isinstance(value, bool) or value is None:
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    match = _FLOAT_PREFIX.match(str(value))
    text = match.group(0).replace("_", "").strip() if match else ""
    try:
        return float(text) if text and text not in ("+", "-") else 0.0
    except ValueError:
        return 0.0


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_boolish(value: Any, name: str) -> Any:
    """An option Huginn reads with `boolify`: a bool, "true"/"false", or a Liquid template."""
    if value is None or isinstance(value, bool) or is_template(value):
        return value
    if isinstance(value, str) and value.strip().lower() in (*TRUE_STRINGS, *FALSE_STRINGS):
        return value
    raise ValueError(f"{name} must be true or false")


def check_positive_int(value: Any, name: str, minimum: int = 1) -> Any:
    if value is None or value == "" or is_template(value):
        return value
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return value


_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")
_INLINE_FLAGS = re.compile(r"\(\?([imx]*)(?:-([imx]+))?([:)])")


def _swap_flags(match: re.Match[str]) -> str:
    on, off, end = match.group(1), match.group(2) or "", match.group(3)
    # Ruby's `m` is Python's `s` (dot matches newline); Ruby has no equivalent of Python's `m`.
    on, off = on.replace("m", "s"), off.replace("m", "s")
    return "(?" + on + ("-" + off if off else "") + end


def _escapes(source: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(source):
        char = source[index]
        if char == "\\" and index + 1 < len(source):
            nxt = source[index + 1]
            out.append(_RUBY_ESCAPES.get(nxt, char + nxt))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


_RUBY_ESCAPES = {"z": "\\Z", "Z": "(?=\\n?\\Z)", "h": "[0-9a-fA-F]", "H": "[^0-9a-fA-F]"}


def ruby_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile a Ruby regular expression with Python's `re`: `(?<name>…)` groups, `\\z`,
    `(?m:…)` (dot matches newline) and `^`/`$` matching at every line, as in Ruby. A leading
    `(?-i)` turns `ignore_case` off (as Huginn's TriggerAgent documents)."""
    source = pattern
    if source.startswith("(?-i)"):
        source, ignore_case = source[5:], False
    source = _NAMED_GROUP.sub("(?P<", source)
    source = _escapes(source)
    source = _INLINE_FLAGS.sub(_swap_flags, source)
    flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
    try:
        return _compile(source, flags)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


@lru_cache(maxsize=512)
def _compile(source: str, flags: int) -> re.Pattern[str]:
    return re.compile(source, flags)


@lru_cache(maxsize=512)
def _jsonpath(path: str) -> Any:
    try:
        return jsonpath_parse(path)
    except (JsonPathParserError, Exception) as exc:
        raise ValueError(f"invalid JSONPath {path!r}: {exc}") from None


def values_at(data: Any, path: str) -> list[Any]:
    """Every value `path` (JSONPath, with or without the leading `$`) selects in `data`."""
    path = path.strip()
    if path in ("", "$"):
        return [data]
    return [match.value for match in _jsonpath(path).find(data)]


def value_at(data: Any, path: str) -> Any:
    """The first value `path` selects in `data`, or None."""
    found = values_at(data, path)
    return found[0] if found else None


class WebRequestOptions(Options):
    """The request options of Huginn's WebRequestConcern."""

    headers: dict[str, Any] | str | None = None
    basic_auth: str | list[str] | None = Field(
        default=None, description='"user:password" or ["user", "password"]'
    )
    user_agent: str | None = None
    force_encoding: str | None = None
    unzip: str | None = Field(default=None, description='"gzip" to inflate the body')
    disable_ssl_verification: Any = Field(
        default=None, description="Accepted for imports; flowql always verifies TLS"
    )
    disable_url_encoding: Any = None
    disable_redirect_follow: bool | str | None = Field(
        default=None, description="Do not follow redirects"
    )
    proxy: str | None = Field(default=None, description="Not supported: must be empty")
    backend: str | None = Field(default=None, description="Accepted for imports; ignored")

    @field_validator("disable_redirect_follow", "disable_ssl_verification")
    @classmethod
    def _boolish_web(cls, value: Any) -> Any:
        return check_boolish(value, "this option")

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("proxies are not supported: requests go through flowql's client")
        return value

    @field_validator("basic_auth")
    @classmethod
    def _basic_auth(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) != 2:
            raise ValueError('basic_auth must be "user:password" or ["user", "password"]')
        # "********" is how the API shows the stored secret: sent back, it keeps it.
        if (
            isinstance(value, str)
            and value
            and ":" not in value
            and not is_template(value)
            and value != REDACTED
        ):
            raise ValueError('basic_auth must be "user:password" or ["user", "password"]')
        return value

    @field_validator("unzip")
    @classmethod
    def _unzip(cls, value: str | None) -> str | None:
        if value not in (None, "", "gzip") and not is_template(value):
            raise ValueError('unzip must be "gzip" if present')
        return value


def request_headers(options: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    raw = options.get("headers")
    if isinstance(raw, dict):
        headers.update({str(k): str(v) for k, v in raw.items()})
    elif raw not in (None, ""):
        raise StepFailed("headers must be an object")
    if options.get("user_agent"):
        headers["User-Agent"] = str(options["user_agent"])
    return headers


def request_auth(options: dict[str, Any]) -> tuple[str, str] | None:
    auth = options.get("basic_auth")
    if isinstance(auth, list) and len(auth) == 2:
        return str(auth[0]), str(auth[1])
    if isinstance(auth, str) and ":" in auth:
        user, _, password = auth.partition(":")
        return user, password
    return None


def response_text(response: httpx.Response, options: dict[str, Any]) -> str:
    """The body as text: `force_encoding`, then the Content-Type charset, then UTF-8."""
    return decode_body(response_bytes(response, options), response, options)


def response_bytes(response: httpx.Response, options: dict[str, Any]) -> bytes:
    content = response.content
    if options.get("unzip") == "gzip":
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError) as exc:
            raise StepFailed(f"could not gunzip the response: {exc}") from exc
    return content


def response_charset(response: httpx.Response, options: dict[str, Any]) -> str | None:
    forced = options.get("force_encoding")
    if forced:
        return str(forced)
    return response.charset_encoding


def decode_body(content: bytes, response: httpx.Response, options: dict[str, Any]) -> str:
    charset = response_charset(response, options) or "utf-8"
    try:
        return content.decode(charset, errors="replace")
    except LookupError:
        raise StepFailed(f"unknown encoding {charset!r}") from None


def header_variants(headers: httpx.Headers | dict[str, Any]) -> dict[str, Any]:
    """Response headers as Huginn's HeaderDrop offers them: insensitive to case and to -/_
    (`Content-Type`, `content-type`, `content_type` all work)."""
    result: dict[str, Any] = {}
    for key, value in headers.items():
        name = str(key)
        lower = name.lower()
        title = "-".join(part.capitalize() for part in lower.split("-"))
        for variant in (name, lower, title, lower.replace("-", "_"), title.replace("-", "_")):
            result.setdefault(variant, value)
    return result


ORDER_TYPES = ("string", "number", "time")


def check_events_order(value: Any) -> Any:
    """`events_order`: a list of `expression` or `[expression, type, descending]`."""
    if value is None:
        return value
    if not isinstance(value, list):
        raise ValueError("events_order must be an array of arrays")
    for item in value:
        parts = item if isinstance(item, list) else [item]
        if not parts or not isinstance(parts[0], str):
            raise ValueError("the first element of each events_order tuple must be a template")
        if len(parts) > 1 and parts[1] is not None and parts[1] not in ORDER_TYPES:
            raise ValueError(
                "the second element of each events_order tuple must be string, number or time"
            )
        if len(parts) > 2 and parts[2] is not None and not isinstance(parts[2], bool):
            check_boolish(parts[2], "the third element of each events_order tuple")
        if len(parts) > 3:
            raise ValueError("each events_order tuple has at most three elements")
    return value


def _parse_time(text: str) -> float:
    from datetime import datetime
    from email.utils import parsedate_to_datetime

    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        return parsedate_to_datetime(text.strip()).timestamp()


def _sort_value(text: str, kind: str) -> tuple[int, Any]:
    if kind == "number":
        return (1, ruby_to_f(text))
    if kind == "time":
        if not text.strip():
            return (0, 0)
        try:
            return (1, _parse_time(text))
        except (ValueError, TypeError, IndexError):
            return (2, text)
    return (2, text)


def sort_events(
    run: AgentRun,
    payloads: list[dict[str, Any]],
    order: Any,
    include_sort_info: bool = False,
) -> list[dict[str, Any]]:
    """Huginn's SortableEvents: order the messages of one run by `events_order` (stable; each
    key a Liquid template over the message, with `_index_`), then add `sort_info` if asked."""
    result = list(payloads)
    if isinstance(order, list) and order:
        keys: list[list[tuple[int, Any]]] = []
        for index, payload in enumerate(result):
            context = run.template_context({**payload, "_index_": index})
            row = []
            for item in order:
                parts = item if isinstance(item, list) else [item]
                text = str(render(str(parts[0]), context))
                row.append(
                    _sort_value(text, str(parts[1] if len(parts) > 1 and parts[1] else "string"))
                )
            keys.append(row)
        indexed = list(range(len(result)))
        for position in reversed(range(len(order))):
            item = order[position]
            descending = boolify(item[2]) if isinstance(item, list) and len(item) > 2 else False
            indexed.sort(key=lambda i: keys[i][position], reverse=descending)
        result = [result[i] for i in indexed]
    if include_sort_info:
        count = len(result)
        result = [
            {**payload, "sort_info": {"position": position, "count": count}}
            for position, payload in enumerate(result, start=1)
        ]
    return result
