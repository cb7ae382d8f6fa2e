"""The caller's address: forwarded headers are believed only from FLOWQL_TRUSTED_PROXIES.

A caller that can rotate X-Forwarded-For gets a fresh anonymous rate-limit budget per request,
so the first test sends 61 anonymous requests with 61 different forwarded addresses to
`flowql serve` (run as an operator runs it) and expects the 61st refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import ValidationError

from flowql.app import create_app
from flowql.auth.ratelimit import client_key
from flowql.forwarded import TrustedProxies, parse_networks
from flowql.services.runtime import Runtime
from flowql.settings import Settings
from tests.conftest import free_port
from tests.security.served import flowql_serve

TYPENAME = {"query": "{ __typename }"}


def spoofed(n: int) -> dict[str, str]:
    """Every header a proxy might set, each naming another address."""
    return {
        "X-Forwarded-For": f"203.0.113.{n}",
        "X-Real-IP": f"198.51.100.{n}",
        "Forwarded": f"for=192.0.2.{n};proto=https",
    }


async def test_flowql_serve_ignores_forwarded_headers_from_an_untrusted_peer(
    tmp_path: Path,
) -> None:
    async with flowql_serve(tmp_path) as served:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            answers = [
                await client.post("/graphql", json=TYPENAME, headers=spoofed(n))
                for n in range(1, 62)
            ]
        assert [a.status_code for a in answers] == [200] * 60 + [429]
        await served.wait_for('"POST /graphql HTTP/1.1" 429')
    assert answers[0].headers["x-ratelimit-remaining"] == "59"
    assert "203.0.113." not in served.output  # the access log names the real peer
    assert "127.0.0.1:" in served.output


# -- behind a trusted proxy ------------------------------------------------------------------


@pytest.fixture
async def proxied(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """create_app trusting 127.0.0.1 as its proxy, served as `flowql serve` serves it."""
    settings = runtime.settings
    settings.trusted_proxies = "127.0.0.1, 10.0.0.0/8"
    settings.rate_limits_enabled = True
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, runtime),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    server.should_exit = True
    await task


async def remaining(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    response = await client.post("/graphql", json=TYPENAME, headers=headers)
    assert response.status_code == 200
    return int(response.headers["x-ratelimit-remaining"])


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(
    proxied: httpx.AsyncClient,
) -> None:
    xff = "X-Forwarded-For"
    assert await remaining(proxied, {xff: "198.51.100.7"}) == 59
    assert await remaining(proxied, {xff: "198.51.100.7"}) == 58
    # What the client wrote itself (left of what our proxies appended) changes nothing.
    assert await remaining(proxied, {xff: "6.6.6.6, 198.51.100.7"}) == 57
    assert await remaining(proxied, {xff: "6.6.6.7, 198.51.100.7, 10.1.2.3"}) == 56
    assert await remaining(proxied, {xff: "198.51.100.8"}) == 59
    # RFC 7239 and X-Real-IP; IPv6 clients are counted per /64.
    assert await remaining(proxied, {"Forwarded": 'for="[2001:db8::1]:4711";proto=https'}) == 59
    assert await remaining(proxied, {"Forwarded": "for=192.0.2.1, for=2001:db8::2"}) == 58
    assert await remaining(proxied, {"X-Real-IP": "198.51.100.9"}) == 59
    # No header: the proxy itself.
    assert await remaining(proxied, {}) == 59


# -- the rules, one by one -----------------------------------------------------------------------


TRUSTED = TrustedProxies(parse_networks("127.0.0.1, 10.0.0.0/8, fd00::/8"))


def hop(name: str, value: str) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode())]


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        ("203.0.113.5", hop("x-forwarded-for", "1.2.3.4"), None),  # untrusted peer: ignored
        ("127.0.0.1", hop("x-forwarded-for", "1.2.3.4"), "1.2.3.4"),
        ("127.0.0.1", hop("x-forwarded-for", "9.9.9.9, 1.2.3.4, 10.0.0.2"), "1.2.3.4"),
        ("127.0.0.1", hop("x-forwarded-for", "10.0.0.3, 10.0.0.2"), "10.0.0.3"),  # all ours
        ("127.0.0.1", hop("x-forwarded-for", "9.9.9.9, garbage"), "127.0.0.1"),
        ("127.0.0.1", hop("x-forwarded-for", "1.2.3.4:5678"), "1.2.3.4"),
        ("127.0.0.1", hop("x-forwarded-for", "[2001:db8::5]:443"), "2001:db8::5"),
        ("::ffff:127.0.0.1", hop("x-forwarded-for", "1.2.3.4"), "1.2.3.4"),
        ("fd00::1", hop("forwarded", 'for=1.1.1.1, for="[2001:db8::9]"'), "2001:db8::9"),
        ("127.0.0.1", hop("x-real-ip", "5.6.7.8"), "5.6.7.8"),
        (
            "127.0.0.1",
            [(b"x-forwarded-for", b"8.8.8.8"), (b"x-forwarded-for", b"1.2.3.4")],
            "1.2.3.4",
        ),
        ("127.0.0.1", [], None),
    ],
)
def test_the_right_most_untrusted_hop_is_the_client(
    peer: str, headers: list[tuple[bytes, bytes]], client: str | None
) -> None:
    assert TRUSTED.client(peer, headers) == client


def test_the_scheme_is_believed_only_from_a_trusted_proxy() -> None:
    assert TRUSTED.scheme("127.0.0.1", hop("x-forwarded-proto", "https")) == "https"
    assert TRUSTED.scheme("127.0.0.1", hop("forwarded", "for=1.2.3.4;proto=https")) == "https"
    assert TRUSTED.scheme("203.0.113.5", hop("x-forwarded-proto", "https")) is None
    assert TRUSTED.scheme("127.0.0.1", hop("x-forwarded-proto", "gopher")) is None


def test_ipv6_callers_share_their_64_budget() -> None:
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "ip:2001:db8::/64"
    assert client_key("2001:db8:0:1::1") != client_key("2001:db8::1")
    assert client_key("::ffff:1.2.3.4") == client_key("1.2.3.4") == "ip:1.2.3.4"
    assert client_key(None) == "ip:unknown"


def test_trusted_proxies_default_to_none_and_refuse_a_bad_entry() -> None:
    assert Settings().trusted_proxy_networks == ()
    with pytest.raises(ValidationError, match=r"'proxy\.example' is not an IP address"):
        Settings(trusted_proxies="10.0.0.1, proxy.example")
