"""event_formatting, liquid_output, json_parse and csv with real inputs (real CSV text)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from flowql.agents.base import StepFailed
from flowql.agents.registry import REGISTRY, validate_options
from flowql.errors import ValidationFailed
from tests.agents.conftest import RunAgent

WEATHER = {
    "high": {"celsius": "18", "fahrenheit": "64"},
    "date": {"epoch": "1357959600", "pretty": "10:00 PM EST on January 11, 2013"},
    "conditions": "Rain showers",
    "data": "This is some data",
}


def test_text_agents_are_local() -> None:
    for name in ("trigger", "event_formatting", "liquid_output", "json_parse", "csv"):
        assert REGISTRY[name].local, name
    for name in ("website", "http_status", "post", "rss"):
        assert not REGISTRY[name].local, name


# --- event_formatting ----------------------------------------------------------------------------


async def test_event_formatting_clean_and_merge(run_agent: RunAgent) -> None:
    instructions = {
        "message": "Today: {{ conditions }}, high {{ high.celsius }}C",
        "subject": "{{ message.data }}",
    }
    clean = await run_agent("event_formatting", {"instructions": instructions}, WEATHER)
    assert clean.emit == [
        {"message": "Today: Rain showers, high 18C", "subject": "This is some data"}
    ]
    options = {"instructions": instructions, "mode": "merge"}
    merged = await run_agent("event_formatting", options, WEATHER)
    assert merged.emit == [{**WEATHER, **clean.emit[0]}]


async def test_event_formatting_matchers(run_agent: RunAgent) -> None:
    options = {
        "instructions": {
            "at": "{{ pretty_date.time }}",
            "whole": "{{ pretty_date['0'] }}",
            "first": "{{ pretty_date['1'] }}",
            "month": "{{ month }}",
        },
        "matchers": [
            {
                "path": "{{ date.pretty }}",
                "regexp": "\\A(?<time>\\d\\d:\\d\\d [AP]M [A-Z]+)",
                "to": "pretty_date",
            },
            {"path": "{{ date.pretty }}", "regexp": "on (?<month>\\w+)"},
            {"path": "{{ conditions }}", "regexp": "snow", "to": "never"},
        ],
    }
    outcome = await run_agent("event_formatting", options, WEATHER)
    assert outcome.emit == [
        {
            "at": "10:00 PM EST",
            "whole": "10:00 PM EST",
            "first": "10:00 PM EST",
            "month": "January",
        }
    ]


async def test_activeworkflow_message_formatting_is_the_same_agent(run_agent: RunAgent) -> None:
    from flowql.formats.huginn import flowql_type

    assert flowql_type("Agents::MessageFormattingAgent") == "message_formatting"
    options = {"instructions": {"m": "{{ conditions }}"}, "mode": "merge"}
    outcome = await run_agent("message_formatting", options, {"conditions": "dry"})
    assert outcome.emit == [{"conditions": "dry", "m": "dry"}]


async def test_event_formatting_mode_may_be_a_template(run_agent: RunAgent) -> None:
    options = {
        "instructions": {"x": "1"},
        "mode": "{% if keep %}merge{% else %}clean{% endif %}",
    }
    assert (await run_agent("event_formatting", options, {"keep": True})).emit == [
        {"keep": True, "x": "1"}
    ]
    assert (await run_agent("event_formatting", options, {"keep": False})).emit == [{"x": "1"}]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "instructions"),
        ({"instructions": {}}, "instructions"),
        ({"instructions": {"a": "b"}, "mode": "replace"}, "clean"),
        ({"instructions": {"a": "b"}, "matchers": [{"path": "p", "regexp": "("}]}, "regular"),
        ({"instructions": {"a": "b"}, "matchers": [{"regexp": "a"}]}, "path"),
        ({"instructions": {"a": "{{ x "}}, "Liquid"),
    ],
)
def test_event_formatting_invalid_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_options("event_formatting", options)
    assert message in json.dumps(caught.value.fields)


# --- liquid_output -------------------------------------------------------------------------------


async def test_liquid_output_last_event_and_merge(run_agent: RunAgent) -> None:
    options = {"secret": "s3cret", "content": "{{ a }}-{{ c }}-{{ e }}", "mime_type": "text/plain"}
    memory: dict[str, Any] = {}
    await run_agent("liquid_output", options, {"a": "b", "c": "d"}, memory=memory)
    last = await run_agent("liquid_output", options, {"a": "bb", "e": "f"}, memory=memory)
    assert last.emit == [{"content": "bb--f", "mime_type": "text/plain", "response_headers": {}}]

    merge = {**options, "mode": "Merge events", "response_headers": {"X-A": "1"}}
    memory = {}
    await run_agent("liquid_output", merge, {"a": "b", "c": "d"}, memory=memory)
    merged = await run_agent("liquid_output", merge, {"a": "bb", "e": "f"}, memory=memory)
    assert merged.emit[0]["content"] == "bb-d-f"
    assert merged.emit[0]["response_headers"] == {"X-A": "1"}
    # A scheduled run renders what it has without changing it.
    again = await run_agent("liquid_output", merge, mode="check", memory=memory)
    assert again.emit[0]["content"] == "bb-d-f"


async def test_liquid_output_last_x_events(run_agent: RunAgent) -> None:
    options = {
        "secret": "s",
        "mode": "Last X messages",
        "message_limit": "2",
        "content": "{% for m in messages %}{{ m.title }};{% endfor %}",
    }
    memory: dict[str, Any] = {}
    for title in ("one", "two", "three"):
        outcome = await run_agent("liquid_output", options, {"title": title}, memory=memory)
    assert outcome.emit[0]["content"] == "three;two;"
    assert len(memory["events"]) == 2
    by_age = {**options, "message_limit": "1 day", "content": "{{ events | size }}"}
    memory["events"][1]["at"] = "2000-01-01T00:00:00+00:00"
    aged = await run_agent("liquid_output", by_age, mode="check", memory=memory)
    assert aged.emit[0]["content"] == "1"


async def test_liquid_output_line_break_is_lf(run_agent: RunAgent) -> None:
    options = {"secret": "s", "content": "a\r\nb {{ x }}\r\n"}
    crlf = await run_agent("liquid_output", options, {"x": 1})
    assert crlf.emit[0]["content"] == "a\r\nb 1\r\n"
    lf = await run_agent("liquid_output", {**options, "line_break_is_lf": "true"}, {"x": 1})
    assert lf.emit[0]["content"] == "a\nb 1\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"content": "x"}, "secret"),
        ({"secret": "a/b"}, "slash or dot"),
        ({"secret": "s", "mode": "Every event"}, "Last event in"),
        ({"secret": "s", "event_limit": "1001"}, "1000"),
        ({"secret": "s", "event_limit": "ten"}, "count"),
    ],
)
def test_liquid_output_invalid_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_options("liquid_output", options)
    assert message in json.dumps(caught.value.fields)


# --- json_parse ----------------------------------------------------------------------------------


async def test_json_parse(run_agent: RunAgent) -> None:
    payload = {"data": '{"a": [1, 2], "b": {"c": true}}'}
    outcome = await run_agent("json_parse", {"data": "{{ data }}"}, payload)
    assert outcome.emit == [{"data": {"a": [1, 2], "b": {"c": True}}}]
    keyed = {"data": "{{ message.raw }}", "data_key": "parsed"}
    assert (await run_agent("json_parse", keyed, {"raw": "[1]"})).emit == [{"parsed": [1]}]
    merged = {"data": "{{ raw }}", "data_key": "parsed", "mode": "merge"}
    assert (await run_agent("json_parse", merged, {"raw": "{}", "k": 1})).emit == [
        {"raw": "{}", "k": 1, "parsed": {}}
    ]
    with pytest.raises(StepFailed, match="could not parse JSON"):
        await run_agent("json_parse", {"data": "{{ data }}"}, {"data": "{nope"})
    with pytest.raises(ValidationFailed):
        validate_options("json_parse", {"data": "", "data_key": ""})


# --- csv -----------------------------------------------------------------------------------------

PEOPLE = 'name,age,city\nAda,36,"London, UK"\nAlan,41,"Wilmslow"\n'


async def test_csv_parse_rows_with_header(run_agent: RunAgent) -> None:
    options = {"mode": "parse", "with_header": "true", "data_path": "$.data"}
    outcome = await run_agent("csv", options, {"data": PEOPLE})
    assert outcome.emit == [
        {"data": {"name": "Ada", "age": "36", "city": "London, UK"}},
        {"data": {"name": "Alan", "age": "41", "city": "Wilmslow"}},
    ]


async def test_csv_parse_per_file_use_fields_and_separator(run_agent: RunAgent) -> None:
    tsv = "name\tage\tcity\nAda\t36\tLondon\n"
    options = {
        "mode": "parse",
        "with_header": True,
        "separator": "\\t",
        "use_fields": "city, name",
        "output": "event_per_file",
        "data_path": "file.text",
        "data_key": "people",
    }
    outcome = await run_agent("csv", options, {"file": {"text": tsv}})
    assert outcome.emit == [{"people": [{"city": "London", "name": "Ada"}]}]


async def test_csv_parse_without_header(run_agent: RunAgent) -> None:
    options = {"with_header": "false", "output": "message_per_file"}
    outcome = await run_agent("csv", options, {"data": PEOPLE})
    assert outcome.emit == [
        {
            "data": [
                ["name", "age", "city"],
                ["Ada", "36", "London, UK"],
                ["Alan", "41", "Wilmslow"],
            ]
        }
    ]
    with pytest.raises(StepFailed, match="no CSV text"):
        await run_agent("csv", options, {"other": 1})


async def test_csv_serialize_round_trips(run_agent: RunAgent) -> None:
    rows = [
        {"name": "Ada", "age": 36, "city": "London, UK", "admin": True},
        {"name": 'Al "the" n', "age": 41, "city": None, "admin": False},
    ]
    options = {"mode": "serialize", "with_header": "true", "data_path": "$.rows"}
    [emitted] = (await run_agent("csv", options, {"rows": rows})).emit
    text = emitted["data"]
    assert text.splitlines()[0] == '"name","age","city","admin"'
    assert text.splitlines()[1] == '"Ada","36","London, UK","true"'
    assert list(csv.DictReader(io.StringIO(text))) == [
        {"name": "Ada", "age": "36", "city": "London, UK", "admin": "true"},
        {"name": 'Al "the" n', "age": "41", "city": "", "admin": "false"},
    ]
    # Parsing the result gives the rows back (as strings).
    back = await run_agent("csv", {"with_header": "true"}, {"data": text})
    assert back.emit[0]["data"]["name"] == "Ada"

    fields = {**options, "use_fields": "city,name", "separator": ";", "data_key": "csv"}
    [emitted] = (await run_agent("csv", fields, {"rows": rows})).emit
    assert emitted["csv"] == '"city";"name"\n"London, UK";"Ada"\n"";"Al ""the"" n"\n'

    arrays = {"mode": "serialize", "with_header": "true", "data_path": "$.rows"}
    [emitted] = (await run_agent("csv", arrays, {"rows": [["a", 1], ["b", 2]]})).emit
    assert emitted["data"] == '"a","1"\n"b","2"\n'
    [emitted] = (await run_agent("csv", arrays, {"rows": {"k": "v"}})).emit
    assert emitted["data"] == '"k"\n"v"\n'


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "with_header"),
        ({"with_header": "perhaps"}, "true or false"),
        ({"with_header": "true", "mode": "convert"}, "parse or serialize"),
        ({"with_header": "true", "output": "event_per_cell"}, "event_per_row"),
        ({"with_header": "true", "mode": "serialize", "data_path": ""}, "data_path"),
        ({"with_header": "true", "separator": ";;"}, "one character"),
    ],
)
def test_csv_invalid_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_options("csv", options)
    assert message in json.dumps(caught.value.fields)


HUGINN_DEFAULTS: dict[str, dict[str, Any]] = {
    "website": {
        "expected_update_period_in_days": "2",
        "url": "https://xkcd.com",
        "type": "html",
        "mode": "on_change",
        "extract": {
            "url": {"css": "#comic img", "value": "@src"},
            "title": {"css": "#comic img", "value": "@alt"},
            "hovertext": {"css": "#comic img", "value": "@title"},
        },
    },
    "post": {
        "post_url": "http://www.example.com",
        "expected_receive_period_in_days": 1,
        "content_type": "form",
        "method": "post",
        "payload": {"key": "value", "something": "the event contained {{ somekey }}"},
        "headers": {},
        "emit_events": False,
        "parse_body": True,
        "no_merge": True,
        "output_mode": "clean",
        "require_signed_file_pointer": True,
    },
    "http_status": {"url": "http://google.com", "disable_redirect_follow": True},
    "rss": {
        "expected_update_period_in_days": 5,
        "clean": False,
        "url": "https://github.com/huginn/huginn/commits/master.atom",
    },
    "trigger": {
        "expected_receive_period_in_days": 2,
        "keep_event": False,
        "rules": [{"type": "regex", "value": "foo\\d+bar", "path": "topkey.subkey.subkey.goal"}],
        "message": "Looks like your pattern matched in '{{value}}'!",
    },
    "event_formatting": {
        "instructions": {
            "message": "You received a text {{text}} from {{fields.from}}",
            "agent": "{{agent.type}}",
        },
        "matchers": [],
        "mode": "clean",
    },
    "liquid_output": {
        "secret": "a-secret-key",
        "expected_receive_period_in_days": 2,
        "mime_type": "text/html",
        "mode": "Last X Events",
        "event_limit": "",
        "content": "{% for event in events %}{{ event.title }}{% endfor %}",
    },
    "json_parse": {"data": "{{ data }}", "data_key": "data", "mode": "clean"},
    "csv": {
        "mode": "parse",
        "separator": ",",
        "use_fields": "",
        "output": "event_per_row",
        "with_header": "true",
        "data_path": "$.data",
        "data_key": "data",
    },
}


@pytest.mark.parametrize("agent_type", sorted(HUGINN_DEFAULTS))
def test_huginn_default_options_are_valid(agent_type: str) -> None:
    validate_options(agent_type, HUGINN_DEFAULTS[agent_type])
