"""Cross-cutting HTTP concerns for every mount: the caller's address (ClientAddress), who is
calling (Identify) and per-plan rate limits (RateLimit). Each mount turns a refusal into its own
error format (see `ErrorFormat`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlmodel import col, select
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowql.auth.principal import ANONYMOUS, Principal
from flowql.auth.ratelimit import ANONYMOUS_PLAN, UNLIMITED, RateLimiter, client_key
from flowql.errors import DomainError, ErrorCode
from flowql.forwarded import TrustedProxies
from flowql.models import Workflow, Workspace
from flowql.services.auth import authenticate, authenticate_cached
from flowql.services.runtime import Runtime
from flowql.settings import Settings

UNLIMITED_PATHS = ("/healthz", "/readyz", "/console/")  # /console/: the console's static files
# Document 004's API: its X-RateLimit-* headers are sent even to callers without a plan.
REPORTED_PATHS = ("/v1/",)

ErrorFormat = Callable[[int, ErrorCode, str, dict[str, Any]], Response]
"""How a mount answers a refusal: (status, code, message, details) -> its own response body.
Each edge (rest_compat's families, `/hooks`, GraphQL) provides one."""


def bearer_token(conn: HTTPConnection, query_key_paths: tuple[str, ...] = ()) -> str | None:
    header = conn.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "\x00invalid"  # present but not a bearer credential: refused like a bad token
        return token.strip()
    if conn.url.path.startswith(query_key_paths):
        return conn.query_params.get("api_key") or None
    return None


async def principal_for(runtime: Runtime, token: str | None, cached: bool = False) -> Principal:
    """The credential's principal, read in one statement; with `cached`, from the short-lived
    per-credential cache when it holds one (flowql.auth.cache says what ends an entry).
    HTTP requests use the cache; WebSocket connections and their periodic re-checks read
    afresh (a re-check is the bound on a change made by another process)."""
    if cached:
        return await authenticate_cached(runtime.db, runtime.settings, token)
    async with runtime.db.read() as session:
        return await authenticate(session, runtime.settings, token)


def graphql_error(status: int, code: ErrorCode, message: str, details: dict[str, Any]) -> Response:
    body = {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": code.value, **details}}],
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return JSONResponse(body, status_code=status, headers=headers)


class ClientAddress:
    """Sets the scope's client (and scheme) from forwarded headers when, and only when, the peer
    is a trusted proxy (FLOWQL_TRUSTED_PROXIES); everything after it (rate limits, hook records)
    reads scope["client"]. Servers must not rewrite it first: `flowql serve` turns uvicorn's
    own proxy_headers off, which would otherwise believe any loopback peer."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if self.trusted and scope["type"] in ("http", "websocket") and peer:
            client = self.trusted.client(peer[0], scope["headers"])
            if client is not None:
                scope["client"] = (client, 0)
            scheme = self.trusted.scheme(peer[0], scope["headers"])
            if scheme is not None:
                scope["scheme"] = (
                    scheme.replace("http", "ws", 1) if scope["type"] == "websocket" else scheme
                )
        await self.app(scope, receive, send)


HOOKS = "/hooks/"
HOOK_PLAN_TTL = 30.0  # seconds a hook's workspace plan is cached (a new plan applies within it)


class HookPlans:
    """`/hooks/{workflow}/…` callers carry no credential: their requests count against the
    hook's workspace and its plan (none: unlimited), looked up once per HOOK_PLAN_TTL."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.cache: dict[str, tuple[float, tuple[uuid.UUID, str] | None]] = {}

    async def of(self, path: str) -> tuple[uuid.UUID, str] | None:
        ref = path[len(HOOKS) :].split("/", 1)[0]
        now = time.monotonic()
        cached = self.cache.get(ref)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            condition = col(Workflow.id) == uuid.UUID(ref)
        except ValueError:
            if not ref.isdigit() or len(ref) > 18:
                return None
            condition = col(Workflow.number) == int(ref)
        async with self.runtime.db.read() as session:
            row = (
                await session.exec(
                    select(Workspace.id, Workspace.plan)
                    .join(Workflow, col(Workflow.workspace_id) == col(Workspace.id))
                    .where(condition)
                )
            ).first()
        found = (row[0], str(row[1])) if row is not None else None
        if len(self.cache) > 10_000:
            self.cache.clear()
        self.cache[ref] = (now + HOOK_PLAN_TTL, found)
        return found


class Identify:
    """Authenticates the bearer (or a mount's query-string key) once per request: the principal,
    or the reason it was refused, is left on scope state for the mount to act on."""

    def __init__(
        self, app: ASGIApp, runtime: Runtime, query_key_paths: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.query_key_paths = query_key_paths
        self.hook_plans = HookPlans(runtime)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not scope["path"].startswith(UNLIMITED_PATHS):
            state = scope.setdefault("state", {})
            try:
                token = bearer_token(HTTPConnection(scope), self.query_key_paths)
                state["principal"] = await principal_for(
                    self.runtime, token, cached=scope["type"] == "http"
                )
            except DomainError as exc:
                state["principal"] = ANONYMOUS
                state["auth_error"] = exc
            if scope["path"].startswith(HOOKS) and state["principal"] is ANONYMOUS:
                state["hook_plan"] = await self.hook_plans.of(scope["path"])
        await self.app(scope, receive, send)


class RateLimit:
    """Counts every HTTP request against the caller's plan; adds X-RateLimit-* headers; 429 past it."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        formats: dict[str, ErrorFormat],
        settings: Settings,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.formats = formats
        self.settings = settings

    def format_for(self, path: str) -> ErrorFormat:
        for prefix, fmt in self.formats.items():
            if path.startswith(prefix):
                return fmt
        return graphql_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.settings.rate_limits_enabled
            or scope["type"] != "http"
            or scope["path"].startswith(UNLIMITED_PATHS)
        ):
            await self.app(scope, receive, send)
            return
        principal: Principal = scope.get("state", {}).get("principal", ANONYMOUS)
        key = str(principal.api_key_id or principal.process_id or principal.user_id or "")
        plan = principal.plan
        hook: tuple[uuid.UUID, str] | None = scope.get("state", {}).get("hook_plan")
        if not key and hook is not None:
            key, plan = f"hooks:{hook[0]}", hook[1]  # the hook's workspace and its plan
        elif not key:
            client = scope.get("client")
            key = client_key(client[0] if client else None)
            plan = ANONYMOUS_PLAN  # against guessing, whatever a workspace's plan
        if plan == UNLIMITED:
            if not scope["path"].startswith(REPORTED_PATHS):
                await self.app(scope, receive, send)
                return
            decision = await self.limiter.count(key)
        else:
            decision = await self.limiter.hit(key, plan)
        headers = decision.headers()
        if not decision.allowed:
            response = self.format_for(scope["path"])(
                429,
                ErrorCode.RATE_LIMITED,
                "Too many requests: rate limit exceeded",
                {"retryAfter": decision.retry_after},
            )
            response.headers.update(headers)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
