"""REST compatibility mounts: each documented route becomes a GraphQL operation run in process.

`mounts(executor)` gives the app one Starlette Mount per documented family, each with its
`/openapi.json`. The app also asks which paths take an API key in the query string (document
001) and how each mount formats an error (for rate limits and refused credentials).
"""

from __future__ import annotations

from types import ModuleType

from starlette.routing import Mount

from flowql.rest_compat import activeworkflow
from flowql.rest_compat.base import GraphQLExecutor, build_routes
from flowql.rest_compat.errors import ERROR_FORMATS, QUERY_KEY_PATHS
from flowql.rest_compat.openapi import document, openapi_route

FAMILIES: tuple[ModuleType, ...] = (activeworkflow,)


def mounts(executor: GraphQLExecutor) -> list[Mount]:
    result = []
    for family in FAMILIES:
        spec = document(
            family.TITLE, family.DESCRIPTION, family.PREFIX, family.ENDPOINTS, family.ERROR
        )
        routes = [*build_routes(family.ENDPOINTS, executor, family.FORMAT), openapi_route(spec)]
        result.append(Mount(family.PREFIX, routes=routes))
    return result


__all__ = ["ERROR_FORMATS", "QUERY_KEY_PATHS", "mounts"]
