"""The data_output agents' feeds (Huginn's DataOutputAgent web requests):
`GET /feeds/{agent id}/{secret}.xml` (RSS 2.0) or `.json`, built from the messages the agent
kept in its memory and its `template`.

The liquid_output agents' pages (Huginn's LiquidOutputAgent web requests):
`/liquid/{agent id}/{secret}` (optionally with an extension, `.json` asking for a JSON error),
any method: the agent's `content` rendered over what it kept, with its `mime_type` (text/html
by default) and `response_headers`; a wrong secret is 401 "Not Authorized", as in Huginn."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from flowql.agents.base import StepFailed
from flowql.agents.control import feed, rss
from flowql.agents.templating import TemplateError, render
from flowql.agents.text import render_liquid_output
from flowql.services.feeds import feed_agent, liquid_page
from flowql.services.runtime import Runtime


def feed_routes(runtime: Runtime) -> list[Route]:
    async def serve(request: Request) -> Response:
        secret, _, extension = str(request.path_params["file"]).rpartition(".")
        if extension not in ("xml", "json") or not secret:
            return JSONResponse({"error": "ask for {secret}.xml or {secret}.json"}, 404)
        async with runtime.db.read() as session:
            agent = await feed_agent(session, runtime.box, request.path_params["agent"], secret)
        if agent is None:
            return JSONResponse({"error": "no feed at this address"}, 404)
        options = dict(agent.options)
        data = feed(options, dict(agent.memory or {}), str(request.url))
        headers = {str(k): str(v) for k, v in (options.get("response_headers") or {}).items()}
        if extension == "json":
            body = json.dumps(data, ensure_ascii=False, default=str)
            return Response(body, headers=headers, media_type="application/json")
        media = str(options.get("rss_content_type") or "application/rss+xml")
        return Response(rss(options, data, str(request.url)), headers=headers, media_type=media)

    async def page(request: Request) -> Response:
        secret, dot, extension = str(request.path_params["file"]).rpartition(".")
        if not dot:
            secret, extension = extension, ""
        async with runtime.db.read() as session:
            found = await liquid_page(session, runtime.box, request.path_params["agent"], secret)
        if found is None:
            return JSONResponse({"error": "no page at this address"}, 404)
        if not found.authorized:
            if extension == "json" or "json" in request.headers.get("accept", ""):
                return JSONResponse({"error": "Not Authorized"}, 401)
            return PlainTextResponse("Not Authorized", 401)
        try:
            rendered = render_liquid_output(found.options, dict(found.agent.memory or {}))
            headers = render(rendered["response_headers"], {})
        except (StepFailed, TemplateError) as exc:
            return JSONResponse({"error": str(exc)}, 422)
        return Response(
            rendered["content"],
            headers=_safe_headers(headers),
            media_type=str(rendered["mime_type"]),
        )

    return [
        Route("/feeds/{agent}/{file}", serve, methods=["GET"]),
        Route("/liquid/{agent}/{file}", page, methods=["GET", "POST", "PUT", "DELETE"]),
    ]


def _safe_headers(headers: Any) -> dict[str, str]:
    """The agent's response headers that can be sent (a name and value with no line break)."""
    if not isinstance(headers, dict):
        return {}
    return {
        str(name): str(value)
        for name, value in headers.items()
        if str(name).strip()
        and not any(c in str(name) + str(value) for c in "\r\n\x00")
        and ":" not in str(name)
        and _latin1(str(name) + str(value))
    }


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
