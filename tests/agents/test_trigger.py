"""The trigger agent: rules (regex, !regex, comparisons, not in), must_match, keep_event,
message templates, and option validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowql.agents.registry import validate_options
from flowql.errors import ValidationFailed
from tests.agents.conftest import RunAgent


def rule(kind: str, value: Any, path: str = "v") -> dict[str, Any]:
    return {"type": kind, "value": value, "path": path}


@pytest.mark.parametrize(
    ("kind", "value", "found", "matches"),
    [
        ("regex", "foo\\d+bar", "xxFOO12barxx", True),  # case-insensitive
        ("regex", "(?-i)foo", "FOO", False),  # (?-i) makes it case-sensitive
        ("regex", "^b", "a\nb", True),  # ^ matches at every line, as in Ruby
        ("regex", "^(?<w>\\w+)$", "word", True),
        ("!regex", "foo", "bar", True),
        ("!regex", "foo", "a foo", False),
        ("field<value", "10", "9.5", True),
        ("field<value", "10", "10", False),
        ("field<=value", "10", 10, True),
        ("field>value", "10", "12abc", True),  # Ruby to_f: the leading number
        ("field>value", "-1", "abc", True),  # non-numbers count as 0
        ("field>=value", 3, "3.0", True),
        ("field==value", "5", 5, True),
        ("field==value", "5", "5.0", False),  # compared as strings
        ("field!=value", "a", "b", True),
        ("field!=value", "a", "a", False),
        ("not in", ["a", "b"], "c", True),
        ("not in", ["a", "b"], "a", False),
        ("field==value", ["x", "y"], "y", True),  # any item of a list
        ("regex", ["^no", "es$"], "yes", True),
        ("field==value", "", None, None),
    ],
)
async def test_rule_types(
    run_agent: RunAgent, kind: str, value: Any, found: Any, matches: bool | None
) -> None:
    options = {"rules": [rule(kind, value)], "message": "hit"}
    if matches is None:
        with pytest.raises(ValidationFailed):
            validate_options("trigger", options)
        return
    outcome = await run_agent("trigger", options, {"v": found})
    assert outcome.emit == ([{"message": "hit"}] if matches else [])


async def test_paths_are_jsonpath(run_agent: RunAgent) -> None:
    options = {
        "rules": [rule("regex", "goal", "topkey.subkey.items[1].name")],
        "message": "Looks like your pattern matched in '{{ value }}' for {{ message.who }}!",
    }
    payload = {"topkey": {"subkey": {"items": [{"name": "x"}, {"name": "my goal"}]}}}
    outcome = await run_agent("trigger", options, {**payload, "value": "v1", "who": "Ada"})
    assert outcome.emit == [{"message": "Looks like your pattern matched in 'v1' for Ada!"}]
    assert (await run_agent("trigger", options, {"topkey": {}})).emit == []  # missing path


async def test_all_rules_must_match_unless_must_match(run_agent: RunAgent) -> None:
    rules = [rule("field>value", "10", "a"), rule("regex", "x", "b"), rule("regex", "y", "c")]
    payload = {"a": 11, "b": "x", "c": "z"}
    assert (await run_agent("trigger", {"rules": rules, "message": "m"}, payload)).emit == []
    two = {"rules": rules, "message": "m", "must_match": "2"}
    assert (await run_agent("trigger", two, payload)).emit == [{"message": "m"}]
    three = {"rules": rules, "message": "m", "must_match": 3}
    assert (await run_agent("trigger", three, payload)).emit == []


async def test_keep_event_re_emits_the_message(run_agent: RunAgent) -> None:
    options = {"rules": [rule("regex", "a")], "keep_event": "true"}
    assert (await run_agent("trigger", options, {"v": "a", "n": 1})).emit == [{"v": "a", "n": 1}]
    with_message = {**options, "message": "seen {{ v }}"}
    assert (await run_agent("trigger", with_message, {"v": "a"})).emit == [
        {"v": "a", "message": "seen a"}
    ]
    # ActiveWorkflow's name for it.
    aw = {"rules": [rule("regex", "a")], "keep_message": True}
    assert (await run_agent("trigger", aw, {"v": "a"})).emit == [{"v": "a"}]


async def test_rule_values_are_templates(run_agent: RunAgent) -> None:
    options = {"rules": [rule("field>value", "{{ threshold }}", "amount")], "message": "over"}
    assert (await run_agent("trigger", options, {"amount": 12, "threshold": 10})).emit
    assert not (await run_agent("trigger", options, {"amount": 8, "threshold": 10})).emit


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"message": "m"}, "rules"),
        ({"rules": [], "message": "m"}, "rules"),
        ({"rules": [rule("like", "a")], "message": "m"}, "type must be one of"),
        ({"rules": [{"type": "regex", "value": "a"}], "message": "m"}, "path"),
        ({"rules": [rule("regex", "(")], "message": "m"}, "regular expression"),
        ({"rules": [rule("regex", "a")]}, "message is required"),
        ({"rules": [rule("regex", "a")], "keep_event": "maybe"}, "true or false"),
        ({"rules": [rule("regex", "a")], "message": "m", "must_match": 0}, "positive"),
        ({"rules": [rule("regex", "a")], "message": "m", "must_match": 2}, "at most"),
    ],
)
def test_invalid_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_options("trigger", options)
    assert message in json.dumps(caught.value.fields)


async def test_huginn_agents_run_in_a_workflow(server: Any, factory: Any) -> None:
    """Through the engine: webhook -> trigger -> event_formatting -> json_parse -> post, with
    the post target a real loopback server."""
    from tests.agents.loopback import Loopback
    from tests.engine.conftest import create_workflow, wait_status

    target = Loopback()
    target.start()
    try:
        url = target.serve("/hook", '{"ok": true}', content_type="application/json")
        account = await factory.account()
        workflow = await create_workflow(
            server,
            account.token,
            "huginn",
            [
                {"name": "inbox", "type": "webhook", "options": {"path": "in"}},
                {
                    "name": "big",
                    "type": "trigger",
                    "sources": ["inbox"],
                    "options": {
                        "rules": [{"type": "field>=value", "value": "100", "path": "amount"}],
                        "keep_event": "true",
                    },
                },
                {
                    "name": "shape",
                    "type": "event_formatting",
                    "sources": ["big"],
                    "options": {
                        "instructions": {"text": "{{ who }} paid {{ amount }}", "raw": "[1, 2]"},
                        "matchers": [{"path": "{{ who }}", "regexp": "^(?<first>\\w+)"}],
                        "mode": "clean",
                    },
                },
                {
                    "name": "parse",
                    "type": "json_parse",
                    "sources": ["shape"],
                    "options": {"data": "{{ raw }}", "data_key": "items", "mode": "merge"},
                },
                {
                    "name": "send",
                    "type": "post",
                    "sources": ["parse"],
                    "options": {"post_url": url, "content_type": "json", "no_merge": "false"},
                },
            ],
        )
        response = await server.client.post(
            f"/hooks/{workflow['id']}/in", json={"who": "Ada Lovelace", "amount": 250}
        )
        assert response.status_code == 202
        process_id = response.json()["process_id"]
        detail = await wait_status(server, account.token, process_id, {"COMPLETED", "FAILED"})
        assert detail["status"] == "COMPLETED", detail
        [sent] = [r for r in target.requests if r.path == "/hook"]
        assert json.loads(sent.body) == {
            "text": "Ada Lovelace paid 250",
            "raw": "[1, 2]",
            "items": [1, 2],
        }
    finally:
        target.stop()
