"""read_file (file pointers inside the workspace's files folder) and tls_check (against a real
loopback TLS server with a self-signed certificate made by `cryptography`)."""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flowql.agents.base import StepFailed
from flowql.agents.registry import REGISTRY, validate_options
from flowql.errors import ValidationFailed
from flowql.formats.huginn import flowql_type
from flowql.settings import Settings
from tests.agents.conftest import RunAgent, make_run
from tests.conftest import free_port


def test_class_names_map() -> None:
    assert flowql_type("Agents::ReadFileAgent") == "read_file"
    assert flowql_type("Agents::TlsCheckAgent") == "tls_check"


# -- read_file ---------------------------------------------------------------------------------


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    """The files folder, given on the run's settings (as the engine lends its own), not the
    environment."""
    root = tmp_path / "agent-files"
    root.mkdir()
    return root


def folder_settings(files_dir: Path) -> Settings:
    return Settings(agent_files_dir=files_dir)


async def run_read_file(
    files_dir: Path, options: dict[str, Any], payload: dict[str, Any], files: dict[str, bytes]
) -> Any:
    run = make_run("read_file", options, payload, settings=folder_settings(files_dir))
    folder = files_dir / str(run.agent.workspace_id)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return await REGISTRY["read_file"].handler(run)


async def test_read_file_reads_the_pointed_file(files_dir: Path) -> None:
    outcome = await run_read_file(
        files_dir,
        {},
        {"file_pointer": {"file": "in/report.csv", "agent_id": 7}},
        {"in/report.csv": b"a,b\n1,2\n"},
    )
    assert outcome.emit == [{"data": "a,b\n1,2\n"}]
    outcome = await run_read_file(
        files_dir,
        {"data_key": "raw", "encoding": "base64"},
        {"file_pointer": {"file": "blob.bin"}},
        {"blob.bin": b"\x00\xff"},
    )
    assert outcome.emit == [{"raw": base64.b64encode(b"\x00\xff").decode()}]


async def test_read_file_embedded_body_and_no_pointer(run_agent: RunAgent) -> None:
    body = base64.b64encode("héllo".encode()).decode()
    outcome = await run_agent("read_file", {}, {"file_pointer": {"body": body}})
    assert outcome.emit == [{"data": "héllo"}]
    outcome = await run_agent("read_file", {}, {"something": "else"})
    assert outcome.emit == []
    with pytest.raises(StepFailed, match="not base64"):
        await run_agent("read_file", {}, {"file_pointer": {"body": "%%%"}})


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "sub/../../escape.txt", "."])
async def test_read_file_refuses_paths_outside_the_folder(files_dir: Path, name: str) -> None:
    (files_dir / "escape.txt").write_text("another workspace's data")
    with pytest.raises(StepFailed, match="outside this workspace's files folder"):
        await run_read_file(files_dir, {}, {"file_pointer": {"file": name}}, {"mine.txt": b"x"})


async def test_read_file_refuses_a_symlink_out_and_another_workspace(files_dir: Path) -> None:
    other = files_dir / "00000000-0000-0000-0000-000000000000"
    other.mkdir()
    (other / "secret.txt").write_text("not yours")
    run = make_run(
        "read_file",
        {},
        {"file_pointer": {"file": "link.txt"}},
        settings=folder_settings(files_dir),
    )
    folder = files_dir / str(run.agent.workspace_id)
    folder.mkdir()
    os.symlink(other / "secret.txt", folder / "link.txt")
    with pytest.raises(StepFailed, match="outside"):
        await REGISTRY["read_file"].handler(run)
    with pytest.raises(StepFailed, match="outside"):
        await run_read_file(
            files_dir, {}, {"file_pointer": {"file": f"../{other.name}/secret.txt"}}, {}
        )


async def test_read_file_missing_too_large_and_binary(files_dir: Path) -> None:
    with pytest.raises(StepFailed, match=r"no file 'nope\.txt'"):
        await run_read_file(files_dir, {}, {"file_pointer": {"file": "nope.txt"}}, {})
    with pytest.raises(StepFailed, match="larger than max_bytes"):
        await run_read_file(
            files_dir, {"max_bytes": 4}, {"file_pointer": {"file": "big"}}, {"big": b"12345"}
        )
    with pytest.raises(StepFailed, match="not UTF-8"):
        await run_read_file(files_dir, {}, {"file_pointer": {"file": "b"}}, {"b": b"\xff\xfe"})


# -- tls_check ---------------------------------------------------------------------------------


def self_signed(tmp: Path, name: str, not_before: datetime, not_after: datetime) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flowql tests"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(0xABC123)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@asynccontextmanager
async def tls_server(context: ssl.SSLContext) -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_tls_check_reports_a_valid_certificate(run_agent: RunAgent, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    context = self_signed(
        tmp_path, "valid.test", now - timedelta(days=1), now + timedelta(days=30, hours=1)
    )
    async with tls_server(context) as port:
        url = f"https://127.0.0.1:{port}"
        outcome = await run_agent("tls_check", {"url": url}, mode="check")
    [out] = outcome.emit
    assert (out["url"], out["host"], out["port"]) == (url, "127.0.0.1", port)
    cert = out["certificate"]
    assert cert["valid"] is True and cert["expired"] is False
    assert cert["days_left"] == 30
    assert cert["subject"] == [["CN", "valid.test"], ["O", "flowql tests"]]
    assert cert["issuer"] == cert["subject"]
    assert cert["serial_number"] == "abc123"
    assert datetime.fromisoformat(cert["not_after"]) > now


async def test_tls_check_expired_and_merge_per_message(run_agent: RunAgent, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    context = self_signed(tmp_path, "old.test", now - timedelta(days=90), now - timedelta(days=3))
    async with tls_server(context) as port:
        outcome = await run_agent(
            "tls_check",
            {"url": "tcp://{{ message.host }}:" + str(port), "merge": True},
            {"host": "127.0.0.1", "team": "ops"},
        )
    [out] = outcome.emit
    assert out["team"] == "ops"  # merged with the incoming message
    assert out["port"] == port
    assert out["certificate"]["expired"] is True
    assert out["certificate"]["valid"] is False
    assert out["certificate"]["days_left"] < 0


async def test_tls_check_emits_connection_errors(run_agent: RunAgent) -> None:
    port = free_port()
    outcome = await run_agent("tls_check", {"url": f"tcp://127.0.0.1:{port}"}, mode="check")
    [out] = outcome.emit
    assert out["error"].startswith("Socket error")
    assert "certificate" not in out


async def test_tls_check_plain_tcp_server_is_an_ssl_error(run_agent: RunAgent) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 not tls\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcome = await run_agent("tls_check", {"url": f"tcp://127.0.0.1:{port}"}, mode="check")
    finally:
        server.close()
        await server.wait_closed()
    [out] = outcome.emit
    assert "error" in out and "certificate" not in out


async def test_tls_check_passes_the_network_guard(tmp_path: Path) -> None:
    run = make_run("tls_check", {"url": "https://10.1.2.3:8443"}, mode="check")
    asked: list[tuple[str, int]] = []

    async def refuse(host: str, port: int) -> str:
        asked.append((host, port))
        raise ValidationFailed.one("host", "refused: non-public address")

    run.resolve_host = refuse
    with pytest.raises(ValidationFailed):
        await REGISTRY["tls_check"].handler(run)
    assert asked == [("10.1.2.3", 8443)]


async def test_tls_check_connects_to_the_checked_address(tmp_path: Path) -> None:
    """DNS rebinding: the connection goes to the address the guard checked, not to a second
    lookup of the name (`.invalid` never resolves, so only the checked address can work)."""
    now = datetime.now(UTC)
    context = self_signed(
        tmp_path, "rebind.test", now - timedelta(days=1), now + timedelta(days=30, hours=1)
    )
    async with tls_server(context) as port:
        run = make_run("tls_check", {"url": f"tcp://cert.rebind.invalid:{port}"}, mode="check")

        async def checked(host: str, port: int) -> str:
            assert host == "cert.rebind.invalid"
            return "127.0.0.1"

        run.resolve_host = checked
        outcome = await REGISTRY["tls_check"].handler(run)
    [payload] = outcome.emit
    assert "error" not in payload, payload
    assert payload["host"] == "cert.rebind.invalid"
    assert payload["certificate"]["subject"][0] == ["CN", "rebind.test"]


def test_tls_check_url_is_checked() -> None:
    for url in ("ftp://x", "tcp://host", "https://"):
        with pytest.raises(ValidationFailed) as info:
            validate_options("tls_check", {"url": url})
        assert "options.url" in info.value.fields
    validate_options("tls_check", {"url": "https://{{ message.host }}"})
