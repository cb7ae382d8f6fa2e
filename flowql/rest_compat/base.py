"""The shape of a compatibility route: method and path -> GraphQL document + variables built from
the request -> a shaper that turns the GraphQL result into the documented response.

Routes run their operation against the one schema in process (no HTTP hop) with the caller's
principal, so permissions, validation and dataloaders are GraphQL's. This package imports no
models, services or database: it speaks GraphQL only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from flowql import jsonsafe
from flowql.auth.principal import ANONYMOUS, Principal
from flowql.errors import DomainError, ErrorCode, ValidationFailed
from flowql.rest_compat.errors import ErrorFormat, status_for

logger = logging.getLogger("flowql.rest_compat")


class ExecutionResultLike(Protocol):
    data: dict[str, Any] | None
    errors: list[Any] | None


class GraphQLExecutor(Protocol):
    """Runs a GraphQL operation in process as the request's caller (provided by the app)."""

    async def execute(
        self, document: str, variables: dict[str, Any], request: Request
    ) -> ExecutionResultLike: ...


class OperationFailed(Exception):
    """A GraphQL operation answered with an error; carries its stable code and details."""

    def __init__(self, code: ErrorCode, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        return status_for(self.code)


@dataclass
class Call:
    """One REST request on its way through a route."""

    request: Request
    executor: GraphQLExecutor
    _body: Any = field(default=None)
    # GraphQL operations this request has run (a route addressing one object runs one).
    operations: int = 0

    @property
    def principal(self) -> Principal:
        principal: Principal = getattr(self.request.state, "principal", ANONYMOUS)
        return principal

    @property
    def path(self) -> Mapping[str, Any]:
        return self.request.path_params

    @property
    def query(self) -> Any:
        return self.request.query_params

    @property
    def body(self) -> Any:
        return self._body

    async def run(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        self.operations += 1
        result = await self.executor.execute(document, variables or {}, self.request)
        if result.errors:
            error = first_error(document, result.errors)
            extensions = dict(getattr(error, "extensions", None) or {})
            code_name = extensions.pop("code", ErrorCode.INTERNAL_ERROR.value)
            code = (
                ErrorCode(code_name)
                if code_name in ErrorCode.__members__
                else ErrorCode.INTERNAL_ERROR
            )
            raise OperationFailed(code, getattr(error, "message", str(error)), extensions)
        return result.data or {}


def first_error(document: str, errors: list[Any]) -> Any:
    """The error of the root field asked first: root fields of one query run concurrently, so
    the order of `errors` is not the order of the document (an object looked up beside its list
    must answer for its absence, as when it was looked up on its own)."""

    def rank(error: Any) -> int:
        path = getattr(error, "path", None) or []
        found = document.find(f" {path[0]}(") if path else -1
        return found if found >= 0 else len(document)

    return min(errors, key=rank)


# Called after each REST request with the request and how many GraphQL operations it ran.
OperationListener = Callable[[Request, int], None]
OPERATION_LISTENERS: list[OperationListener] = []


Shaper = Callable[[Call, dict[str, Any]], Response | Awaitable[Response]]
Variables = Callable[[Call], dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    """A documented route. The common case is declared: `document` (one GraphQL operation),
    `variables` from the request, `shape` from the data to the documented answer. A route whose
    answer takes more than that (several pages, a choice between operations) names a `handler`."""

    method: str
    path: str
    summary: str
    document: str | None = None
    variables: Variables | None = None
    shape: Shaper | None = None
    handler: Callable[[Call], Awaitable[Response]] | None = None
    # Puts a failed operation's error in the family's words (field names, kinds) before it is
    # formatted.
    failure: Callable[[OperationFailed], None] | None = None
    public: bool = False
    json_body: bool = False
    openapi: dict[str, Any] = field(default_factory=dict)
    # Sent with every response of the route, e.g. `Deprecation` and `Sunset` (document 004).
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def media_types(self) -> tuple[str, ...]:
        """What a body sent to this route may be: its documented request types, else JSON."""
        content = self.openapi.get("requestBody", {}).get("content") or {}
        return tuple(content) or (JSON_TYPE,)


JSON_TYPE = "application/json"
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


async def parse_json_body(request: Request) -> Any:
    """The request's JSON body (None when empty), parsed once by flowql.guards.BodyGuard, else
    here with the same parser; anything it refuses is a VALIDATION_ERROR on `body`."""
    state = request.scope.get("state", {})
    if "json_body" in state:
        return state["json_body"]
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return jsonsafe.loads(raw)
    except jsonsafe.JSONRefused as exc:
        raise ValidationFailed(
            {"body": exc.problem}, f"request body refused: {exc.reason}"
        ) from None


def accepts(declared: tuple[str, ...], media: str) -> bool:
    return any(
        (kind == JSON_TYPE and jsonsafe.is_json_media_type(media))
        or (kind in YAML_TYPES and media in YAML_TYPES)
        or kind == media
        for kind in declared
    )


def unsupported_media_type(request: Request, endpoint: Endpoint) -> str | None:
    """Why the request's body may not go to this route (None when it may). A body must come
    with one of the route's media types: `text/plain` and forms, what a browser sends
    cross-site without asking first, never reach a JSON route. No body, no constraint
    (`curl -X POST` sends none)."""
    if request.method not in BODY_METHODS:
        return None
    headers = request.headers
    if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
        return None
    media = jsonsafe.media_type(headers.get("content-type"))
    if accepts(endpoint.media_types, media):
        return None
    return f"unsupported media type {media or '(none)'!r}: this route takes " + ", ".join(
        endpoint.media_types
    )


def build_routes(
    endpoints: list[Endpoint], executor: GraphQLExecutor, error_format: ErrorFormat
) -> list[BaseRoute]:
    def make(endpoint: Endpoint) -> Route:
        async def handle(request: Request) -> Response:
            call = Call(request=request, executor=executor)
            response = await respond(call)
            response.headers.update(endpoint.headers)
            for listener in OPERATION_LISTENERS:
                listener(request, call.operations)
            return response

        async def respond(call: Call) -> Response:
            request = call.request
            auth_error: DomainError | None = getattr(request.state, "auth_error", None)
            if not endpoint.public and auth_error is not None:
                return error_format(401, auth_error.code, auth_error.message, auth_error.details)
            if not endpoint.public and not call.principal.is_authenticated:
                return error_format(401, ErrorCode.UNAUTHORIZED, "authentication required", {})
            unsupported = unsupported_media_type(request, endpoint)
            if unsupported is not None:
                return error_format(415, ErrorCode.VALIDATION_ERROR, unsupported, {})
            try:
                if endpoint.json_body:
                    call._body = await parse_json_body(request)
                if endpoint.handler is not None:
                    return await endpoint.handler(call)
                assert endpoint.document is not None and endpoint.shape is not None
                variables = endpoint.variables(call) if endpoint.variables else {}
                data = await call.run(endpoint.document, variables)
                shaped = endpoint.shape(call, data)
                return shaped if isinstance(shaped, Response) else await shaped
            except OperationFailed as failed:
                if endpoint.failure is not None:
                    endpoint.failure(failed)
                return error_format(failed.status, failed.code, failed.message, failed.details)
            except DomainError as exc:
                status = status_for(exc.code)
                return error_format(status, exc.code, exc.message, exc.details)
            except Exception:
                # Never a bare 500: an unexpected failure answers in the family's format.
                logger.exception("unexpected error in %s %s", request.method, request.url)
                return error_format(500, ErrorCode.INTERNAL_ERROR, "Internal server error", {})

        return Route(endpoint.path, handle, methods=[endpoint.method], name=endpoint.summary)

    return [make(e) for e in endpoints]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def int_param(
    value: str | None,
    name: str,
    default: int | None = None,
    minimum: int = 0,
    maximum: int | None = None,
) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValidationFailed.one(name, "must be an integer") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ValidationFailed.one(name, f"must be {bound}")
    return number
