"""DNS rebinding: a name checked as public must not then be connected to as 127.0.0.1.

The one stand-in is the resolver (`socket.getaddrinfo`, which asyncio, anyio and so every HTTP
client here go through): names under `.test` answer what a test says, everything else is
resolved for real. A rebinding name answers a public address once, then 127.0.0.1. The targets
are real servers on loopback; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from flowql.models import WebhookDelivery, WebhookSubscription
from flowql.services.netguard import check_public_url, guarded_client
from flowql.services.runtime import Runtime
from tests.conftest import Factory, LiveServer, free_port
from tests.engine.conftest import create_workflow, execute

PUBLIC = "93.184.215.14"  # a global address; never connected to (the guard refuses first)

# The server tests are not storage tests: one backend is enough.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


class FakeDns:
    """`socket.getaddrinfo` for names under `.test`; each name answers its queue of addresses
    in turn, the last one forever."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    def rebind(self, name: str, *addresses: str) -> None:
        self.answers[name] = list(addresses)

    def __call__(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not isinstance(name, str) or not name.endswith(".test"):
            return self.real(host, port, family, type, proto, flags)
        self.lookups.append(name)
        queue = self.answers.get(name)
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        number = int(port or 0)
        if ":" in address:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number))]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@dataclass
class Inside:
    """A server on loopback standing for what an attacker wants to reach (an admin port, a
    metadata service); records every request that gets there."""

    port: int
    requests: list[dict[str, str]] = field(default_factory=list)

    def url(self, host: str, path: str = "/inside", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


async def serve(app: Starlette, port: int, **options: Any) -> AsyncIterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    yield
    server.should_exit = True
    await task


def inside_app(inside: Inside) -> Starlette:
    async def handle(request: Request) -> Response:
        inside.requests.append({"path": request.url.path, "host": request.headers["host"]})
        if request.url.path == "/redirect":
            return RedirectResponse(request.query_params["to"], status_code=302)
        return JSONResponse({"reached": request.url.path})

    return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


@pytest.fixture
async def inside() -> AsyncIterator[Inside]:
    state = Inside(port=free_port())
    async for _ in serve(inside_app(state), state.port):
        yield state


@pytest.fixture
def no_private_networks(runtime: Runtime) -> None:
    runtime.settings.allow_private_networks = False


# -- the guarded client ------------------------------------------------------------------------


async def test_the_stand_in_really_rebinds_an_unguarded_client_to_loopback(
    dns: FakeDns, inside: Inside
) -> None:
    """The control: the check passes, then a plain client resolves again and gets inside."""
    dns.rebind("rebind.test", PUBLIC, "127.0.0.1")
    await check_public_url(inside.url("rebind.test"), allow_private=False)
    async with httpx.AsyncClient() as plain:
        response = await plain.get(inside.url("rebind.test"))
    assert response.status_code == 200
    assert inside.requests == [{"path": "/inside", "host": f"rebind.test:{inside.port}"}]


async def test_the_guarded_client_connects_only_to_an_address_it_checked(
    dns: FakeDns, inside: Inside
) -> None:
    dns.rebind("rebind.test", PUBLIC, "127.0.0.1")
    await check_public_url(inside.url("rebind.test"), allow_private=False)
    async with guarded_client(False) as client:
        with pytest.raises(httpx.ConnectError, match=r"refused: rebind.test .*127\.0\.0\.1"):
            await client.get(inside.url("rebind.test"))
        # Literal addresses and names alike: the address is checked at the connection.
        for host in ("127.0.0.1", "[::ffff:127.0.0.1]"):
            with pytest.raises(httpx.ConnectError, match="refused"):
                await client.get(inside.url(host))
    assert inside.requests == []
    assert dns.lookups == ["rebind.test", "rebind.test"]  # the check's lookup, then one more


async def test_each_redirect_hop_is_checked_when_it_connects(dns: FakeDns, inside: Inside) -> None:
    """The policy is asked per connection: the first hop is allowed, then private networks are
    turned off, and the redirect to a name that resolves to loopback is refused."""
    dns.rebind("first.test", "127.0.0.1")
    dns.rebind("second.test", "127.0.0.1")
    allowed = iter([True])
    to = inside.url("second.test", "/admin")
    async with guarded_client(lambda: next(allowed, False), follow_redirects=True) as client:
        with pytest.raises(httpx.ConnectError, match=r"refused: second\.test"):
            await client.get(inside.url("first.test", f"/redirect?to={to}"))
    assert [r["path"] for r in inside.requests] == ["/redirect"]


async def test_private_networks_allowed_reach_a_loopback_name_with_its_host_header(
    dns: FakeDns, inside: Inside
) -> None:
    dns.rebind("inside.test", "127.0.0.1")
    async with guarded_client(True, follow_redirects=True) as client:
        direct = await client.get(inside.url("inside.test"))
        hop = await client.get(
            inside.url("inside.test", f"/redirect?to={inside.url('127.0.0.1', '/next')}")
        )
    assert direct.json() == {"reached": "/inside"}
    assert hop.json() == {"reached": "/next"}
    assert inside.requests[0] == {"path": "/inside", "host": f"inside.test:{inside.port}"}


# -- TLS keeps the name ------------------------------------------------------------------------


def make_certificates(directory: Path, name: str) -> tuple[Path, Path, ssl.SSLContext]:
    """A throwaway CA and a server certificate for `name`: (cert file, key file, client ctx)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flowql test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return cert_file, key_file, client


@pytest.fixture
def tls_files(tmp_path: Path) -> Iterator[tuple[Path, Path, ssl.SSLContext]]:
    yield make_certificates(tmp_path, "tls.test")


async def test_tls_is_verified_for_the_name_while_connecting_to_the_checked_address(
    dns: FakeDns, tls_files: tuple[Path, Path, ssl.SSLContext]
) -> None:
    cert_file, key_file, trust = tls_files
    state = Inside(port=free_port())
    dns.rebind("tls.test", "127.0.0.1")
    dns.rebind("other.test", "127.0.0.1")
    options = {"ssl_certfile": str(cert_file), "ssl_keyfile": str(key_file)}
    async for _ in serve(inside_app(state), state.port, **options):
        async with guarded_client(True, verify=trust) as client:
            ok = await client.get(state.url("tls.test", scheme="https"))
            assert ok.json() == {"reached": "/inside"}
            # Same address, another name: the certificate does not match it, so no request.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(state.url("other.test", scheme="https"))
    assert state.requests == [{"path": "/inside", "host": f"tls.test:{state.port}"}]


# -- every outbound call goes through it ---------------------------------------------------------


@sqlite_only
async def test_http_request_agent_cannot_be_rebound_to_loopback(
    no_private_networks: None, dns: FakeDns, server: LiveServer, factory: Factory, inside: Inside
) -> None:
    account = await factory.account()
    url = inside.url("rebind.test")
    workflow = await create_workflow(
        server,
        account.token,
        "rebinding",
        [{"name": "call", "type": "http_request", "options": {"url": url}}],
    )
    dns.rebind("rebind.test", PUBLIC, "127.0.0.1")
    process = await execute(server, account.token, workflow["id"])
    assert process["status"] == "FAILED"
    assert "refused" in process["error"]
    assert inside.requests == []


@sqlite_only
async def test_outgoing_webhooks_cannot_be_rebound_to_loopback(
    no_private_networks: None, dns: FakeDns, server: LiveServer, factory: Factory, inside: Inside
) -> None:
    account = await factory.account()
    async with server.runtime.db.transaction() as session:
        session.add(
            WebhookSubscription(
                workspace_id=account.workspace_id,
                url=inside.url("rebind.test", "/events"),
                events=["workflow.executed"],
            )
        )
    workflow = await create_workflow(server, account.token, "w", [{"name": "m", "type": "message"}])
    dns.rebind("rebind.test", PUBLIC, "127.0.0.1")
    await execute(server, account.token, workflow["id"])
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        async with server.runtime.db.read() as session:
            rows = list(
                await session.exec(select(WebhookDelivery).order_by(col(WebhookDelivery.number)))
            )
        if (rows and rows[0].attempts >= 1) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert rows[0].attempts >= 1
    assert "refused" in (rows[0].last_error or "")
    assert inside.requests == []


@sqlite_only
async def test_integration_tests_cannot_be_rebound_to_loopback(
    no_private_networks: None, dns: FakeDns, server: LiveServer, factory: Factory, inside: Inside
) -> None:
    owner = await factory.account()
    dns.rebind("rebind.test", PUBLIC)
    created = await server.gql(
        """mutation ($input: CreateIntegrationInput!) { createIntegration(input: $input) { id } }""",
        {"input": {"name": "i", "type": "http", "settings": {"url": inside.url("rebind.test")}}},
        token=owner.token,
    )
    dns.rebind("rebind.test", PUBLIC, "127.0.0.1")
    body = await server.gql(
        "mutation ($id: UUID!) { testIntegration(id: $id) { lastTestResult } }",
        {"id": created["data"]["createIntegration"]["id"]},
        token=owner.token,
    )
    result = body["data"]["testIntegration"]["lastTestResult"]
    assert result["ok"] is False
    assert "refused" in result["error"]
    assert inside.requests == []
