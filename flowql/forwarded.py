"""Who is calling, behind reverse proxies: forwarded headers are believed only from trusted ones.

A header such as X-Forwarded-For is written by whoever sends the request, so it says something
only when the peer is a proxy we run (FLOWQL_TRUSTED_PROXIES). Each such proxy appends the
address it received the request from; reading the chain from the right, the first address that
is not one of our proxies is the client. Anything further left was written by the client and
is ignored. Headers, in order of preference: X-Forwarded-For, Forwarded (RFC 7239), X-Real-IP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`10.0.0.1, 10.1.0.0/16, fd00::/8` -> networks; ValueError names a bad entry."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`, quoted."""
    value = text.strip().strip('"').strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    def __init__(self, networks: Sequence[IPNetwork]) -> None:
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def client(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The client's address when `peer` is a trusted proxy that forwarded one, else None."""
        current = parse_address(peer)
        if current not in self:
            return None
        chain = forwarded_chain(headers)
        for entry in reversed(chain):
            address = parse_address(entry)
            if address is None:
                break  # a hop we cannot read: believe nothing further left
            current = address
            if address not in self:
                break
        return None if not chain or current is None else str(current)

    def scheme(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """X-Forwarded-Proto (or Forwarded's proto) from a trusted proxy: http or https."""
        if parse_address(peer) not in self:
            return None
        proto = None
        for name, value in headers:
            if name == b"x-forwarded-proto":
                proto = value.decode("latin-1").split(",")[-1].strip().lower()
            elif name == b"forwarded" and proto is None:
                for element in _forwarded_elements(value.decode("latin-1")):
                    proto = element.get("proto", proto)
        return proto if proto in ("http", "https") else None


def forwarded_chain(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The hops the first present header lists, oldest first (repeated headers joined)."""
    found: dict[bytes, list[str]] = {}
    for name, value in headers:
        if name in (b"x-forwarded-for", b"forwarded", b"x-real-ip"):
            found.setdefault(name, []).append(value.decode("latin-1"))
    if b"x-forwarded-for" in found:
        return [hop.strip() for value in found[b"x-forwarded-for"] for hop in value.split(",")]
    if b"forwarded" in found:
        return [
            element.get("for", "")
            for value in found[b"forwarded"]
            for element in _forwarded_elements(value)
        ]
    if b"x-real-ip" in found:
        return [found[b"x-real-ip"][-1].strip()]
    return []


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """`for=1.2.3.4;proto=https, for="[::1]:80"` -> [{for, proto}, {for}] (names lowercased)."""
    elements = []
    for element in value.split(","):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            name, sep, item = pair.partition("=")
            if sep:
                pairs[name.strip().lower()] = item.strip().strip('"')
        elements.append(pairs)
    return elements
