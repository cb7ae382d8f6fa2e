"""Email agents as ActiveWorkflow has them: `email` sends each message it receives; `email_digest`
collects messages (in memory) and sends them all in one mail when its schedule fires.

SMTP goes through aiosmtplib. The server is the agent's `smtp_host` (with `smtp_port`,
`smtp_username`, the password as a credential named by `smtp_password_credential`, and
`smtp_security`), or else the operator's FLOWQL_SMTP_* settings. A server named in options is
a tenant's choice: it passes the same outbound-network check as http_request (private networks
refused unless the operator allows them); the operator's own server is trusted.

The mail, as ActiveWorkflow's SystemMailer builds it: `body` when given (the author's text or
HTML, not sanitized: escape message values with Liquid's `escape` filter), else the `headline`
then one group per message: its title (the first of `title`, `message`, `text`, `main`,
`value`, or "Message") and its other keys as `key: value` lines. `content_type` text/plain or
text/html sends that part only; unset sends both.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import socket
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Literal, TypeVar

import aiosmtplib
from pydantic import Field, ValidationError, field_validator

from flowql.agents.base import AgentRun, AgentType, Kind, Options, Outcome, StepFailed
from flowql.agents.stateful import MAX_HELD_MESSAGES, hold, present, render_with
from flowql.auth.privileges import require_for_process

MAIN_KEYS = ("title", "message", "text", "main", "value")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class EmailOptions(Options):
    subject: str = Field(default="You have a notification!", min_length=1)
    headline: str | None = "Your notification:"
    body: str | None = Field(default=None, description="Replaces the listing (text or HTML)")
    recipients: str | list[str] = Field(description="An address or a list of addresses")
    from_: str | None = Field(default=None, alias="from", description="Sender address")
    content_type: Literal["text/plain", "text/html"] | None = None
    smtp_host: str | None = Field(default=None, description="Unset: the server's settings")
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password_credential: str | None = Field(
        default=None, description="Name of the credential holding the SMTP password"
    )
    smtp_security: Literal["auto", "starttls", "tls", "none"] | None = None
    timeout_seconds: float = Field(default=30, gt=0, le=300)
    expected_receive_period_in_days: float = Field(default=2, ge=0)

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, value: str | list[str]) -> str | list[str]:
        items = [value] if isinstance(value, str) else value
        if not items:
            raise ValueError("give at least one recipient")
        for item in items:
            if not (_EMAIL.match(item) or "{" in item):
                raise ValueError(f"{item!r} is not an email address")
        return value


class EmailDigestOptions(EmailOptions):
    subject: str = Field(default="You have some notifications!", min_length=1)
    headline: str | None = "Your notifications:"


_O = TypeVar("_O", bound=EmailOptions)


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def group_for(payload: Any) -> tuple[str, list[str]]:
    """A message as the mail lists it: a title and its other keys as `key: value` lines."""
    if not isinstance(payload, dict):
        return _text(payload), []
    title_key = next((key for key in MAIN_KEYS if key in payload), None)
    title = "Message" if title_key is None else _text(payload[title_key])
    entries = [
        f"{key}: {_text(value)}" for key, value in sorted(payload.items()) if key != title_key
    ]
    return title, entries


def build_mail(
    *,
    sender: str,
    recipient: str,
    subject: str,
    headline: str | None,
    body: str | None,
    content_type: str | None,
    payloads: list[dict[str, Any]],
) -> EmailMessage:
    groups = [group_for(payload) for payload in payloads]
    if present(body):
        text = str(body)
        markup = f"<!DOCTYPE html>\n<html><body>\n{body}\n</body></html>\n"
    else:
        lines = [f"{headline}\n"] if present(headline) else []
        for title, entries in groups:
            lines.append(title)
            lines.extend(f"  {entry}" for entry in entries)
            lines.append("")
        text = "\n".join(lines) + "\n"
        parts = [f"<h1>{html.escape(str(headline))}</h1>"] if present(headline) else []
        for title, entries in groups:
            items = "".join(
                f'<div style="margin-left: 10px;">{html.escape(e)}</div>' for e in entries
            )
            parts.append(
                f'<div style="margin-bottom: 10px;"><div>{html.escape(title)}</div>{items}</div>'
            )
        markup = "<!DOCTYPE html>\n<html><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = recipient
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="flowql")
    if content_type == "text/html":
        mail.set_content(markup, subtype="html")
    else:
        mail.set_content(text)
        if content_type is None:
            mail.add_alternative(markup, subtype="html")
    return mail


def _parse(cls: type[_O], data: dict[str, Any]) -> _O:
    """Rendered options, checked again: a template may have rendered a bad value."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise StepFailed(f"options after rendering: {problems}") from None


def _recipients(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else list(value or [])
    found = [str(item).strip() for item in items if str(item).strip()]
    for item in found:
        if not _EMAIL.match(item):
            raise StepFailed(f"recipient {item!r} is not an email address")
    if not found:
        raise StepFailed("no recipients")
    return found


async def _connect(address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to `address` (already checked): TLS still verifies the host's name."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, (address, port)), timeout
        )
    except BaseException:
        sock.close()
        raise
    return sock


async def send_mails(
    run: AgentRun, parsed: EmailOptions, payloads: list[dict[str, Any]]
) -> list[str]:
    """Send one mail per recipient listing `payloads` (options rendered already); the logs."""
    settings = run.settings
    # The address the agent's own smtp_host was checked at: the connection goes there.
    address: str | None = None
    if parsed.smtp_host:
        host = parsed.smtp_host
        port = parsed.smtp_port or 587
        address = await run.resolve_host(host, port)
        username = parsed.smtp_username
        password: str | None = None
        security: str = parsed.smtp_security or "auto"
    elif settings.smtp_host:
        host = settings.smtp_host
        port = parsed.smtp_port or settings.smtp_port
        username = parsed.smtp_username or settings.smtp_username
        password = settings.smtp_password
        security = parsed.smtp_security or settings.smtp_security
    else:
        raise StepFailed("no SMTP server: set the agent's smtp_host or FLOWQL_SMTP_HOST")
    if parsed.smtp_password_credential:
        require_for_process(run.process.privileges, "credential:read", "use credentials")
        password = await run.resolve_credential(parsed.smtp_password_credential)
    sender = parsed.from_ or settings.email_from_address
    logs = []
    for recipient in _recipients(parsed.recipients):
        mail = build_mail(
            sender=sender,
            recipient=recipient,
            subject=parsed.subject,
            headline=parsed.headline,
            body=parsed.body,
            content_type=parsed.content_type,
            payloads=payloads,
        )
        sock: socket.socket | None = None
        try:
            if address is not None:
                sock = await _connect(address, port, parsed.timeout_seconds)
            await aiosmtplib.send(
                mail,
                hostname=host,
                port=None if sock is not None else port,
                sock=sock,
                username=username if password is not None else None,
                password=password,
                use_tls=security == "tls",
                start_tls={"auto": None, "starttls": True}.get(security, False),
                timeout=parsed.timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise StepFailed(
                f"Error sending mail to {recipient}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            if sock is not None:
                sock.close()
        logs.append(f"Sent mail to {recipient}")
    return logs


async def email(run: AgentRun) -> Outcome:
    if run.mode == "check":
        return Outcome()
    options = _parse(EmailOptions, run.options())
    return Outcome(logs=await send_mails(run, options, [dict(run.payload)]))


async def email_digest(run: AgentRun) -> Outcome:
    if run.mode == "receive":
        dropped = hold(run.memory, "messages", run.payload, MAX_HELD_MESSAGES)
        return Outcome(logs=["queued for the digest" + (" (oldest dropped)" if dropped else "")])
    held = run.memory.get("messages")
    if not isinstance(held, list) or not held:
        return Outcome(logs=["nothing to send"])
    options = _parse(EmailDigestOptions, render_with(run, run.agent.options, messages=held))
    logs = await send_mails(run, options, held)
    run.memory["messages"] = []
    return Outcome(logs=[f"digest of {len(held)} message(s)", *logs])


TYPES: tuple[AgentType, ...] = (
    AgentType(
        "email",
        Kind.ACTION,
        EmailOptions,
        "Sends each message it receives by email (SMTP)",
        email,
        emits="Nothing: it sends mail",
        example={
            "subject": "You have a notification!",
            "expected_receive_period_in_days": "2",
            "recipients": ["you@example.com"],
        },
    ),
    AgentType(
        "email_digest",
        Kind.ACTION,
        EmailDigestOptions,
        "Collects received messages and emails them all at once when its schedule fires",
        email_digest,
        emits="Nothing: it sends mail",
        example={
            "subject": "You have some notifications!",
            "expected_receive_period_in_days": "2",
            "recipients": ["you@example.com"],
        },
    ),
)
