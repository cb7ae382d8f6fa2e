"""Huginn's and ActiveWorkflow's local message agents: trigger (rules over a message),
event_formatting (instructions and regexp matchers), liquid_output (a page rendered from what it
received), json_parse and csv (parse and serialize). None of them does I/O."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowql.agents.base import AgentRun, AgentType, Kind, Options, Outcome, StepFailed
from flowql.agents.huginnlib import (
    boolify,
    check_boolish,
    is_template,
    ruby_regex,
    ruby_to_f,
    ruby_to_s,
    value_at,
    values_at,
)
from flowql.agents.templating import TemplateError, render
from flowql.models import utcnow

# --- trigger -------------------------------------------------------------------------------------

COMPARISONS = (
    "regex",
    "!regex",
    "field<value",
    "field<=value",
    "field==value",
    "field!=value",
    "field>=value",
    "field>value",
    "not in",
)


class TriggerRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(description=", ".join(COMPARISONS))
    value: str | int | float | list[str | int | float] = Field(
        description="What to compare with; with a list, any item may match"
    )
    path: str = Field(min_length=1, description="JSONPath into the message, e.g. topkey.goal")

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in COMPARISONS and not is_template(value):
            raise ValueError(f"type must be one of {', '.join(COMPARISONS)}")
        return value

    @field_validator("value")
    @classmethod
    def _value(cls, value: Any) -> Any:
        if value == "" or value == []:
            raise ValueError("value is required")
        return value

    @model_validator(mode="after")
    def _regex(self) -> TriggerRule:
        if self.type in ("regex", "!regex"):
            for item in self.value if isinstance(self.value, list) else [self.value]:
                if not is_template(item):
                    ruby_regex(str(item), ignore_case=True)
        return self


class TriggerOptions(Options):
    rules: list[TriggerRule] = Field(min_length=1)
    message: str | None = Field(default=None, description="The emitted `message` (a template)")
    keep_event: bool | str | None = Field(
        default=None, description="Re-emit the incoming message (with `message` when given)"
    )
    keep_message: bool | str | None = None
    must_match: int | str | None = Field(
        default=None, description="How many rules must match (default: all)"
    )
    expected_receive_period_in_days: int | str | None = None

    @field_validator("keep_event", "keep_message")
    @classmethod
    def _boolish(cls, value: Any) -> Any:
        return check_boolish(value, "keep_event")

    @model_validator(mode="after")
    def _consistent(self) -> TriggerOptions:
        keep = self.keep_event if self.keep_event is not None else self.keep_message
        if not self.message and not boolify(keep) and not is_template(keep):
            raise ValueError("message is required unless keep_event is true")
        if self.must_match not in (None, "") and not is_template(self.must_match):
            try:
                count = int(str(self.must_match))
            except ValueError:
                raise ValueError("must_match must be a positive integer") from None
            if count < 1:
                raise ValueError("must_match must be a positive integer")
            if count > len(self.rules):
                raise ValueError("must_match must be at most the number of rules")
        return self


def _rule_matches(kind: str, found: Any, expected: list[Any]) -> bool:
    text = ruby_to_s(found)
    if kind == "not in":
        return text not in [ruby_to_s(v) for v in expected]
    if kind == "field==value":
        return text in [ruby_to_s(v) for v in expected]
    for item in expected:
        if kind in ("regex", "!regex"):
            try:
                hit = ruby_regex(str(item), ignore_case=True).search(text) is not None
            except ValueError as exc:
                raise StepFailed(str(exc)) from None
            if hit == (kind == "regex"):
                return True
        elif kind == "field!=value":
            if text != ruby_to_s(item):
                return True
        else:
            left, right = ruby_to_f(found), ruby_to_f(item)
            if {
                "field>value": left > right,
                "field>=value": left >= right,
                "field<value": left < right,
                "field<=value": left <= right,
            }.get(kind, False):
                return True
            if kind not in ("field>value", "field>=value", "field<value", "field<=value"):
                raise StepFailed(f"invalid rule type {kind!r}")
    return False


async def trigger(run: AgentRun) -> Outcome:
    options = run.options()
    results = []
    for rule in options.get("rules") or []:
        expected = rule.get("value")
        found = value_at(run.payload, str(rule.get("path") or ""))
        items = expected if isinstance(expected, list) else [expected]
        results.append(_rule_matches(str(rule.get("type")), found, items))
    must = str(options.get("must_match") or "").strip()
    if must and not must.isdigit():
        raise StepFailed(f"must_match must be a positive integer, not {must!r}")
    matched = sum(results) >= int(must) if must else all(results)
    if not matched:
        return Outcome(logs=[f"{sum(results)} of {len(results)} rule(s) matched: no message"])
    keep = options.get("keep_event", options.get("keep_message"))
    text = options.get("message")
    if boolify(keep):
        payload = dict(run.payload)
        if text:
            payload["message"] = text
    else:
        payload = {"message": text}
    return Outcome(emit=[payload], logs=[f"{sum(results)} of {len(results)} rule(s) matched"])


# --- event_formatting ----------------------------------------------------------------------------


class Matcher(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, description="A template giving the text to match")
    regexp: str = Field(min_length=1)
    to: str | None = Field(default=None, description="Key to put the match data under")

    @field_validator("regexp")
    @classmethod
    def _regexp(cls, value: str) -> str:
        ruby_regex(value)
        return value


class EventFormattingOptions(Options):
    instructions: dict[str, Any] = Field(min_length=1, description="The keys to emit (templates)")
    matchers: list[Matcher] = Field(default_factory=list)
    mode: str = Field(default="clean", description="clean, or merge to keep the original keys")
    skip_created_at: bool | str | None = None

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("clean", "merge") and not is_template(value):
            raise ValueError("mode must be 'clean' or 'merge'")
        return value


def _apply_matchers(run: AgentRun, matchers: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = dict(run.payload)
    for matcher in matchers:
        try:
            subject = str(render(str(matcher["path"]), run.template_context(data)))
        except TemplateError as exc:
            raise StepFailed(f"matcher path: {exc}") from None
        try:
            match = ruby_regex(str(matcher["regexp"])).search(subject)
        except ValueError as exc:
            raise StepFailed(str(exc)) from None
        if match is None:
            continue
        target = matcher.get("to")
        if target:
            holder = data.get(target)
            if not isinstance(holder, dict):
                holder = {}
            holder = dict(holder)
            data[target] = holder
        else:
            holder = data
        holder["0"] = match.group(0)
        for index, group in enumerate(match.groups(), start=1):
            holder[str(index)] = group
        holder.update(match.groupdict())
    return data


async def event_formatting(run: AgentRun) -> Outcome:
    raw = run.agent.options
    data = _apply_matchers(run, list(raw.get("matchers") or []))
    context = run.template_context(data)
    context.setdefault("created_at", utcnow().isoformat())
    try:
        mode = str(render(raw.get("mode") or "clean", context)).strip()
        instructions = render(raw.get("instructions") or {}, context)
    except TemplateError as exc:
        raise StepFailed(f"instructions: {exc}") from None
    if mode not in ("clean", "merge"):
        raise StepFailed(f"mode must be 'clean' or 'merge', not {mode!r}")
    payload = dict(run.payload) if mode == "merge" else {}
    payload.update(instructions)
    return Outcome(emit=[payload])


# --- liquid_output -------------------------------------------------------------------------------

LIQUID_MODES = {
    "last event in": "last",
    "last message in": "last",
    "merge events": "merge",
    "merge messages": "merge",
    "last x events": "last_x",
    "last x messages": "last_x",
}
DATE_UNITS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
MAX_EVENTS = 1000


def _limit(value: Any) -> tuple[int, timedelta | None]:
    """`event_limit`: a count ("10") or an age ("2 days"); at most 1000 events either way."""
    text = str(value or "").strip()
    if not text:
        return MAX_EVENTS, None
    parts = text.split()
    if len(parts) == 2:
        count, unit = parts
        unit = unit.lower().removesuffix("s")
        if count.isdigit() and unit in DATE_UNITS:
            return MAX_EVENTS, timedelta(seconds=int(count) * DATE_UNITS[unit])
    if text.isdigit():
        return int(text), None
    raise ValueError('event_limit must be a count up to 1000 or an age such as "2 days"')


class LiquidOutputOptions(Options):
    secret: str = Field(min_length=1, description="Token the requester must give")
    content: str = Field(default="", description="The Liquid template of the page")
    mime_type: str = "text/html"
    response_headers: dict[str, str] = Field(default_factory=dict)
    line_break_is_lf: bool | str | None = Field(
        default=None, description="Use LF line breaks instead of CRLF"
    )
    mode: str = Field(
        default="Last event in", description="Last event in, Merge events or Last X events"
    )
    event_limit: int | str | None = None
    message_limit: int | str | None = None
    expected_receive_period_in_days: int | str | None = None

    @field_validator("line_break_is_lf")
    @classmethod
    def _lf(cls, value: Any) -> Any:
        return check_boolish(value, "line_break_is_lf")

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if "/" in value or "." in value:
            raise ValueError("secret may not contain a slash or dot")
        return value

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value.lower() not in LIQUID_MODES:
            raise ValueError("mode must be 'Last event in', 'Merge events' or 'Last X events'")
        return value

    @field_validator("event_limit", "message_limit")
    @classmethod
    def _limits(cls, value: Any) -> Any:
        count, _ = _limit(value)
        if count > MAX_EVENTS:
            raise ValueError("the limit cannot be greater than 1000 events")
        return value


def liquid_output_data(options: dict[str, Any], memory: dict[str, Any]) -> dict[str, Any]:
    """What the page's template sees: the last (or merged) message, or the last X messages."""
    mode = LIQUID_MODES.get(str(options.get("mode") or "last event in").lower(), "last")
    if mode != "last_x":
        last = memory.get("last_event")
        return dict(last) if isinstance(last, dict) else {}
    count, age = _limit(options.get("event_limit") or options.get("message_limit"))
    kept = list(memory.get("events") or [])
    if age is not None:
        since = (utcnow() - age).isoformat()
        kept = [item for item in kept if str(item.get("at", "")) > since]
    payloads = [item.get("payload") for item in kept[:count]]
    return {"events": payloads, "messages": payloads}


def render_liquid_output(options: dict[str, Any], memory: dict[str, Any]) -> dict[str, Any]:
    """The page as the agent serves it: {content, mime_type, response_headers}. A route that
    serves it checks `secret` first."""
    data = liquid_output_data(options, memory)
    try:
        content = str(render(str(options.get("content") or ""), {**data, "message": data}))
    except TemplateError as exc:
        raise StepFailed(f"content: {exc}") from None
    if boolify(options.get("line_break_is_lf")):
        content = content.replace("\r\n", "\n")
    return {
        "content": content,
        "mime_type": str(options.get("mime_type") or "text/html"),
        "response_headers": dict(options.get("response_headers") or {}),
    }


async def liquid_output(run: AgentRun) -> Outcome:
    options = run.agent.options
    mode = LIQUID_MODES.get(str(options.get("mode") or "last event in").lower(), "last")
    memory = run.memory
    if run.mode == "receive":
        if mode == "merge":
            memory["last_event"] = {**(memory.get("last_event") or {}), **run.payload}
        elif mode == "last":
            memory["last_event"] = dict(run.payload)
        else:
            count, _ = _limit(options.get("event_limit") or options.get("message_limit"))
            events = [{"payload": dict(run.payload), "at": utcnow().isoformat()}]
            events.extend(memory.get("events") or [])
            memory["events"] = events[: min(count, MAX_EVENTS)]
    page = render_liquid_output(options, memory)
    return Outcome(emit=[page], logs=[f"rendered {len(page['content'])} characters"])


# --- json_parse ----------------------------------------------------------------------------------


class JsonParseOptions(Options):
    data: str = Field(min_length=1, description="The JSON to parse (a template, e.g. {{ data }})")
    data_key: str = Field(default="data", min_length=1, description="Key of the parsed value")
    mode: str = Field(default="clean", description="clean, or merge to keep the message's keys")

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("clean", "merge") and not is_template(value):
            raise ValueError("mode must be 'clean' or 'merge'")
        return value


async def json_parse(run: AgentRun) -> Outcome:
    options = run.options()
    try:
        parsed = json.loads(str(options.get("data") or ""))
    except json.JSONDecodeError as exc:
        raise StepFailed(f"could not parse JSON: {exc}") from None
    base = dict(run.payload) if str(options.get("mode")) == "merge" else {}
    return Outcome(emit=[{**base, str(options.get("data_key") or "data"): parsed}])


# --- csv -----------------------------------------------------------------------------------------

CSV_OUTPUTS = ("event_per_row", "event_per_file", "message_per_row", "message_per_file")


class CsvOptions(Options):
    mode: str = Field(default="parse", description="parse or serialize")
    separator: str = Field(default=",", min_length=1, description='Field separator ("\\t": tab)')
    use_fields: str = Field(default="", description="Comma-separated fields to keep")
    output: str = Field(default="event_per_row", description="event_per_row or event_per_file")
    with_header: bool | str = Field(description="Whether the first line holds the field names")
    data_path: str = Field(default="$.data", description="JSONPath to the CSV text or the rows")
    data_key: str = Field(default="data", min_length=1)
    expected_receive_period_in_days: int | str | None = None
    require_signed_file_pointer: Any = None

    @field_validator("with_header")
    @classmethod
    def _header(cls, value: Any) -> Any:
        check_boolish(value, "with_header")
        if value == "":
            raise ValueError("with_header must be true or false")
        return value

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("parse", "serialize") and not is_template(value):
            raise ValueError("mode must be parse or serialize")
        return value

    @field_validator("output")
    @classmethod
    def _output(cls, value: str) -> str:
        if value not in CSV_OUTPUTS and not is_template(value):
            raise ValueError("output must be event_per_row or event_per_file")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CsvOptions:
        if self.mode == "serialize" and not self.data_path:
            raise ValueError("data_path is required when mode is serialize")
        if self.separator != "\\t" and len(self.separator) != 1 and not is_template(self.separator):
            raise ValueError("separator must be one character")
        return self


def _separator(options: dict[str, Any]) -> str:
    value = str(options.get("separator") or ",")
    if value in ("\\t", "\t"):
        return "\t"
    if len(value) != 1:
        raise StepFailed("separator must be one character")
    return value


def _fields(options: dict[str, Any]) -> list[str]:
    return [f.strip() for f in str(options.get("use_fields") or "").split(",") if f.strip()]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return ruby_to_s(value)


def _csv_parse(run: AgentRun, options: dict[str, Any]) -> list[dict[str, Any]]:
    found = values_at(run.payload, str(options.get("data_path") or "$.data"))
    text = found[0] if found else None
    if not isinstance(text, str):
        raise StepFailed(f"no CSV text at {options.get('data_path')!r} in the message")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_separator(options))
    header = boolify(options.get("with_header"))
    fields = _fields(options)
    try:
        rows = [row for row in reader if row]
    except csv.Error as exc:
        raise StepFailed(f"could not parse CSV: {exc}") from None
    parsed: list[Any] = []
    if header and rows:
        names, body = rows[0], rows[1:]
        for row in body:
            record = {
                name: (row[index] if index < len(row) else None) for index, name in enumerate(names)
            }
            if fields:
                record = {name: record[name] for name in fields if name in record}
            parsed.append(record)
    elif not header:
        parsed = rows
    key = str(options.get("data_key") or "data")
    if str(options.get("output") or "event_per_row").endswith("_per_file"):
        return [{key: parsed}]
    return [{key: row} for row in parsed]


def _csv_serialize(run: AgentRun, options: dict[str, Any]) -> dict[str, Any]:
    data = value_at(run.payload, str(options.get("data_path") or "$.data"))
    if isinstance(data, list) and data and isinstance(data[0], list | dict):
        rows = list(data)
    else:
        rows = [data]
    fields = _fields(options)
    out = io.StringIO()
    writer = csv.writer(
        out, delimiter=_separator(options), quoting=csv.QUOTE_ALL, lineterminator="\n"
    )
    if boolify(options.get("with_header")) and isinstance(rows[0], dict):
        writer.writerow(fields or list(rows[0].keys()))
    for row in rows:
        if isinstance(row, dict):
            values = [row.get(f) for f in fields] if fields else list(row.values())
        elif isinstance(row, list):
            values = row
        else:
            values = [row]
        writer.writerow([_cell(v) for v in values])
    return {str(options.get("data_key") or "data"): out.getvalue()}


async def csv_agent(run: AgentRun) -> Outcome:
    options = run.options()
    mode = str(options.get("mode") or "parse")
    if mode == "parse":
        emitted = _csv_parse(run, options)
        return Outcome(emit=emitted, logs=[f"parsed CSV into {len(emitted)} message(s)"])
    if mode == "serialize":
        return Outcome(emit=[_csv_serialize(run, options)])
    raise StepFailed(f"mode must be parse or serialize, not {mode!r}")


TYPES: tuple[AgentType, ...] = (
    AgentType(
        "trigger",
        Kind.ACTION,
        TriggerOptions,
        "Emit when the message matches rules (regex, !regex, field comparisons, not in)",
        trigger,
        local=True,
        emits="{message} or, with keep_event, the incoming message (with `message` set)",
        example={
            "expected_receive_period_in_days": 2,
            "keep_event": False,
            "rules": [
                {"type": "regex", "value": "foo\\d+bar", "path": "topkey.subkey.subkey.goal"}
            ],
            "message": "Looks like your pattern matched in '{{value}}'!",
        },
    ),
    AgentType(
        "event_formatting",
        Kind.ACTION,
        EventFormattingOptions,
        "Reshape a message with Liquid instructions and regexp matchers (clean or merge)",
        event_formatting,
        local=True,
        emits="The rendered instructions (merged over the message in merge mode)",
        example={
            "instructions": {
                "message": "You received a text {{text}} from {{fields.from}}",
                "agent": "{{agent.type}}",
            },
            "matchers": [],
            "mode": "clean",
        },
    ),
    AgentType(
        "message_formatting",
        Kind.ACTION,
        EventFormattingOptions,
        "ActiveWorkflow's name for event_formatting: reshape a message with instructions",
        event_formatting,
        local=True,
        emits="The rendered instructions (merged over the message in merge mode)",
        example={
            "instructions": {
                "message": "You received a text {{text}} from {{fields.from}}",
                "agent": "{{agent.type}}",
            },
            "matchers": [],
            "mode": "clean",
        },
    ),
    AgentType(
        "liquid_output",
        Kind.ACTION,
        LiquidOutputOptions,
        "Render a Liquid page from the last, merged or last X messages it received",
        liquid_output,
        local=True,
        emits="{content, mime_type, response_headers}: the rendered page",
        # The page's address is /liquid/{agent id}/{secret}: encrypted at rest, never shown.
        secret_options=("secret",),
        example={
            "secret": "a-secret-key",
            "expected_receive_period_in_days": 2,
            "mime_type": "text/html",
            "mode": "Last X Events",
            "event_limit": "",
            "content": "{% for event in events %}{{ event.title }}{% endfor %}",
        },
    ),
    AgentType(
        "json_parse",
        Kind.ACTION,
        JsonParseOptions,
        "Parse a JSON string from the message",
        json_parse,
        local=True,
        emits="{<data_key>: the parsed value}",
        example={"data": "{{ data }}", "data_key": "data", "mode": "clean"},
    ),
    AgentType(
        "csv",
        Kind.ACTION,
        CsvOptions,
        "Parse CSV text into rows, or serialize rows into CSV text",
        csv_agent,
        local=True,
        emits="{<data_key>: row} per row, {<data_key>: [rows]}, or {<data_key>: csv text}",
        example={
            "mode": "parse",
            "separator": ",",
            "use_fields": "",
            "output": "event_per_row",
            "with_header": "true",
            "data_path": "$.data",
            "data_key": "data",
        },
    ),
)
