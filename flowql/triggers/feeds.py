"""The data_output agents' feeds (Huginn's DataOutputAgent web requests):
`GET /feeds/{agent id}/{secret}.xml` (RSS 2.0) or `.json`, built from the messages the agent
kept in its memory and its `template`."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowql.agents.control import feed, rss
from flowql.services.feeds import feed_agent
from flowql.services.runtime import Runtime


def feed_routes(runtime: Runtime) -> list[Route]:
    async def serve(request: Request) -> Response:
        secret, _, extension = str(request.path_params["file"]).rpartition(".")
        if extension not in ("xml", "json") or not secret:
            return JSONResponse({"error": "ask for {secret}.xml or {secret}.json"}, 404)
        async with runtime.db.read() as session:
            agent = await feed_agent(session, request.path_params["agent"], secret)
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

    return [Route("/feeds/{agent}/{file}", serve, methods=["GET"])]
