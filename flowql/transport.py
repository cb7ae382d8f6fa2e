"""Live transports on /graphql: who a WebSocket connection is and until when, the connection_init
timeout on both WebSocket protocols, and HTTP subscription streams that end with their credential.

Close codes (WebSocket):
- 4401 "token expired": the connection's credential expired while it was open; 4401 with the
  reason when it was refused on a periodic re-check (revoked key, disabled account) or lost
  access to a workspace (reconnecting gets the new grants);
- 4403 "Forbidden" (graphql-transport-ws) when connection_init carries no valid credential; the
  legacy graphql-ws protocol answers `connection_error` with the reason, then closes (1011);
- 4408 "Connection initialisation timeout": no connection_init within the setting's seconds;
- 4008 "subscriber too slow: dropped": a feed fell too far behind and the bus dropped it
  (flowql.resolvers.subscriptions tells `Context.on_drop`; `close_when_dropped` closes).
A bad `Authorization` header on the upgrade request is refused before the handshake
(flowql.app.RequirePrincipal).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import jwt
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.streaming import (
    HTTPStreamTransport,
    MultipartSubscriptionTransport,
    SSETransport,
)
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from flowql.auth.principal import Principal
from flowql.auth.tokens import looks_like_jwt
from flowql.errors import DomainError, ErrorCode
from flowql.middleware import bearer_token, principal_for
from flowql.resolvers.context import Context
from flowql.resolvers.subscriptions import SLOW_SUBSCRIBER_REASON
from flowql.schema.subscriptions import Member, feed_groups
from flowql.services.runtime import Runtime
from flowql.settings import Settings

PROTOCOLS = (
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
    GRAPHQL_SSE_PROTOCOL,
)
TOKEN_EXPIRED_CODE = 4401
TOKEN_EXPIRED = "token expired"
INIT_TIMEOUT_CODE = 4408
SLOW_SUBSCRIBER_CLOSE_CODE = 4008
# How long a dropped subscriber's operation may take to deliver its error before the connection
# is closed regardless (a client that stopped reading never takes it).
DROP_GRACE_SECONDS = 10.0


# Young-generation threshold of the collector in a serving process (CPython's default is 700).
SERVING_GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc_for_serving() -> None:
    """Collect young objects far less often in a serving process.

    A feed's fan-out makes many short-lived objects per subscriber while thousands of deliveries
    are in flight; with the default threshold young collections promote them, they die in older
    generations and trigger full collections that walk every open connection's objects. Measured
    (bench/subscriptions.py, 1,000 subscribers): p99 commit->delivery 9.3 s -> 2.2 s, collector
    pauses 25 s -> 1.7 s. See docs/performance.md.
    """
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


def view_options(settings: Settings) -> dict[str, Any]:
    return {
        "subscription_protocols": PROTOCOLS,
        "keep_alive": True,  # graphql-ws "ka" messages
        "keep_alive_interval": settings.ws_keep_alive_interval,
        "connection_init_wait_timeout": timedelta(seconds=settings.ws_connection_init_timeout),
    }


def credential_expiry(token: str | None) -> float | None:
    """When a (verified) JWT bearer stops being valid, in epoch seconds; None for API keys."""
    if not token or not looks_like_jwt(token):
        return None
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) else None


def _init_credential(params: Mapping[str, Any] | None) -> str | None:
    """The bearer token of connection_init's `authorization` (any case), "" if malformed."""
    for key, value in (params or {}).items():
        if key.lower() == "authorization":
            scheme, _, token = str(value).partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    return None


def _reject(message: str, code: str) -> ConnectionRejectionError:
    return ConnectionRejectionError({"message": message, "extensions": {"code": code}})


async def authenticate_connection(runtime: Runtime, context: Context) -> str | None:
    """Set the connection's principal from connection_init (else the upgrade request's header);
    refuse the connection without a valid credential. Returns the credential in force."""
    token = _init_credential(context.connection_params)
    if token is not None:
        try:
            context.principal = await principal_for(runtime, token or "\x00invalid")
        except DomainError as exc:
            raise _reject(exc.message, exc.code.value) from exc
    elif isinstance(context.request, HTTPConnection):
        token = bearer_token(context.request)
    if not context.principal.is_authenticated:
        raise _reject("authentication required", ErrorCode.UNAUTHORIZED.value)
    return token


def _narrower(before: Principal, after: Principal) -> bool:
    return any(
        not privileges <= after.grants.get(ws, frozenset())
        for ws, privileges in before.grants.items()
    )


class CredentialWatch:
    """Closes a WebSocket with 4401 when its credential expires, or when a periodic re-check
    refuses it or finds it grants less than when the connection began. Watches end with their
    connection.

    Re-checks fall on a shared clock (multiples of `ws_revalidate_interval`), and connections
    holding the same credential share one check per tick: thousands of subscribers of one
    dashboard cost one query per interval, not one each."""

    def __init__(self) -> None:
        self._timers: dict[int, asyncio.Task[None]] = {}
        self._checks: dict[tuple[str, int], asyncio.Task[Principal]] = {}

    @contextlib.asynccontextmanager
    async def connection(self, scope: Mapping[str, Any]) -> AsyncIterator[None]:
        try:
            yield
        finally:
            timer = self._timers.pop(id(scope), None)
            if timer is not None:
                timer.cancel()

    async def _check(self, runtime: Runtime, token: str, tick: int, every: float) -> Principal:
        """The credential's principal as of this tick, loaded once for every connection."""
        key = (token, tick)
        task = self._checks.get(key)
        if task is None:
            task = asyncio.ensure_future(principal_for(runtime, token))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._checks[key] = task
            asyncio.get_running_loop().call_later(2 * every, self._checks.pop, key, None)
        return await asyncio.shield(task)

    def watch(self, runtime: Runtime, context: Context, token: str | None) -> None:
        websocket = context.request
        if token is None or not isinstance(websocket, WebSocket):
            return
        expires = credential_expiry(token)
        every = runtime.settings.ws_revalidate_interval
        granted = context.principal

        async def close(reason: str) -> None:
            if websocket.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await websocket.close(code=TOKEN_EXPIRED_CODE, reason=reason)

        async def run() -> None:
            tick = 0
            while True:
                tick = max(tick + 1, math.floor(time.time() / every) + 1)
                left = tick * every - time.time()
                if expires is not None:
                    left = min(left, expires - time.time())
                await asyncio.sleep(max(0.0, left))
                if expires is not None and time.time() >= expires:
                    await close(TOKEN_EXPIRED)
                    return
                try:
                    now = await self._check(runtime, token, tick, every)
                except DomainError as exc:
                    await close(exc.message)
                    return
                if _narrower(granted, now):
                    await close("access changed: reconnect")
                    return

        previous = self._timers.pop(id(websocket.scope), None)
        if previous is not None:
            previous.cancel()
        self._timers[id(websocket.scope)] = asyncio.create_task(run())


_closers: set[asyncio.Task[None]] = set()


async def _close_slow(websocket: WebSocket, operation: asyncio.Task[Any] | None) -> None:
    """Let the operation deliver its SUBSCRIBER_DROPPED error, then close the connection."""
    if operation is not None and not operation.done():
        await asyncio.wait({operation}, timeout=DROP_GRACE_SECONDS)
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code=SLOW_SUBSCRIBER_CLOSE_CODE, reason=SLOW_SUBSCRIBER_REASON)


def close_when_dropped(context: Context) -> Context:
    """A WebSocket connection's feeds close it (4008) when the bus drops their subscriber."""
    websocket = context.request
    if isinstance(websocket, WebSocket):

        def dropped(operation: asyncio.Task[Any] | None) -> None:
            task = asyncio.get_running_loop().create_task(_close_slow(websocket, operation))
            _closers.add(task)
            task.add_done_callback(_closers.discard)

        context.on_drop = dropped
    return context


def _member(
    handler: BaseGraphQLTransportWSHandler[Context, None] | BaseGraphQLWSHandler[Context, None],
    head: Callable[[str], str],
    operation_id: str,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> tuple[Member, Callable[[str], Awaitable[None]]] | None:
    """This operation as a member of its feed group (flowql.schema.subscriptions.FeedGroup),
    with the connection's text sender; None when it runs as a Strawberry operation of its own
    (not a grouped feed, or not on a Starlette WebSocket)."""
    websocket = getattr(handler.websocket, "ws", None)
    context = handler.context
    if not isinstance(websocket, WebSocket) or not isinstance(context, Context):
        return None
    view: Any = handler.view

    def encode(data: object) -> str:
        encoded = view.encode_json(data)
        return encoded.decode() if isinstance(encoded, bytes) else str(encoded)

    on_drop = None
    if context.on_drop is not None:
        told, task = context.on_drop, asyncio.current_task()

        def on_drop() -> None:
            told(task)

    member = feed_groups(handler.schema).join(
        handler.schema,
        context,
        query,
        variables,
        operation_name,
        head(encode(operation_id)),
        on_drop,
        encode,
    )
    return None if member is None else (member, websocket.send_text)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws whose grouped feeds (processEvents, messageCreated) are written by
    their group: each `next` frame is the group's encoded payload behind this operation's id."""

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        joined = _member(
            self,
            lambda op_id: '{"id":' + op_id + ',"type":"next","payload":',
            operation.id,
            operation.query,
            operation.variables,
            operation.operation_name,
        )
        if joined is None:
            await super().run_operation(operation)
            return
        member, send = joined
        try:
            refused = await member.run(send)
            if refused is not None:
                await operation.send_initial_errors(refused.errors or [])
                return
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except WebSocketDisconnect:
            pass
        finally:
            member.leave()


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """graphql-ws with the connection_init timeout Strawberry gives only graphql-transport-ws,
    and grouped feeds written by their group (`data` frames, as TransportWSHandler's)."""

    async def handle(self) -> None:
        timer = asyncio.create_task(self._init_timeout())
        try:
            await super().handle()
        finally:
            timer.cancel()

    async def _init_timeout(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self.connection_acknowledged:
            with contextlib.suppress(Exception):
                await self.websocket.close(INIT_TIMEOUT_CODE, "Connection initialisation timeout")

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        joined = _member(
            self,
            lambda op_id: '{"type":"data","id":' + op_id + ',"payload":',
            operation_id,
            query,
            variables,
            operation_name,
        )
        if joined is None:
            await super().handle_async_results(operation_id, query, operation_name, variables)
            return
        member, send = joined
        try:
            refused = await member.run(send)
            if refused is not None and refused.errors:
                error = refused.errors[0].formatted
                await self.send_message({"type": "error", "id": operation_id, "payload": error})
                return
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:  # stopped: as Strawberry's own operations do
            with contextlib.suppress(Exception):
                await self.send_message({"type": "complete", "id": operation_id})
        except WebSocketDisconnect:
            pass
        finally:
            member.leave()
            self.tasks.pop(operation_id, None)


def until_expiry(
    request: Any, stream: Callable[[], AsyncIterator[str]], headers: Mapping[str, str]
) -> Callable[[], AsyncIterator[str]]:
    """An HTTP subscription stream that ends with an UNAUTHORIZED error when its bearer expires."""
    expires = (
        credential_expiry(bearer_token(request)) if isinstance(request, HTTPConnection) else None
    )
    content_type = headers.get("Content-Type", "")
    transport: HTTPStreamTransport
    if content_type.startswith("text/event-stream"):
        transport = SSETransport()
    elif "subscriptionSpec" in content_type:
        transport = MultipartSubscriptionTransport()
    else:
        return stream  # incremental delivery of a query: short-lived
    if expires is None:
        return stream
    deadline = expires

    async def expiring() -> AsyncIterator[str]:
        source = stream()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(
                        anext(source), timeout=max(0.0, deadline - time.time())
                    )
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    error = {"message": TOKEN_EXPIRED, "extensions": {"code": "UNAUTHORIZED"}}
                    yield transport.encode_next({"data": None, "errors": [error]}, json.dumps)
                    yield transport.encode_complete()
                    return
                yield chunk
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    return expiring
