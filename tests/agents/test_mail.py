"""email and email_digest against a real SMTP server (aiosmtpd on a loopback port)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from flowql.agents.base import StepFailed
from flowql.agents.registry import REGISTRY, validate_options
from flowql.errors import ValidationFailed
from flowql.settings import Settings
from tests.agents.conftest import RunAgent, make_run
from tests.conftest import free_port

USER, PASSWORD = "mailer", "s3cret-pw"


@dataclass
class Mailbox:
    mails: list[tuple[Envelope, Message]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.mails.append((envelope, message_from_bytes(content)))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    port: int
    box: Mailbox


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SmtpServer]:
    box = Mailbox()

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (USER, PASSWORD)
        if ok:
            box.logins.append(USER)
        return AuthResult(success=ok, handled=False)

    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield SmtpServer(port, box)
    finally:
        controller.stop()


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> SmtpServer:
    smtp_server.box.mails.clear()
    smtp_server.box.logins.clear()
    return smtp_server


def server_options(smtp: SmtpServer, **more: Any) -> dict[str, Any]:
    return {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_security": "none", **more}


def parts(mail: Message) -> dict[str, str]:
    found = {}
    for part in mail.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[part.get_content_type()] = payload.decode().replace("\r\n", "\n")
    return found


async def test_email_sends_each_message_to_each_recipient(
    run_agent: RunAgent, smtp: SmtpServer
) -> None:
    options = server_options(
        smtp,
        subject="Price of {{ message.item }}",
        recipients=["a@example.test", "{{ message.owner }}"],
        **{"from": "bot@example.test"},
    )
    payload = {"item": "lamp", "message": "lamp is cheap", "price": 9, "tags": ["x"]}
    outcome = await run_agent("email", options, {**payload, "owner": "b@example.test"})
    assert outcome.emit == []
    assert outcome.logs == ["Sent mail to a@example.test", "Sent mail to b@example.test"]
    assert [env.rcpt_tos for env, _ in smtp.box.mails] == [["a@example.test"], ["b@example.test"]]
    envelope, mail = smtp.box.mails[0]
    assert envelope.mail_from == "bot@example.test"
    assert mail["Subject"] == "Price of lamp"
    assert mail["To"] == "a@example.test"
    text = parts(mail)["text/plain"]
    # headline, then the message's `message` as title and its other keys sorted
    assert text.startswith("Your notification:\n\nlamp is cheap\n")
    assert '  item: lamp\n  owner: b@example.test\n  price: 9\n  tags: ["x"]' in text
    assert "<h1>Your notification:</h1>" in parts(mail)["text/html"]


async def test_email_body_and_content_type(run_agent: RunAgent, smtp: SmtpServer) -> None:
    options = server_options(
        smtp,
        recipients="a@example.test",
        body="<b>{{ message.name | escape }}</b>",
        content_type="text/html",
    )
    await run_agent("email", options, {"name": "<script>"})
    [(_, mail)] = smtp.box.mails
    assert mail.get_content_type() == "text/html"
    assert "<b>&lt;script&gt;</b>" in parts(mail)["text/html"]
    assert "text/plain" not in parts(mail)
    smtp.box.mails.clear()
    await run_agent(
        "email",
        {**options, "content_type": "text/plain", "body": "hi {{ message.name }}"},
        {"name": "Ann"},
    )
    [(_, mail)] = smtp.box.mails
    assert parts(mail) == {"text/plain": "hi Ann\n"}


async def test_email_logs_in_with_a_credential(run_agent: RunAgent, smtp: SmtpServer) -> None:
    options = server_options(
        smtp,
        recipients="a@example.test",
        smtp_username=USER,
        smtp_password_credential="smtp-pw",
    )
    await run_agent("email", options, {"a": 1}, credentials={"smtp-pw": PASSWORD})
    assert smtp.box.logins == [USER]
    assert len(smtp.box.mails) == 1
    with pytest.raises(StepFailed, match=r"Error sending mail to a@example\.test"):
        await run_agent("email", options, {"a": 1}, credentials={"smtp-pw": "wrong"})
    assert len(smtp.box.mails) == 1


async def test_email_uses_the_servers_smtp_settings(run_agent: RunAgent, smtp: SmtpServer) -> None:
    with pytest.raises(StepFailed, match="no SMTP server"):
        await run_agent("email", {"recipients": "a@example.test"}, {"a": 1})
    # The settings the engine lends on the run (not the environment).
    settings = Settings(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        smtp_username=USER,
        smtp_password=PASSWORD,
        email_from_address="ops@example.test",
    )
    await run_agent("email", {"recipients": "a@example.test"}, {"a": 1}, settings=settings)
    [(envelope, mail)] = smtp.box.mails
    assert envelope.mail_from == "ops@example.test"
    assert mail["Subject"] == "You have a notification!"
    assert smtp.box.logins == [USER]


async def test_email_checks_a_tenant_smtp_host_like_any_outbound_call(
    smtp: SmtpServer,
) -> None:
    run = make_run("email", server_options(smtp, recipients="a@example.test"), {"a": 1})
    asked: list[tuple[str, int]] = []

    async def refuse(host: str, port: int) -> str:
        asked.append((host, port))
        raise ValidationFailed.one("host", "refused: non-public address")

    run.resolve_host = refuse
    with pytest.raises(ValidationFailed):
        await REGISTRY["email"].handler(run)
    assert asked == [("127.0.0.1", smtp.port)]
    assert smtp.box.mails == []


async def test_email_connects_to_the_checked_address(smtp: SmtpServer) -> None:
    """DNS rebinding: the SMTP connection goes to the address the guard checked, not to a
    second lookup of the name (`.invalid` never resolves)."""
    options = server_options(smtp, recipients="a@example.test")
    options["smtp_host"] = "mail.rebind.invalid"
    run = make_run("email", options, {"a": 1})

    async def checked(host: str, port: int) -> str:
        assert (host, port) == ("mail.rebind.invalid", smtp.port)
        return "127.0.0.1"

    run.resolve_host = checked
    outcome = await REGISTRY["email"].handler(run)
    assert outcome.logs == ["Sent mail to a@example.test"]
    assert len(smtp.box.mails) == 1


async def test_email_refuses_a_rendered_bad_recipient(
    run_agent: RunAgent, smtp: SmtpServer
) -> None:
    with pytest.raises(StepFailed, match="not an email address"):
        await run_agent(
            "email", server_options(smtp, recipients="{{ message.to }}"), {"to": "nobody"}
        )
    assert smtp.box.mails == []


def test_email_options_are_checked() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_options("email", {"recipients": ["not-an-address"], "content_type": "x"})
    assert {"options.recipients", "options.content_type"} <= set(info.value.fields)
    with pytest.raises(ValidationFailed) as info:
        validate_options("email", {})
    assert "options.recipients" in info.value.fields


async def test_email_digest_collects_then_sends_one_mail_on_check(
    run_agent: RunAgent, smtp: SmtpServer
) -> None:
    options = server_options(
        smtp,
        recipients="a@example.test",
        subject="{{ messages | size }} updates",
    )
    memory: dict[str, Any] = {}
    assert (await run_agent("email_digest", options, memory=memory, mode="check")).logs == [
        "nothing to send"
    ]
    for payload in ({"title": "first", "x": 1}, {"y": 2}):
        await run_agent("email_digest", options, payload, memory=memory)
        memory = json.loads(json.dumps(memory))  # the engine saves it between runs
    assert smtp.box.mails == []  # nothing is sent on receive
    outcome = await run_agent("email_digest", options, memory=memory, mode="check")
    assert outcome.logs == ["digest of 2 message(s)", "Sent mail to a@example.test"]
    [(_, mail)] = smtp.box.mails
    assert mail["Subject"] == "2 updates"
    text = parts(mail)["text/plain"]
    assert text.startswith("Your notifications:\n\nfirst\n  x: 1\n\nMessage\n  y: 2\n")
    assert memory == {"messages": []}
    await run_agent("email_digest", options, memory=memory, mode="check")
    assert len(smtp.box.mails) == 1  # emptied: nothing more to send


async def test_email_digest_keeps_messages_when_sending_fails(run_agent: RunAgent) -> None:
    dead = {"smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_security": "none"}
    options = {**dead, "recipients": "a@example.test", "timeout_seconds": 5}
    memory: dict[str, Any] = {}
    await run_agent("email_digest", options, {"a": 1}, memory=memory)
    with pytest.raises(StepFailed, match="Error sending mail"):
        await run_agent("email_digest", options, memory=memory, mode="check")
    assert memory == {"messages": [{"a": 1}]}
