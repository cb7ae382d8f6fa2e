"""REST compatibility mounts: each documented route becomes a GraphQL operation run in process.

`mounts(executor)` gives the app one Starlette Mount per documented family, each with its
`/openapi.json`. The app also asks which paths take an API key in the query string (document
001) and how each mount formats an error (for rate limits and refused credentials).
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route

from flowql.errors import ErrorCode
from flowql.rest_compat import activeworkflow, letsflow, platform_v1, wayscript
from flowql.rest_compat.base import GraphQLExecutor, build_routes
from flowql.rest_compat.errors import ErrorFormat
from flowql.rest_compat.openapi import document, openapi_route

R = TypeVar("R", Mount, Route)
FAMILIES: tuple[ModuleType, ...] = (activeworkflow, wayscript, platform_v1, letsflow)
# How each mount answers an error (rate limits and refused credentials are answered before a
# route runs, by middleware that asks here).
ERROR_FORMATS: dict[str, ErrorFormat] = {family.PREFIX: family.FORMAT for family in FAMILIES}
QUERY_KEY_PATHS: tuple[str, ...] = wayscript.QUERY_KEY_PATHS


def mounts(executor: GraphQLExecutor) -> list[Mount]:
    result = []
    for family in FAMILIES:
        spec = document(
            family.TITLE, family.DESCRIPTION, family.PREFIX, family.ENDPOINTS, family.ERROR
        )
        routes = [*build_routes(family.ENDPOINTS, executor, family.FORMAT), openapi_route(spec)]
        routes.append(fallback(routes, family.FORMAT))
        result.append(dotall(Mount(family.PREFIX, routes=routes)))
    return result


def fallback(routes: list[BaseRoute], error_format: ErrorFormat) -> Route:
    """Unknown paths and methods answer in the family's own error format, not Starlette's text."""

    async def unmatched(request: Request) -> Response:
        if any(route.matches(request.scope)[0] is Match.PARTIAL for route in routes):
            return error_format(405, ErrorCode.VALIDATION_ERROR, "method not allowed", {})
        return error_format(404, ErrorCode.NOT_FOUND, "not found", {})

    return dotall(
        Route("/{path:path}", unmatched, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    )


def dotall(route: R) -> R:
    """Starlette's `{path:path}` stops at a newline: an encoded one (%0A) in a path must still
    reach the family's own 404, not Starlette's plain-text one."""
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route


__all__ = ["ERROR_FORMATS", "QUERY_KEY_PATHS", "mounts"]
