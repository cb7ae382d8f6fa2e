"""http_status and post against a real loopback HTTP server."""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree

from flowql.agents.registry import validate_options
from flowql.errors import ValidationFailed
from tests.agents.conftest import RunAgent
from tests.agents.loopback import Loopback, running

site = pytest.fixture(scope="module")(running)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# --- http_status ---------------------------------------------------------------------------------


async def test_http_status_reports_status_time_and_headers(
    run_agent: RunAgent, site: Loopback
) -> None:
    url = site.serve("/up", "ok", content_type="text/plain", headers={"X-Custom": "yes"})
    options = {"url": url, "headers_to_save": "Content-Type, X-Custom, X-Absent"}
    outcome = await run_agent("http_status", options, mode="check")
    [payload] = outcome.emit
    elapsed = payload.pop("elapsed_time")
    assert isinstance(elapsed, float) and elapsed >= 0
    assert payload == {
        "url": url,
        "response_received": True,
        "status": "200",
        "final_url": url,
        "redirected": False,
        "headers": {"Content-Type": "text/plain", "X-Custom": "yes", "X-Absent": None},
    }


async def test_http_status_follows_redirects_unless_disabled(
    run_agent: RunAgent, site: Loopback
) -> None:
    target = site.serve("/new", "here", content_type="text/plain")
    old = site.serve("/old", "", status=302, headers={"Location": "/new"})
    followed = (await run_agent("http_status", {"url": old}, mode="check")).emit[0]
    assert (followed["status"], followed["final_url"], followed["redirected"]) == (
        "200",
        target,
        True,
    )
    options = {"url": old, "disable_redirect_follow": "true"}
    kept = (await run_agent("http_status", options, mode="check")).emit[0]
    assert (kept["status"], kept["final_url"], kept["redirected"]) == ("302", old, False)


async def test_http_status_changes_only_uses_memory(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve("/flaky", "ok")
    options = {"url": url, "changes_only": "true"}
    memory: dict[str, Any] = {}
    assert len((await run_agent("http_status", options, mode="check", memory=memory)).emit) == 1
    assert memory["last_status"] == "200"
    assert (await run_agent("http_status", options, mode="check", memory=memory)).emit == []
    site.serve("/flaky", "down", status=500)
    changed = await run_agent("http_status", options, mode="check", memory=memory)
    assert changed.emit[0]["status"] == "500"
    # Without changes_only every check emits.
    plain = {"url": url}
    assert len((await run_agent("http_status", plain, mode="check", memory=memory)).emit) == 1


async def test_http_status_unreachable_and_url_from_message(
    run_agent: RunAgent, site: Loopback
) -> None:
    down = _closed_port_url()
    memory: dict[str, Any] = {"last_status": "200"}
    outcome = await run_agent(
        "http_status", {"url": "{{ target }}"}, {"target": down}, memory=memory
    )
    [payload] = outcome.emit
    assert payload["url"] == down
    assert payload["response_received"] is False
    assert "status" not in payload
    assert memory["last_status"] is None


def test_http_status_requires_url() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_options("http_status", {"changes_only": "maybe"})
    assert set(caught.value.fields) == {"options.url", "options.changes_only"}


# --- post ----------------------------------------------------------------------------------------


def _last(site: Loopback, path: str) -> Any:
    return [r for r in site.requests if urlsplit(r.path).path == path][-1]


async def test_post_form_merges_the_message_by_default(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve("/form", "thanks", content_type="text/plain")
    options = {"post_url": url, "payload": {"key": "value", "who": "{{ name }}"}}
    outcome = await run_agent("post", options, {"name": "Ada", "n": 3})
    assert outcome.emit == []  # emit_events is off
    sent = _last(site, "/form")
    assert sent.method == "POST"
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(sent.body.decode()) == {
        "key": ["value"],
        "who": ["Ada"],
        "name": ["Ada"],
        "n": ["3"],
    }


async def test_post_json_no_merge_emits_the_response(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve(
        "/json",
        '{"ok": true}',
        status=201,
        content_type="application/json",
        headers={"X-Request-Id": "r1"},
    )
    options = {
        "post_url": url,
        "method": "put",
        "content_type": "json",
        "payload": {"items": [1, 2], "name": "{{ name }}"},
        "no_merge": "true",
        "emit_events": "true",
        "headers": {"X-Api-Key": "k"},
    }
    outcome = await run_agent("post", options, {"name": "Ada", "secret": "s"})
    sent = _last(site, "/json")
    assert sent.method == "PUT"
    assert sent.headers["X-Api-Key"] == "k"
    assert sent.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(sent.body) == {"items": [1, 2], "name": "Ada"}
    [emitted] = outcome.emit
    assert emitted["status"] == 201
    assert emitted["body"] == '{"ok": true}'
    assert emitted["headers"]["X-Request-Id"] == "r1"
    assert emitted["headers"]["Content-Type"] == "application/json"
    assert "name" not in emitted  # output_mode clean


async def test_post_output_mode_merge_and_header_styles(
    run_agent: RunAgent, site: Loopback
) -> None:
    url = site.serve("/m", "ok", content_type="text/plain", headers={"X-Thing-Id": "7"})
    options = {
        "post_url": url,
        "content_type": "json",
        "emit_events": True,
        "output_mode": "merge",
        "event_headers_style": "snakecased",
    }
    [emitted] = (await run_agent("post", options, {"name": "Ada"})).emit
    assert emitted["name"] == "Ada"
    assert emitted["headers"]["x_thing_id"] == "7"
    options["event_headers_style"] = "downcased"
    [emitted] = (await run_agent("post", options, {"name": "Ada"})).emit
    assert emitted["headers"]["x-thing-id"] == "7"


async def test_post_xml_and_raw_mime_bodies(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve("/xml", "ok")
    options = {
        "post_url": url,
        "content_type": "xml",
        "xml_root": "order",
        "no_merge": "true",
        "payload": {"order_id": 5, "tags": ["a", "b"], "note": "{{ note }}"},
    }
    await run_agent("post", options, {"note": "fish & chips"})
    sent = _last(site, "/xml")
    assert sent.headers["Content-Type"] == "text/xml; charset=utf-8"
    root = etree.fromstring(sent.body)
    assert root.tag == "order"
    assert root.findtext("order-id") == "5"
    assert root.find("order-id").get("type") == "integer"
    assert [t.text for t in root.find("tags")] == ["a", "b"]
    assert root.findtext("note") == "fish & chips"

    raw = {
        "post_url": url,
        "content_type": "text/csv",
        "payload": "a,b\n{{ x }},2\n",
        "no_merge": "true",
    }
    await run_agent("post", raw, {"x": 1})
    sent = _last(site, "/xml")
    assert sent.headers["Content-Type"] == "text/csv"
    assert sent.body == b"a,b\n1,2\n"


async def test_post_get_sends_query_parameters_and_check_sends_payload_only(
    run_agent: RunAgent, site: Loopback
) -> None:
    url = site.serve("/q", "ok")
    options = {"post_url": url, "method": "get", "payload": {"q": "flow ql"}}
    await run_agent("post", options, {"page": 2})
    sent = _last(site, "/q")
    assert sent.method == "GET"
    assert parse_qs(urlsplit(sent.path).query) == {"q": ["flow ql"], "page": ["2"]}
    await run_agent("post", options, mode="check")
    assert parse_qs(urlsplit(_last(site, "/q").path).query) == {"q": ["flow ql"]}


async def test_post_network_error_fails_the_step(run_agent: RunAgent) -> None:
    from flowql.agents.base import StepFailed

    with pytest.raises(StepFailed, match="failed"):
        await run_agent("post", {"post_url": _closed_port_url()}, {"a": 1})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "post_url"),
        ({"post_url": "http://x/", "method": "fetch"}, "method"),
        ({"post_url": "http://x/", "payload": "text"}, "hash or an array"),
        ({"post_url": "http://x/", "method": "get", "payload": "text"}, "hash or an array"),
        ({"post_url": "http://x/", "content_type": "form", "payload": [1]}, "must be a hash"),
        ({"post_url": "http://x/", "content_type": "text/plain", "payload": "t"}, "no_merge"),
        ({"post_url": "http://x/", "output_mode": "both"}, "output_mode"),
        ({"post_url": "http://x/", "emit_events": "sometimes"}, "true or false"),
        ({"post_url": "http://x/", "event_headers_style": "loud"}, "headers style"),
    ],
)
def test_post_invalid_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_options("post", options)
    assert message in json.dumps(caught.value.fields)


async def test_post_parse_body_and_event_headers(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve(
        "/parsed",
        '{"id": 9}',
        content_type="application/json; charset=utf-8",
        headers={"X-Keep": "k", "X-Drop": "d"},
    )
    options = {
        "post_url": url,
        "content_type": "json",
        "emit_events": "true",
        "parse_body": "true",
        "event_headers": "x-keep, Content-Type",
    }
    [emitted] = (await run_agent("post", options, {"a": 1})).emit
    assert emitted["body"] == {"id": 9}
    assert emitted["headers"] == {
        "X-Keep": "k",
        "Content-Type": "application/json; charset=utf-8",
    }
