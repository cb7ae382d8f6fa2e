"""create_app(settings) -> Starlette: /graphql, /healthz (and the mounts later issues add)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from flowql.auth.principal import ANONYMOUS
from flowql.auth.ratelimit import RateLimiter
from flowql.auth.secrets_box import SecretBox
from flowql.db import create_database
from flowql.engine.dispatch import InlineDispatcher
from flowql.engine.hooks import hook_routes
from flowql.errors import DomainError
from flowql.middleware import Identify, RateLimit, graphql_error
from flowql.resolvers.context import Context
from flowql.rest_compat import ERROR_FORMATS, QUERY_KEY_PATHS
from flowql.rest_compat import mounts as rest_mounts
from flowql.schema import build_schema
from flowql.services.runtime import NullDispatcher, Runtime
from flowql.settings import Dispatcher, Settings

logger = logging.getLogger("flowql")


class FlowqlGraphQL(GraphQL[Context, None]):
    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(build_schema(production=runtime.settings.is_production), **kwargs)
        self.runtime = runtime

    async def get_context(self, request: Any, response: Any) -> Context:
        principal = getattr(request.state, "principal", None) or ANONYMOUS
        return Context(
            runtime=self.runtime, principal=principal, request=request, response=response
        )


class SchemaExecutor:
    """Runs REST compatibility operations against the schema in process, as the caller."""

    def __init__(self, graphql: FlowqlGraphQL) -> None:
        self.graphql = graphql

    async def execute(self, document: str, variables: dict[str, Any], request: Request) -> Any:
        context = await self.graphql.get_context(request, None)
        return await self.graphql.schema.execute(
            document, variable_values=variables, context_value=context
        )


class RequirePrincipal:
    """GraphQL over HTTP and WebSocket: a refused credential is answered 401 (or closes 4401)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error: DomainError | None = scope.get("state", {}).get("auth_error")
        if error is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await WebSocket(scope, receive, send).close(code=4401, reason=error.message)
        else:
            response = graphql_error(401, error.code, error.message, error.details)
            await response(scope, receive, send)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def build_runtime(settings: Settings) -> Runtime:
    settings = settings.with_generated_keys()
    settings.check_startable()
    assert settings.encryption_keys
    return Runtime(
        settings=settings, db=create_database(settings), box=SecretBox(settings.encryption_keys)
    )


def create_app(
    settings: Settings, runtime: Runtime | None = None, *, run_worker: bool = True
) -> Starlette:
    runtime = runtime or build_runtime(settings)
    graphql = FlowqlGraphQL(runtime, graphql_ide="graphiql")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        dispatcher = None
        if run_worker and runtime.settings.dispatcher is Dispatcher.INLINE:
            dispatcher = InlineDispatcher(runtime)
            runtime.dispatcher = dispatcher
            await dispatcher.start()
        try:
            yield
        finally:
            if dispatcher is not None:
                await dispatcher.stop()
                runtime.dispatcher = NullDispatcher()
            await runtime.db.dispose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/graphql", RequirePrincipal(graphql), methods=["GET", "POST"]),
            *hook_routes(runtime),
            *rest_mounts(SchemaExecutor(graphql)),
        ],
        middleware=[
            Middleware(Identify, runtime=runtime, query_key_paths=QUERY_KEY_PATHS),
            Middleware(
                RateLimit,
                limiter=RateLimiter(runtime.settings.redis_url),
                formats=ERROR_FORMATS,
                settings=runtime.settings,
            ),
        ],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
