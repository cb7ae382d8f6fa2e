"""Subscription fixtures: a hand-rolled GraphQL-over-WebSocket client speaking either protocol
(graphql-transport-ws or the legacy graphql-ws) in plain JSON messages, and small helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from flowql.settings import Settings
from tests.conftest import LiveServer

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]

QUICK = [
    {"name": "first", "type": "transform", "options": {"payload": {"step": 1}}},
    {"name": "second", "type": "transform", "sources": ["first"], "options": {"payload": {"n": 2}}},
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "settings(**values): override Settings for this test")


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    marker = request.node.get_closest_marker("settings")
    if marker is None:
        return settings
    return settings.model_copy(update=marker.kwargs)


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/graphql"


class WS:
    """One GraphQL WebSocket connection; `events(id)` yields ("next"|"error"|"complete", payload)."""

    def __init__(self, conn: ClientConnection, protocol: str) -> None:
        self.conn = conn
        self.protocol = protocol

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        server: LiveServer,
        protocol: str,
        token: str | None = None,
        header_token: str | None = None,
        init: bool = True,
        **options: Any,
    ) -> AsyncIterator[WS]:
        headers = {"Authorization": f"Bearer {header_token}"} if header_token else None
        async with connect(
            ws_url(server),
            subprotocols=[Subprotocol(protocol)],
            additional_headers=headers,
            open_timeout=10,
            **options,
        ) as conn:
            client = cls(conn, protocol)
            if init:
                await client.init({"authorization": f"Bearer {token}"} if token else {})
            yield client

    async def send(self, message: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(message))

    async def recv(self, timeout: float = 20) -> dict[str, Any]:
        while True:
            frame = await asyncio.wait_for(self.conn.recv(), timeout)
            # Both protocols send text frames; a browser hands binary ones over as a Blob that
            # graphql-ws (GraphiQL) cannot parse.
            assert isinstance(frame, str), f"binary WebSocket frame: {frame!r:.200}"
            message: dict[str, Any] = json.loads(frame)
            if message["type"] == "ping":
                await self.send({"type": "pong"})
            elif message["type"] not in ("ka", "pong"):
                return message

    async def init(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload})
        ack = await self.recv()
        assert ack["type"] == "connection_ack", ack
        return ack

    async def subscribe(
        self, op_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables or {}}
        await self.send({"id": op_id, "type": kind, "payload": payload})

    async def events(
        self, op_id: str, timeout: float = 20
    ) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        while True:
            message = await self.recv(timeout)
            assert message.get("id") == op_id, message
            kind = {"data": "next", "next": "next"}.get(message["type"], message["type"])
            yield kind, message.get("payload")
            if kind in ("complete", "error"):
                return

    async def collect(
        self,
        op_id: str,
        field: str,
        until: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 20,
    ) -> list[dict[str, Any]]:
        """Items of `field` until the operation completes (or `until(item)` holds)."""
        items: list[dict[str, Any]] = []
        async for kind, payload in self.events(op_id, timeout):
            if kind == "complete":
                break
            assert kind == "next" and payload is not None, (kind, payload)
            assert not payload.get("errors"), payload
            items.append(payload["data"][field])
            if until is not None and until(items[-1]):
                break
        return items

    async def closed(self, timeout: float = 10) -> tuple[int | None, str | None]:
        """Reads until the server closes; returns (code, reason)."""
        return await closed_with(self.conn, timeout)


async def closed_with(conn: ClientConnection, timeout: float = 10) -> tuple[int | None, str | None]:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.wait_for(conn.recv(), timeout)
    return conn.close_code, conn.close_reason


async def wait_dropped(server: LiveServer, count: int, timeout: float = 20) -> None:
    """Until the server's bus has dropped `count` subscribers that are still subscribed."""
    bus: Any = server.runtime.bus
    deadline = asyncio.get_running_loop().time() + timeout
    while bus.dropped_count < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{bus.dropped_count} of {count} dropped after {timeout}s")
        await asyncio.sleep(0.02)


async def wait_subscribers(server: LiveServer, count: int, timeout: float = 20) -> None:
    """Until the server's bus has `count` subscriptions (the subscribe messages have landed)."""
    bus: Any = server.runtime.bus
    deadline = asyncio.get_running_loop().time() + timeout
    while bus.subscriber_count < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{bus.subscriber_count} of {count} subscribers after {timeout}s")
        await asyncio.sleep(0.02)
