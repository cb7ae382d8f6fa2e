"""What a request body may be, checked before anything reads it: size (413), type (415) and
JSON (400), each refusal in the format of the mount it was sent to.

- Every POST/PUT/PATCH/DELETE body is bounded: `FLOWQL_MAX_BODY_BYTES` (GraphQL and the REST
  mounts) or `FLOWQL_HOOKS_MAX_BODY_BYTES` (`/hooks`). A larger Content-Length is refused before
  reading; a body that grows past the limit is refused once it has.
- A body whose Content-Type says JSON is parsed once here with `flowql.jsonsafe` (depth, NaN,
  UTF-8, surrogates) and the value left on `scope["state"]["json_body"]` for the route.
- GraphQL POST takes `application/json` only (`415` otherwise: `text/plain`, form and multipart
  bodies are what a browser sends cross-site without a preflight); GET's `variables` and
  `extensions` go through the same parser. REST routes check their declared media types
  (flowql.rest_compat.base: JSON, and YAML where a route documents it). `/hooks` takes any type:
  webhook senders post JSON, forms and text, and a hook authenticates with its own secret or
  signature, never with anything a browser adds by itself.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowql import jsonsafe
from flowql.errors import ErrorCode
from flowql.middleware import ErrorFormat, graphql_error
from flowql.settings import Settings

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GRAPHQL_PATH = "/graphql"
HOOKS_PREFIX = "/hooks/"


def hooks_error(status: int, code: ErrorCode, message: str, details: dict[str, Any]) -> Response:
    """`/hooks` answers `{"error": message}` (flowql.triggers.hooks)."""
    return JSONResponse({"error": message}, status_code=status)


def error_formats(rest_formats: dict[str, ErrorFormat]) -> dict[str, ErrorFormat]:
    """Each path prefix's error format, most specific first; GraphQL's for everything else."""
    formats = {HOOKS_PREFIX: hooks_error, **rest_formats}
    return dict(sorted(formats.items(), key=lambda item: -len(item[0])))


def format_for(formats: dict[str, ErrorFormat], path: str) -> ErrorFormat:
    for prefix, fmt in formats.items():
        if path.startswith(prefix):
            return fmt
    return graphql_error


class TooLarge(Exception):
    pass


class BodyGuard:
    def __init__(self, app: ASGIApp, settings: Settings, formats: dict[str, ErrorFormat]) -> None:
        self.app = app
        self.settings = settings
        self.formats = error_formats(formats)

    def limit_for(self, path: str) -> int:
        if path.startswith(HOOKS_PREFIX):
            return self.settings.hooks_max_body_bytes
        return self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        error = format_for(self.formats, path)
        refusal: Response | None
        if scope["method"] not in BODY_METHODS:
            refusal = self.check_query(scope, path, error)
            if refusal is None:
                await self.app(scope, receive, send)
            else:
                await refusal(scope, receive, send)
            return
        media = jsonsafe.media_type(HTTPConnection(scope).headers.get("content-type"))
        if path == GRAPHQL_PATH and media != "application/json":
            refusal = error(
                415,
                ErrorCode.VALIDATION_ERROR,
                f"unsupported media type {media or '(none)'!r}: GraphQL requests are POSTed as "
                "application/json",
                {"contentType": media},
            )
            await refusal(scope, receive, send)
            return
        limit = self.limit_for(path)
        try:
            body = await read_body(scope, receive, limit)
        except TooLarge:
            refusal = error(
                413,
                ErrorCode.VALIDATION_ERROR,
                f"request body larger than {limit} bytes",
                {"maxBytes": limit},
            )
            await refusal(scope, receive, send)
            return
        if path == GRAPHQL_PATH and not body.strip():
            refusal = error(
                400, ErrorCode.VALIDATION_ERROR, "empty body: a GraphQL request is expected", {}
            )
            await refusal(scope, receive, send)
            return
        if body and jsonsafe.is_json_media_type(media):
            try:
                value = jsonsafe.loads(body, max_depth=self.settings.json_max_depth, max_bytes=None)
            except jsonsafe.JSONRefused as exc:
                refusal = error(
                    400,
                    ErrorCode.VALIDATION_ERROR,
                    f"request body refused: {exc.reason}",
                    {"fields": {"body": exc.problem}},
                )
                await refusal(scope, receive, send)
                return
            scope.setdefault("state", {})["json_body"] = value
            if path == GRAPHQL_PATH and not isinstance(value, dict):
                refusal = error(
                    400,
                    ErrorCode.VALIDATION_ERROR,
                    "a GraphQL request is one JSON object (batched requests are not supported)",
                    {},
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, replay(body, receive), send)

    def check_query(self, scope: Scope, path: str, error: ErrorFormat) -> Response | None:
        """GraphQL over GET: `variables` and `extensions` are JSON in the query string."""
        if path != GRAPHQL_PATH:
            return None
        params = HTTPConnection(scope).query_params
        for name in ("variables", "extensions"):
            raw = params.get(name)
            if not raw:
                continue
            try:
                jsonsafe.loads(
                    raw,
                    max_depth=self.settings.json_max_depth,
                    max_bytes=self.settings.max_body_bytes,
                )
            except jsonsafe.JSONRefused as exc:
                return error(
                    400,
                    ErrorCode.VALIDATION_ERROR,
                    f"{name} refused: {exc.reason}",
                    {"fields": {name: exc.problem}},
                )
        return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = HTTPConnection(scope).headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then whatever the client sends next (its disconnect)."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


class SafeJSONView:
    """Mixed into the GraphQL view: every JSON it decodes itself (WebSocket messages, GET
    variables, request bodies) goes through `flowql.jsonsafe`."""

    json_max_depth: int = jsonsafe.MAX_DEPTH
    json_max_bytes: int = jsonsafe.MAX_BYTES

    def decode_json(self, data: str | bytes) -> object:
        return jsonsafe.loads(data, max_depth=self.json_max_depth, max_bytes=self.json_max_bytes)
