"""Secrets never reach a log line; expected input errors are logged as one line.

Real servers: `flowql serve` in a subprocess (its access log read from its stdout), and
create_app under a plain uvicorn server whose access log a test handler records.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from uvicorn.logging import AccessFormatter

from flowql import logs
from flowql.app import create_app
from flowql.errors import ValidationFailed
from flowql.services.runtime import Runtime
from tests.conftest import free_port
from tests.security.served import flowql_serve

API_KEY = "fql_abcdefghijkl_S3cretS3cretS3cretS3cret-_x"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLXNlY3JldA"
REFRESH = "fqr_R3freshR3freshR3freshR3fresh"
SECRETS = (
    "S3cretS3cretS3cretS3cret",
    "c2lnbmF0dXJlLXNlY3JldA",
    "eyJzdWIiOiJ1c2VyIn0",
    "R3freshR3freshR3fresh",
    "hunter2",
    "tok-9f8e7d",
    "sig-0a1b2c",
    "cookie-v4lue",
)
QUERIES = (
    f"/compat/wayscript/api?api_key={API_KEY}&program_id=1",
    f"/graphql?query=%7B__typename%7D&token=tok-9f8e7d&access_token={JWT}",
    "/graphql?query=%7B__typename%7D&Password=hunter2&X-Signature=sig-0a1b2c",
    f"/graphql?query=%7B__typename%7D&note={REFRESH}",
)


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} logged:\n{text}"


async def send_credentials(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for path in QUERIES:
            await client.post(path, headers={"Cookie": "session=cookie-v4lue"})


async def test_flowql_serve_masks_credentials_in_its_access_log(tmp_path: Path) -> None:
    async with flowql_serve(tmp_path) as served:
        await send_credentials(served.url)
        wayscript = await served.wait_for("/compat/wayscript/api")
        await served.wait_for("note=")
    assert_clean(served.output)
    assert "api_key=***" in wayscript
    assert "program_id=1" in wayscript  # only the credential is masked
    assert "fqr_***" in served.output


# -- create_app under someone else's uvicorn -----------------------------------------------------


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s'))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def access_log() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    logging.getLogger("uvicorn.access").removeHandler(recorder)


@pytest.fixture
async def app_server(runtime: Runtime) -> AsyncIterator[str]:
    """create_app under a uvicorn configured the default way (its own logging config)."""
    port = free_port()
    config = uvicorn.Config(create_app(runtime.settings, runtime), host="127.0.0.1", port=port)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_create_app_masks_credentials_in_any_uvicorns_access_log(
    app_server: str, access_log: Recorder
) -> None:
    logging.getLogger("uvicorn.access").addHandler(access_log)
    await send_credentials(app_server)
    assert len(access_log.lines) == len(QUERIES)
    assert_clean("\n".join(access_log.lines))
    assert "api_key=***&program_id=1" in access_log.lines[0]


# -- the filter, through the logging machinery ---------------------------------------------------


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    logs.install()  # on the root logger's handlers, caplog's among them
    caplog.set_level(logging.INFO)
    return caplog


def test_credentials_are_masked_however_a_message_is_built(
    logged: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("flowql.test")
    log.info("GET %s?api_key=%s", "/api", "plainsecret-hunter2")  # the name in the format
    log.info("calling %s", httpx.URL(f"https://x.test/a?token=tok-9f8e7d&key={API_KEY}"))
    log.info("headers %s", {"Authorization": f"Bearer {JWT}", "Cookie": "session=cookie-v4lue"})
    log.info("body %s", json.dumps({"password": "hunter2", "clientSecret": "sig-0a1b2c"}))
    log.info("refresh %s then %s", REFRESH, "ok")
    log.info("args that do not fit %s %s", "token=sig-0a1b2c")  # a logging error, still masked
    log.info({"apiKey": API_KEY})  # a non-string message
    log.info("key %s used", API_KEY)  # a key shape, whatever surrounds it
    text = logged.text
    assert_clean(text)
    assert "fql_abcdefghijkl_***" in text  # the key's public prefix says which key it was
    assert len(logged.records) == 8


def test_access_records_keep_their_arguments_for_uvicorns_formatter(
    logged: pytest.LogCaptureFixture,
) -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"/api?api_key={API_KEY}&program_id=7", "1.1", 401),
        None,
    )
    assert logs.RedactSecrets().filter(record)
    line = AccessFormatter("%(request_line)s %(status_code)s").format(record)
    assert line == "POST /api?api_key=***&program_id=7 HTTP/1.1 401 Unauthorized"


def test_expected_input_errors_are_one_line_and_unexpected_ones_keep_a_masked_traceback(
    logged: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("flowql.test")
    try:
        raise ValidationFailed.one("input.url", "must be an http or https URL")
    except ValidationFailed:
        log.exception("refused a request")
    try:
        json.loads('{"a": ')
    except json.JSONDecodeError:
        logging.getLogger("flowql.asgi").exception("Exception in ASGI application")
    try:
        raise RuntimeError(f"upstream said no to {API_KEY}")
    except RuntimeError:
        log.exception("unexpected")
    expected, parse, unexpected = logged.records
    for record in (expected, parse):
        assert record.exc_info is None
        assert "\n" not in record.getMessage()
        assert "Traceback" not in logged.text.split("unexpected")[0]
    assert expected.getMessage().startswith("refused a request (ValidationFailed: ")
    assert "JSONDecodeError: Expecting value" in parse.getMessage()
    assert unexpected.exc_info is not None  # the unexpected one keeps its traceback, masked
    assert "Traceback (most recent call last)" in logged.text
    assert_clean(logged.text)
