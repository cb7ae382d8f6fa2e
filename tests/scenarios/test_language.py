"""LetsFlow's language without a database: JMESPath extensions, YAML tags, normalisation."""

from __future__ import annotations

import json

import pytest

from flowql.services.scenarios.expressions import apply_fn, render_template, search
from flowql.services.scenarios.loader import LoadError, dump_yaml, parse_yaml
from flowql.services.scenarios.normalize import normalize, parse_period
from flowql.services.scenarios.validate import check
from tests.scenarios.conftest import DATA

PROCESS = {
    "id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "actors": {"person_1": {"name": "Bob"}, "person_2": {"name": None}},
    "current": {"response": ["a", "b"]},
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("16 + 26", 42),
        ("length(current.response) + 1", 3),
        ("values(actors)[?name == null] | length(@) == 0", False),
        ("values(actors)[?name == null] | length(@) >= 1", True),
        ("current.response[-1]", "b"),
        ("10 - 2 * 3", 4),
        ("7 // 2", 3),
        ("7 % 4", 3),
        ("-length(current.response)", -2),
        ("$.id", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
        ("current.response | [0] | $.actors.person_1.name", "Bob"),
        (
            "current.response | to_object(zip(range(1, length(@) + 1, 'person_'), @))",
            {"person_1": "a", "person_2": "b"},
        ),
        ("if(actors.person_1.name, 'known', 'unknown')", "known"),
        ("uuid('customer', $.id)", "9a1b4a2a-0b4b-5e6f-8a54-1f6b7bd9c6b6"),
        ("sha256('hello')", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
        ("json_parse(json_serialize({b: `1`, a: `2`}))", {"a": 2, "b": 1}),
        ("regex_test('/^hello/i', 'HELLO world')", True),
        ("regex_replace('/world/', 'universe', 'hello world')", "hello universe"),
        (
            "regex_match_all('/(\\\\w+)=(\\\\d+)/g', 'foo=24 bar=99')",
            [["foo=24", "foo", "24"], ["bar=99", "bar", "99"]],
        ),
    ],
)
def test_letsflow_jmespath(expression: str, expected: object) -> None:
    if expression.startswith("uuid("):
        import uuid

        expected = str(uuid.uuid5(uuid.UUID(PROCESS["id"]), "customer"))
    assert search(expression, PROCESS) == expected


def test_templates_are_not_html_escaped_and_show_javascript_values() -> None:
    view = {"name": "Eve", "line": "It's <cold>", "flag": True, "none": None}
    assert (
        render_template("{{ name }}: {{ line }} {{flag}}{{none}}", view) == "Eve: It's <cold> true"
    )


def test_select_picks_an_option_by_value() -> None:
    fn = {"<select>": {"$": {"<ref>": "a == null"}, "true": "missing", "*": {"<tpl>": "a={{a}}"}}}
    assert apply_fn(fn, {}) == "missing"
    assert apply_fn(fn, {"a": 1}) == "a=1"


def test_yaml_follows_yaml_1_2_and_letsflow_tags() -> None:
    data = parse_yaml(
        """
base: &base {title: Base, on: go}
actions:
  a:
    <<: *base
    title: Merged
    when: !ref current.actor
    text: !tpl 'Hi {{ name }}'
    version: 010
schema:
  properties:
    name: !required string
    email: !format email
    active: !default true
    kind: !enum [a, b]
    pick: !select {$: !ref x, true: yes, false: no}
"""
    )
    action = data["actions"]["a"]
    assert action["on"] == "go" and action["title"] == "Merged"
    assert action["when"] == {"<ref>": "current.actor"}
    assert action["text"] == {"<tpl>": "Hi {{ name }}"}
    assert action["version"] == 10
    props = data["schema"]["properties"]
    assert props["name"] == {"type": "string", "!required": True}
    assert props["email"] == {"type": "string", "format": "email"}
    assert props["active"] == {"type": "boolean", "default": True}
    assert props["kind"] == {"type": "string", "enum": ["a", "b"]}
    assert props["pick"] == {"<select>": {"$": {"<ref>": "x"}, "true": "yes", "false": "no"}}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("a: !eval x\n", "unsupported tag !eval"),
        ("", "non-empty"),
    ],
)
def test_yaml_problems_are_named(text: str, problem: str) -> None:
    with pytest.raises(LoadError, match=problem):
        parse_yaml(text)


@pytest.mark.parametrize(
    "name", ["basics", "handshake", "conversation", "introduction", "meeting", "quote", "approval"]
)
def test_normalising_is_idempotent_through_yaml_and_json(name: str) -> None:
    normalized = check(parse_yaml((DATA / f"{name}.yaml").read_text())).scenario
    assert normalize(normalized).scenario == normalized
    assert check(parse_yaml(dump_yaml(normalized))).scenario == normalized
    assert check(json.loads(json.dumps(normalized))).scenario == normalized


def test_required_marks_join_the_parent_and_properties_close_the_object() -> None:
    scenario = check(parse_yaml((DATA / "introduction.yaml").read_text())).scenario
    response = scenario["actions"]["introduce"]["response"]
    assert response["required"] == ["name", "organization"]
    assert response["additionalProperties"] is False
    assert scenario["actions"]["talk"]["response"] == {"type": "string"}
    meeting = check(parse_yaml((DATA / "meeting.yaml").read_text())).scenario
    person = meeting["actions"]["start"]["response"]["patternProperties"]["^person_.*$"]
    assert person["type"] == ["object", "null"]


@pytest.mark.parametrize(
    ("period", "seconds"),
    [("10 minutes", 600), ("1 week", 604800), ("24 hours", 86400), ("10 days", 864000), (30, 30)],
)
def test_periods(period: object, seconds: int) -> None:
    assert parse_period(period) == seconds


def test_required_outside_a_property_is_refused_by_name() -> None:
    from flowql.errors import ValidationFailed

    text = "result: !required string\nstates:\n  initial:\n    on: go\n    goto: (done)\n"
    with pytest.raises(ValidationFailed) as refused:
        check(parse_yaml(text))
    assert refused.value.fields == {
        "definition.result": "`!required` marks a property of an object; it has none here"
    }
