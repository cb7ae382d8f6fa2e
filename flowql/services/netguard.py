"""Outbound HTTP guard: refuse URLs that reach private, loopback or link-local networks (SSRF).

Used wherever flowql calls a URL a user typed (integration tests, the http_request agent,
outgoing webhooks). `allow_private_networks` turns the address check off (development, tests).

Two layers: `check_public_url` refuses a URL early with a field error (before any request), and
`guarded_client` makes the connection itself safe. Its transport resolves each host once,
checks every address it got, and connects to a checked address, so a name that answers a public
address to the check and 127.0.0.1 to the connection (DNS rebinding) cannot reach the inside.
TLS still verifies the certificate for the name (SNI and Host stay the name), and since each
hop of a redirect opens its own connection, every hop is checked the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpcore
import httpx

from flowql.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT = 10.0
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def check_url_shape(url: str, field: str = "url", max_length: int = 2000) -> SplitResult:
    """An absolute http(s) URL with a host; no network access."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed.one(field, "must not be empty")
    if len(url) > max_length:
        raise ValidationFailed.one(field, f"must be at most {max_length} characters")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValidationFailed.one(field, "not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationFailed.one(field, "must be an http or https URL")
    if not parts.hostname:
        raise ValidationFailed.one(field, "must name a host")
    return parts


def is_public_address(address: IPAddress) -> bool:
    """False for private, loopback, link-local, reserved, multicast and unspecified addresses."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(embedded):
            return False
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or not address.is_global
    )


def parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (one DNS lookup); OSError when it resolves to none."""
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT
        )
    except (TimeoutError, UnicodeError) as exc:
        raise OSError(f"host {host!r} cannot be resolved") from exc
    found = [parse_address(str(info[4][0])) for info in infos]
    addresses = list(dict.fromkeys(a for a in found if a is not None))
    if not addresses:
        raise OSError(f"host {host!r} cannot be resolved")
    return addresses


def first_non_public(addresses: Iterable[IPAddress]) -> IPAddress | None:
    return next((a for a in addresses if not is_public_address(a)), None)


async def resolve_public(url: str, allow_private: bool, field: str = "url") -> list[IPAddress]:
    """The addresses `url`'s host resolves to, all public (or any, when private is allowed)."""
    parts = check_url_shape(url, field)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except OSError:
        raise ValidationFailed.one(field, f"host {host!r} cannot be resolved") from None
    if not allow_private:
        refused = first_non_public(addresses)
        if refused is not None:
            raise ValidationFailed.one(
                field, f"refused: {host} resolves to a non-public address ({refused})"
            )
    return addresses


async def check_public_url(url: str, allow_private: bool, field: str = "url") -> None:
    """Raise ValidationFailed on `field` unless `url` is http(s) and every address is public."""
    if allow_private:
        check_url_shape(url, field)
        return
    await resolve_public(url, allow_private, field)


# -- connections -------------------------------------------------------------------------------


class RefusedAddress(httpcore.ConnectError):
    """The host resolved to a non-public address (httpx raises it as httpx.ConnectError)."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer with one lookup per connection: the addresses it checked are
    the addresses it connects to. httpcore still starts TLS with the URL's host name."""

    def __init__(self, allow_private: Callable[[], bool]) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        if not self.allow_private():
            refused = first_non_public(addresses)
            if refused is not None:
                raise RefusedAddress(
                    f"refused: {host} resolves to a non-public address ({refused})"
                )
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("refused: unix sockets are not an outbound destination")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a `GuardedBackend`; environment proxies are never used (a proxy
    would resolve the name itself, after the check)."""

    def __init__(
        self,
        allow_private: Callable[[], bool],
        limits: httpx.Limits = DEFAULT_LIMITS,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(trust_env=False, limits=limits)
        # The pool AsyncHTTPTransport builds for a direct connection, on the guarded backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private),
        )


def guarded_client(
    allow_private: bool | Callable[[], bool],
    *,
    limits: httpx.Limits = DEFAULT_LIMITS,
    verify: ssl.SSLContext | bool = True,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An httpx client for URLs users typed: every connection, redirects included, goes to an
    address checked by `is_public_address` (unless private networks are allowed; a callable is
    asked at each connection, so a settings change applies at once)."""
    allowed = allow_private if callable(allow_private) else (lambda: allow_private)
    kwargs.setdefault("follow_redirects", False)
    return httpx.AsyncClient(
        transport=GuardedTransport(allowed, limits, verify), trust_env=False, **kwargs
    )
