"""Outbound HTTP guard: refuse URLs that reach private, loopback or link-local networks (SSRF).

Used wherever flowql calls a URL a user typed (integration tests, the http_request agent,
outgoing webhooks). `allow_private_networks` turns the address check off (development, tests).
The check resolves the host once; a caller that wants to rule out DNS rebinding must connect
to the addresses it was handed back, not resolve the name again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from flowql.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT = 10.0
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


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


async def resolve_public(url: str, allow_private: bool, field: str = "url") -> list[IPAddress]:
    """The addresses `url`'s host resolves to, all public (or any, when private is allowed)."""
    parts = check_url_shape(url, field)
    host = parts.hostname or ""
    literal = parse_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT
            )
        except (OSError, TimeoutError, UnicodeError):
            raise ValidationFailed.one(field, f"host {host!r} cannot be resolved") from None
        found = [parse_address(str(info[4][0])) for info in infos]
        addresses = [a for a in found if a is not None]
        if not addresses:
            raise ValidationFailed.one(field, f"host {host!r} cannot be resolved")
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                raise ValidationFailed.one(
                    field, f"refused: {host} resolves to a non-public address ({address})"
                )
    return addresses


async def check_public_url(url: str, allow_private: bool, field: str = "url") -> None:
    """Raise ValidationFailed on `field` unless `url` is http(s) and every address is public."""
    if allow_private:
        check_url_shape(url, field)
        return
    await resolve_public(url, allow_private, field)
