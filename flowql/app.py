"""create_app(settings) -> Starlette: /graphql, /healthz (and the mounts later issues add)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from flowql.auth.principal import ANONYMOUS, Principal
from flowql.auth.secrets_box import SecretBox
from flowql.db import create_database
from flowql.engine.dispatch import InlineDispatcher
from flowql.engine.hooks import hook_routes
from flowql.errors import DomainError
from flowql.resolvers.context import Context
from flowql.schema import build_schema
from flowql.services.auth import authenticate
from flowql.services.runtime import NullDispatcher, Runtime
from flowql.settings import Dispatcher, Settings

logger = logging.getLogger("flowql")


def bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "\x00invalid"  # present but not a bearer credential: refused like a bad token
    return token.strip()


async def principal_for(runtime: Runtime, token: str | None) -> Principal:
    async with runtime.db.read() as session:
        return await authenticate(session, runtime.settings, token)


class FlowqlGraphQL(GraphQL[Context, None]):
    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(build_schema(production=runtime.settings.is_production), **kwargs)
        self.runtime = runtime

    async def get_context(self, request: Any, response: Any) -> Context:
        principal = getattr(request.state, "principal", None) or ANONYMOUS
        return Context(
            runtime=self.runtime, principal=principal, request=request, response=response
        )


class Authenticate:
    """Turns the bearer credential into a Principal on scope state; a bad one is answered 401."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        try:
            principal = await principal_for(self.runtime, bearer_token(conn))
        except DomainError as exc:
            if scope["type"] == "websocket":
                await WebSocket(scope, receive, send).close(code=4401, reason=exc.message)
                return
            body = {
                "data": None,
                "errors": [{"message": exc.message, "extensions": exc.extensions()}],
            }
            response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


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
            Route("/graphql", Authenticate(graphql, runtime), methods=["GET", "POST"]),
            *hook_routes(runtime),
        ],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
