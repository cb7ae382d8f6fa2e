"""REST compatibility mounts: each documented route becomes a GraphQL operation run in process.

`mounts(executor)` gives the app one Starlette Mount per documented family, each with its
`/openapi.json`. The app also asks which paths take an API key in the query string (document
001) and how each mount formats an error (for rate limits and refused credentials).
"""

from __future__ import annotations

from types import ModuleType

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route

from flowql.errors import ErrorCode
from flowql.rest_compat import activeworkflow
from flowql.rest_compat.base import GraphQLExecutor, build_routes
from flowql.rest_compat.errors import ERROR_FORMATS, QUERY_KEY_PATHS, ErrorFormat
from flowql.rest_compat.openapi import document, openapi_route

FAMILIES: tuple[ModuleType, ...] = (activeworkflow,)


def mounts(executor: GraphQLExecutor) -> list[Mount]:
    result = []
    for family in FAMILIES:
        spec = document(
            family.TITLE, family.DESCRIPTION, family.PREFIX, family.ENDPOINTS, family.ERROR
        )
        routes = [*build_routes(family.ENDPOINTS, executor, family.FORMAT), openapi_route(spec)]
        routes.append(fallback(routes, family.FORMAT))
        result.append(Mount(family.PREFIX, routes=routes))
    return result


def fallback(routes: list[BaseRoute], error_format: ErrorFormat) -> Route:
    """Unknown paths and methods answer in the family's own error format, not Starlette's text."""

    async def unmatched(request: Request) -> Response:
        if any(route.matches(request.scope)[0] is Match.PARTIAL for route in routes):
            return error_format(405, ErrorCode.VALIDATION_ERROR, "method not allowed", {})
        return error_format(404, ErrorCode.NOT_FOUND, "not found", {})

    return Route("/{path:path}", unmatched, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])


__all__ = ["ERROR_FORMATS", "QUERY_KEY_PATHS", "mounts"]
