"""`read_file` (ActiveWorkflow's ReadFileAgent) and `tls_check` (its TlsCheckAgent).

read_file consumes a message's file pointer, as ActiveWorkflow's FileHandling concern shapes it:
`{"file_pointer": {"file": "<path>", ...}}`, or `{"file_pointer": {"body": "<base64>"}}` with
the contents embedded. flowql has no file store of agents: `file` names a path inside the
workspace's own folder of the operator's data folder, `<agent_files_dir>/<workspace id>/`
(FLOWQL_AGENT_FILES_DIR, unset: `<data_dir>/files`). A path leading outside that folder (`..`,
an absolute path, a symbolic link out) is refused; so is a file larger than `max_bytes`.

tls_check connects to `url` (https://host[:port] or tcp://host:port), takes the certificate the
server presents (not verified against any authority, as ActiveWorkflow does: check only hosts
you control) and emits its validity. The host passes the outbound-network check of every agent
(private networks refused unless the operator allows them). As in ActiveWorkflow, a failure to
connect is emitted as `{"error": ...}`, not a failed step.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import Field, field_validator

from flowql.agents.base import AgentRun, AgentType, Kind, Options, Outcome, StepFailed
from flowql.agents.stateful import render_with
from flowql.settings import Settings

MAX_READ_BYTES = 10 * 1024 * 1024


# -- read_file ---------------------------------------------------------------------------------


class ReadFileOptions(Options):
    data_key: str = Field(default="data", min_length=1, description="Key of the contents")
    encoding: Literal["utf-8", "base64"] = Field(
        default="utf-8", description="Emit the contents as text, or as base64 (binary files)"
    )
    max_bytes: int = Field(default=1024 * 1024, gt=0, le=MAX_READ_BYTES)


def files_root(settings: Settings) -> Path:
    return settings.agent_files_dir or settings.data_dir / "files"


def workspace_folder(settings: Settings, workspace_id: object) -> Path:
    """The folder whose files one workspace's file pointers may name."""
    return files_root(settings) / str(workspace_id)


def resolve_inside(folder: Path, name: str) -> Path:
    """`name` as a path inside `folder`; StepFailed when it leads anywhere else."""
    if not name or "\x00" in name:
        raise StepFailed("file_pointer.file is not a usable path")
    base = folder.resolve()
    target = (base / name).resolve()
    if target == base or not target.is_relative_to(base):
        raise StepFailed(f"file_pointer.file {name!r} is outside this workspace's files folder")
    return target


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise StepFailed(f"no file {path.name!r} in this workspace's files folder") from None
    except IsADirectoryError:
        raise StepFailed(f"{path.name!r} is a folder, not a file") from None
    except OSError as exc:
        raise StepFailed(f"cannot read {path.name!r}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise StepFailed(f"{path.name!r} is larger than max_bytes ({max_bytes})")
    return data


async def read_file(run: AgentRun) -> Outcome:
    options = ReadFileOptions.model_validate(run.options())
    if run.mode == "check":
        return Outcome()
    pointer = run.payload.get("file_pointer")
    if not isinstance(pointer, dict) or not (pointer.get("file") or pointer.get("body")):
        return Outcome(logs=["no file pointer in the message: nothing read"])
    if pointer.get("body"):
        try:
            data = base64.b64decode(str(pointer["body"]), validate=True)
        except binascii.Error:
            raise StepFailed("file_pointer.body is not base64") from None
        if len(data) > options.max_bytes:
            raise StepFailed(f"the embedded file is larger than max_bytes ({options.max_bytes})")
        source = "the embedded file"
    else:
        name = str(pointer["file"])
        path = resolve_inside(workspace_folder(run.settings, run.agent.workspace_id), name)
        data = await asyncio.to_thread(_read, path, options.max_bytes)
        source = repr(name)
    if options.encoding == "base64":
        contents = base64.b64encode(data).decode()
    else:
        try:
            contents = data.decode("utf-8")
        except UnicodeDecodeError:
            raise StepFailed(
                f"{source} is not UTF-8 text (set encoding to base64 for binary files)"
            ) from None
    return Outcome(
        emit=[{options.data_key: contents}], logs=[f"read {len(data)} bytes from {source}"]
    )


# -- tls_check ---------------------------------------------------------------------------------


class TlsCheckOptions(Options):
    url: str = Field(
        min_length=1, max_length=2000, description="https://host[:port] or tcp://host:port"
    )
    merge: bool = Field(default=False, description="Merge the result into the incoming message")
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _shape(cls, value: str) -> str:
        if "{{" in value or "{%" in value:
            return value  # a template: checked once rendered
        _target(value)
        return value


def _target(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("https", "tcp"):
        raise ValueError("must be an https:// or tcp:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if port is None:
        if parts.scheme == "tcp":
            raise ValueError("a tcp:// URL needs a port")
        port = 443
    return parts.hostname, port


def _names(name: x509.Name) -> list[list[str]]:
    return [[attr.rfc4514_attribute_name, str(attr.value)] for attr in name]


def certificate_info(der: bytes, now: datetime) -> dict[str, Any]:
    cert = x509.load_der_x509_certificate(der)
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    return {
        "valid": not_before < now < not_after,
        "expired": now > not_after,
        "days_left": (not_after - now).days,
        "subject": _names(cert.subject),
        "issuer": _names(cert.issuer),
        "not_before": not_before.isoformat(),
        "not_after": not_after.isoformat(),
        "serial_number": format(cert.serial_number, "x"),
    }


async def peer_certificate(
    host: str, port: int, timeout: float, address: str | None = None
) -> bytes:
    """The certificate `host` presents, connecting to `address` (checked) when given."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # report on any certificate, as ActiveWorkflow does
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(address or host, port, ssl=context, server_hostname=host), timeout
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    finally:
        writer.close()
        with suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), timeout)
    if not der:
        raise ssl.SSLError("the server presented no certificate")
    return bytes(der)


async def tls_check(run: AgentRun) -> Outcome:
    options = TlsCheckOptions.model_validate(render_with(run, run.agent.options))
    try:
        host, port = _target(options.url)
    except ValueError as exc:
        raise StepFailed(f"url: {exc}") from None
    # Connect to the address that was checked, not to the name again (DNS rebinding).
    address = await run.resolve_host(host, port)
    payload: dict[str, Any] = {"url": options.url, "host": host, "port": port}
    if options.merge and run.mode == "receive":
        payload = {**run.payload, **payload}
    try:
        der = await peer_certificate(host, port, options.timeout_seconds, address)
    except ssl.SSLError as exc:
        error = f"SSL error: {exc.reason or exc}"
    except TimeoutError:
        error = f"timed out after {options.timeout_seconds:g}s"
    except OSError as exc:
        error = f"Socket error: {exc.strerror or exc}"
    else:
        info = certificate_info(der, datetime.now(UTC))
        return Outcome(
            emit=[{**payload, "certificate": info}],
            logs=[f"{host}:{port}: certificate expires in {info['days_left']} day(s)"],
        )
    return Outcome(emit=[{**payload, "error": error}], logs=[f"{host}:{port}: {error}"])


TYPES: tuple[AgentType, ...] = (
    AgentType(
        "read_file",
        Kind.ACTION,
        ReadFileOptions,
        "Reads the file a message's file_pointer names (inside the workspace's files folder) "
        "and emits its contents",
        read_file,
        emits='{"data": "<the file contents>"}',
        example={"data_key": "data"},
    ),
    AgentType(
        "tls_check",
        Kind.ACTION,
        TlsCheckOptions,
        "Checks the TLS certificate a host presents (on schedule or per message) for expiry",
        tls_check,
        emits='{"url", "host", "port", "certificate": {"valid", "expired", "days_left", '
        '"subject", "issuer", "not_before", "not_after"}} or {..., "error": "..."}',
        example={"url": "https://example.com", "timeout_seconds": 10},
    ),
)
