"""OpenAPI 3.1 for a mount, built from its Endpoint declarations: what is really served."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowql.rest_compat.base import Endpoint

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-z]+))?}")
_TYPES = {"int": {"type": "integer"}, "uuid": {"type": "string", "format": "uuid"}}


# -- schema helpers every family uses ------------------------------------------------------------


def obj(
    properties: dict[str, Any],
    required: list[str] | None = None,
    *,
    optional: tuple[str, ...] = (),
    nullable: bool = False,
) -> dict[str, Any]:
    """An object schema; every property is required unless `required` or `optional` say not."""
    if required is None:
        required = [k for k in properties if k not in optional]
    kind: Any = ["object", "null"] if nullable else "object"
    return {"type": kind, "required": required, "properties": properties}


def query_param(
    name: str, schema: dict[str, Any], description: str | None = None, required: bool = False
) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": required, "schema": schema}
    if description is not None:
        param["description"] = description
    return param


def ok(
    schema: dict[str, Any],
    description: str = "Success",
    status: str = "200",
    also: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A documented JSON answer (`also`: further media types of the same answer)."""
    content = {"application/json": {"schema": schema}, **(also or {})}
    return {status: {"description": description, "content": content}}


def error_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def operation(endpoint: Endpoint, error: dict[str, Any]) -> dict[str, Any]:
    spec = dict(endpoint.openapi)
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _TYPES.get(kind or "", {"type": "string"}),
        }
        for name, kind in _PARAM.findall(endpoint.path)
    ]
    parameters += spec.pop("parameters", [])
    responses: dict[str, Any] = spec.pop("responses", {})
    defaults = {"400": "Invalid request", "404": "Not found", "429": "Rate limited"}
    if not endpoint.public:
        defaults["401"] = "Missing or invalid credentials"
        defaults["403"] = "Not allowed"
    for status, description in defaults.items():
        responses.setdefault(status, {"description": description, **error_schema(error)})
    result: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{endpoint.method}_{endpoint.path}").strip(
            "_"
        ),
        "responses": responses,
        **spec,
    }
    if parameters:
        result["parameters"] = parameters
    if not endpoint.public:
        result["security"] = [{"bearer": []}]
    return result


def document(
    title: str,
    description: str,
    prefix: str,
    endpoints: list[Endpoint],
    error: dict[str, Any],
    security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", endpoint.path)
        paths.setdefault(path, {})[endpoint.method.lower()] = operation(endpoint, error)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0", "description": description},
        "servers": [{"url": prefix}],
        "paths": paths,
        "components": {
            "securitySchemes": security or {"bearer": {"type": "http", "scheme": "bearer"}}
        },
    }


def openapi_route(spec: dict[str, Any]) -> Route:
    async def serve(request: Request) -> Response:
        return JSONResponse(spec)

    return Route("/openapi.json", serve, methods=["GET"])
