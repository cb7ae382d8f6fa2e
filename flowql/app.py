"""create_app(settings) -> Starlette: /graphql, /healthz, /readyz (and the mounts later issues add)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from flowql import console, graphiql, logs, transport
from flowql.auth.principal import ANONYMOUS
from flowql.auth.ratelimit import RateLimiter
from flowql.auth.secrets_box import SecretBox
from flowql.db import create_database
from flowql.engine import scenario_bridge
from flowql.engine.dispatch import InlineDispatcher
from flowql.engine.queue import ProcrastinateDispatcher
from flowql.engine.worker import WorkerService
from flowql.errors import DomainError
from flowql.events.postgres import PostgresBus, make_bus
from flowql.forwarded import TrustedProxies
from flowql.guards import BodyGuard, SafeJSONView
from flowql.health import readyz_response
from flowql.middleware import ClientAddress, Identify, RateLimit, graphql_error
from flowql.persisted_queries import PersistedQueries, PersistedQueryError
from flowql.resolvers.context import Context
from flowql.rest_compat import ERROR_FORMATS, QUERY_KEY_PATHS
from flowql.rest_compat import mounts as rest_mounts
from flowql.schema import build_schema
from flowql.schema.documents import with_fast_leaves
from flowql.services.runtime import NullDispatcher, Runtime
from flowql.settings import Dispatcher, Settings
from flowql.triggers.feeds import feed_routes
from flowql.triggers.forms import form_routes
from flowql.triggers.hooks import hook_routes

logger = logging.getLogger("flowql")


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """GraphQL-over-WebSocket messages go out as text frames, as both protocols require.

    Strawberry sends `encode_json`'s bytes (orjson's) as binary frames, which browsers hand to
    the client as a Blob: GraphiQL's graphql-ws client cannot parse them and closes the socket.
    """

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            encoded = self.view.encode_json(message)
            text = encoded.decode() if isinstance(encoded, bytes) else encoded
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class FlowqlGraphQL(SafeJSONView, GraphQL[Context, None]):
    graphql_ws_handler_class = transport.LegacyWSHandler
    graphql_transport_ws_handler_class = transport.TransportWSHandler
    websocket_adapter_class = TextWebSocketAdapter

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        options = {**transport.view_options(runtime.settings), **kwargs}
        schema = build_schema(production=runtime.settings.is_production)
        # Plain leaf fields read in a tight loop (flowql.schema.documents.FastLeaves).
        schema.execution_context_class = with_fast_leaves(schema.execution_context_class)
        super().__init__(schema, **options)
        self.runtime = runtime
        self.credentials = transport.CredentialWatch()
        self.persisted_queries = PersistedQueries()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.credentials.connection(scope):
            await super().__call__(scope, receive, send)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)  # decoding stays SafeJSONView's (flowql.jsonsafe)

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        try:
            request_data = self.persisted_queries.resolve(request_data)
        except PersistedQueryError as exc:
            error = GraphQLError(exc.message, extensions=exc.as_error()["extensions"])
            return ExecutionResult(data=None, errors=[error])
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        token = await transport.authenticate_connection(self.runtime, context)
        self.credentials.watch(self.runtime, context, token)
        return UnsetType()

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql.page(self.runtime.settings))

    async def create_streaming_response(
        self,
        request: Request | WebSocket,
        stream: Callable[[], AsyncIterator[str]],
        sub_response: Response,
        headers: Mapping[str, str],
    ) -> Response:
        stream = transport.until_expiry(request, stream, headers)
        return await super().create_streaming_response(request, stream, sub_response, headers)

    async def get_context(self, request: Any, response: Any) -> Context:
        principal = getattr(request.state, "principal", None) or ANONYMOUS
        context = Context(
            runtime=self.runtime, principal=principal, request=request, response=response
        )
        return transport.close_when_dropped(context)


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
    db = create_database(settings)
    return Runtime(
        settings=settings,
        db=db,
        box=SecretBox(settings.encryption_keys),
        bus=make_bus(settings, db),
    )


def create_app(
    settings: Settings, runtime: Runtime | None = None, *, run_worker: bool = True
) -> Starlette:
    runtime = runtime or build_runtime(settings)
    graphql = FlowqlGraphQL(runtime, graphql_ide="graphiql")
    logs.install()
    graphql.json_max_depth = runtime.settings.json_max_depth
    graphql.json_max_bytes = runtime.settings.max_body_bytes

    workers: list[WorkerService] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logs.install()  # again: the server configured its logging after create_app
        dispatcher = None
        if isinstance(runtime.bus, PostgresBus):
            await runtime.bus.start()
        if run_worker and runtime.settings.dispatcher is Dispatcher.INLINE:
            dispatcher = InlineDispatcher(runtime)
            runtime.dispatcher = dispatcher
            await dispatcher.start()
        elif runtime.settings.dispatcher is Dispatcher.PROCRASTINATE:
            # API replicas only queue jobs; without --no-worker this server also runs one.
            runtime.dispatcher = ProcrastinateDispatcher(runtime)
            scenario_bridge.install(runtime)  # actions taken here start notified workflows
            if run_worker:
                workers.append(WorkerService(runtime, runtime.settings.max_concurrent_processes))
                await workers[0].start()
        try:
            yield
        finally:
            if dispatcher is not None:
                await dispatcher.stop()
                runtime.dispatcher = NullDispatcher()
            for worker in workers:
                await worker.stop()
            workers.clear()
            if isinstance(runtime.bus, PostgresBus):
                await runtime.bus.stop()
            await runtime.db.dispose()

    async def readyz(request: Request) -> Response:
        return await readyz_response(runtime, workers[0] if workers else None)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route(
                "/graphql",
                RequirePrincipal(graphiql.Gate(graphql, runtime.settings)),
                methods=["GET", "POST"],
            ),
            WebSocketRoute("/graphql", RequirePrincipal(graphql)),
            *hook_routes(runtime),
            *feed_routes(runtime),
            *form_routes(runtime),
            *graphiql.routes(runtime.settings),
            *rest_mounts(SchemaExecutor(graphql)),
            *console.routes(),
        ],
        middleware=[
            Middleware(
                ClientAddress, trusted=TrustedProxies(runtime.settings.trusted_proxy_networks)
            ),
            Middleware(Identify, runtime=runtime, query_key_paths=QUERY_KEY_PATHS),
            Middleware(
                RateLimit,
                limiter=RateLimiter(runtime.settings.redis_url),
                formats=ERROR_FORMATS,
                settings=runtime.settings,
            ),
            Middleware(BodyGuard, settings=runtime.settings, formats=ERROR_FORMATS),
        ],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
