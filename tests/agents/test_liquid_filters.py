"""Huginn's Liquid filters and tags in agent options, and `{% credential %}` resolved by the
engine for the run (a real server calling a loopback target with the credential in a header)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from flowql.agents.liquid_filters import CREDENTIALS_KEY, credential_names
from flowql.agents.registry import validate_options
from flowql.agents.templating import TemplateError, render
from flowql.errors import ValidationFailed
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import Target, create_workflow, execute, process_detail
from tests.engine.conftest import target as target  # the loopback target fixture

CONTEXT: dict[str, Any] = {
    "message": {
        "name": "Doe, John A.",
        "query": "rain & storm",
        "path": "/comics/1?x=1",
        "html": '<p><a href="/a">a</a> <img src=\'b.png\'> <a href="https://o.example/">o</a></p>',
        "data": {"list": [1, "two"], "ok": True},
        "entity": "&lt;b&gt; &amp; &#39;q&#39;",
    }
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ message.query | uri_escape }}", "rain+%26+storm"),
        (
            "{{ message.path | to_uri: 'https://xkcd.example/base/' }}",
            "https://xkcd.example/comics/1?x=1",
        ),
        (
            "{% assign u = message.path | to_uri: 'https://xkcd.example:8443/' %}"
            "{{ u.scheme }} {{ u.host }} {{ u.port }} {{ u.path }} {{ u.query }}",
            "https xkcd.example 8443 /comics/1 x=1",
        ),
        ("{{ message.name | regex_replace: '\\s+', '_' }}", "Doe,_John_A."),
        ("{{ message.name | regex_replace_first: '\\s', '' }}", "Doe,John A."),
        (
            "{{ message.name | regex_replace: '\\A(?<last>.+), (?<first>.+)\\z', '\\k<first> \\1' }}",
            "John A. Doe",
        ),
        ("{{ 'a1b22' | regex_replace: '\\d+', '[\\0]' }}", "a[1]b[22]"),
        ("{{ 'x-y' | regex_replace: '-', '\\n' }}", "x\ny"),
        ("{{ message.name | regex_extract: '(\\w+)\\.', 1 }}", "A"),
        ("{{ message.data | json }}", '{"list":[1,"two"],"ok":true}'),
        ("{{ 'hello' | md5 }}", hashlib.md5(b"hello").hexdigest()),
        ("{{ 'hello' | sha1 }}", hashlib.sha1(b"hello").hexdigest()),
        ("{{ 'hello' | sha256 }}", hashlib.sha256(b"hello").hexdigest()),
        ("{{ 'msg' | hmac_sha256: 'key' }}", hmac.new(b"key", b"msg", "sha256").hexdigest()),
        ("{{ 'hi!' | hex_encode }}", "686921"),
        ("{{ '686921' | hex_decode }}", "hi!"),
        ("{{ message.entity | unescape }}", "<b> & 'q'"),
        ("{{ 'plain' | to_xpath }}", '"plain"'),
        ("{{ 'it\"s' | to_xpath }}", 'concat("it", \'"s\')'),
        (
            "{{ message.html | rebase_hrefs: 'https://site.example/dir/page' }}",
            "<p><a href=\"https://site.example/a\">a</a> <img src='https://site.example/dir/b.png'>"
            ' <a href="https://o.example/">o</a></p>',
        ),
        ("one{% line_break %}two", "one\ntwo"),
        ("{% credential api_token %}", "tok-123"),
    ],
)
def test_huginn_filters_and_tags(template: str, expected: str) -> None:
    context = {**CONTEXT, CREDENTIALS_KEY: {"api_token": "tok-123"}}
    assert render(template, context) == expected


def test_as_object_hands_on_the_value_itself() -> None:
    assert render({"v": "{{ message.data | as_object | json }}"}, CONTEXT) == {
        "v": '{"list":[1,"two"],"ok":true}'
    }


def test_a_bad_pattern_or_a_missing_credential_is_a_clear_template_error() -> None:
    with pytest.raises(TemplateError, match="invalid regular expression"):
        render("{{ 'x' | regex_replace: '(', 'y' }}", CONTEXT)
    with pytest.raises(TemplateError, match="no credential named 'nope'"):
        render("{% credential nope %}", CONTEXT)


def test_credential_names_are_found_in_nested_options_once_each() -> None:
    options = {
        "headers": {"Authorization": "Bearer {% credential api %}"},
        "body": ["{%- credential other -%}", "{% credential api %}"],
    }
    assert credential_names(options) == ["api", "other"]


def test_options_using_huginn_filters_pass_validation() -> None:
    validate_options(
        "transform",
        {"payload": {"q": "{{ message.q | uri_escape }}", "k": "{% credential api %}"}},
    )
    with pytest.raises(ValidationFailed):
        validate_options("transform", {"payload": {"q": "{% credential %}"}})


async def test_the_engine_resolves_a_credential_tag_for_the_run_only(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    account = await factory.account()
    await server.gql(
        'mutation { createCredential(input: {name: "api_token", value: "tok-123"}) { id } }',
        token=account.token,
    )
    workflow = await create_workflow(
        server,
        account.token,
        "credential tag",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "call",
                "type": "http_request",
                "sources": ["start"],
                "options": {
                    "url": f"{target.url}/hook?q={{{{ message.q | uri_escape }}}}",
                    "headers": {"X-Token": "{% credential api_token %}"},
                },
            },
            {
                "name": "leak",
                "type": "transform",
                "sources": ["call"],
                "options": {"payload": {"context": "{{ message }}"}},
            },
        ],
    )
    process = await execute(server, account.token, workflow["id"], {"q": "a b"})
    assert process["status"] == "COMPLETED", process
    [call] = target.hits("/hook")
    assert call["headers"]["x-token"] == "tok-123"
    detail = await process_detail(server, account.token, process["id"])
    assert "tok-123" not in str(detail)


async def test_a_credential_tag_naming_no_credential_fails_the_step_clearly(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "missing credential",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "call",
                "type": "http_request",
                "sources": ["start"],
                "options": {
                    "url": f"{target.url}/hook",
                    "headers": {"X-Token": "{% credential nope %}"},
                },
            },
        ],
    )
    process = await execute(server, account.token, workflow["id"], {})
    assert process["status"] == "FAILED"
    assert "nope" in process["error"]
    assert target.hits("/hook") == []
