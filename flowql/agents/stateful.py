"""ActiveWorkflow's and Huginn's stateful agents: they remember across runs (`run.memory`).

Huginn keeps message ids in memory and reads the messages back from its database; flowql keeps
the payloads themselves in memory (JSON), so every collection here is bounded. Agents that
"receive, then emit on schedule" (digest, buffer, gap_detector) store on "receive" and emit on
"check" (their own schedule fires).

Options hold Liquid over the flowql context (`{{ message.value }}`, not Huginn's `{{ value }}`);
agents that expose extra variables to their templates say so (`last_property`, `messages`).
Paths (`value_path`, `path`, ...) are the JSONPath subset Huginn users write: `count`,
`data.rate`, `.data.rate`, `$.data.rate`, `items[0].price`, `a['b c']`.

The `expected_*_period_in_days` options are accepted (imports carry them) and kept for the
agent's health view; they change nothing here.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Any, Literal

from pydantic import AliasChoices, ConfigDict, Field, model_validator

from flowql.agents.base import AgentRun, AgentType, Kind, Options, Outcome, StepFailed
from flowql.agents.templating import TemplateError, render
from flowql.models import utcnow

# The most messages one agent holds in memory (digest, buffer): beyond it the oldest go.
MAX_HELD_MESSAGES = 1000
# The most data points peak_detector keeps per group inside its window.
MAX_PEAK_POINTS = 10_000

_TOKEN = re.compile(r"""\[(\d+)\]|\[(?:'([^']*)'|"([^"]*)")\]|([^.\[\]]+)""")
_MISSING = object()


def value_at(data: Any, path: str) -> Any:
    """The value at a JSONPath-like `path` in `data` (None when absent)."""
    text = path.strip()
    text = text.removeprefix("$")
    found: Any = data
    for match in _TOKEN.finditer(text):
        index, quoted1, quoted2, name = match.groups()
        if index is not None:
            if isinstance(found, list) and -len(found) <= int(index) < len(found):
                found = found[int(index)]
            else:
                return None
            continue
        key = quoted1 if quoted1 is not None else quoted2 if quoted2 is not None else name
        if isinstance(found, dict):
            found = found.get(key, _MISSING)
            if found is _MISSING:
                return None
        elif isinstance(found, list) and key.isdigit() and int(key) < len(found):
            found = found[int(key)]
        else:
            return None
    return found


def present(value: Any) -> bool:
    """Ruby's `present?`: not None, not blank text, not an empty collection."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, dict | list):
        return bool(value)
    return True


def render_with(run: AgentRun, value: Any, **extra: Any) -> Any:
    """Render `value`'s templates over the run's context plus `extra` variables."""
    try:
        return render(value, {**run.context, **extra})
    except TemplateError as exc:
        raise StepFailed(f"template error: {exc}") from exc


def hold(memory: dict[str, Any], key: str, payload: dict[str, Any], limit: int) -> bool:
    """Append `payload` to `memory[key]`, keeping the newest `limit`; True if one was dropped."""
    held = memory.get(key)
    if not isinstance(held, list):
        held = []
    held.append(dict(payload))
    dropped = len(held) > limit
    memory[key] = held[-limit:]
    return dropped


def _now() -> int:
    return int(utcnow().timestamp())


# -- de_duplication ----------------------------------------------------------------------------


class DeDuplicationOptions(Options):
    property: str | None = Field(
        default=None,
        description="Template of the value that makes a message unique (unset: whole payload)",
    )
    lookback: int = Field(default=100, ge=0, description="Past values compared (0: unlimited)")
    expected_update_period_in_days: float = Field(default=1, ge=0)


def _dedup_key(value: str) -> str:
    # As Huginn: long values are remembered by their CRC32 (imported memory stays valid).
    return str(zlib.crc32(value.encode())) if len(value) > 10 else value


async def de_duplication(run: AgentRun) -> Outcome:
    options = DeDuplicationOptions.model_validate(run.agent.options)
    if run.mode == "check":
        return Outcome()
    if present(options.property):
        value = str(render_with(run, options.property))
    else:
        value = json.dumps(run.payload, separators=(",", ":"), ensure_ascii=False)
    key = _dedup_key(value)
    seen = run.memory.get("properties")
    if not isinstance(seen, list):
        seen = []
    if key in seen:
        run.memory["properties"] = seen
        return Outcome(logs=["Not propagating as incoming message is a duplicate."])
    seen.append(key)
    if options.lookback:
        seen = seen[-options.lookback :]
    run.memory["properties"] = seen
    return Outcome(
        emit=[dict(run.payload)],
        logs=[f"Propagating new message as {value[:80]!r} is a new unique property."],
    )


# -- digest ------------------------------------------------------------------------------------


class DigestOptions(Options):
    message: str = Field(
        default="{{ messages | map: 'message' | join: ',' }}",
        description="Template over `messages` (the payloads collected)",
    )
    retained_events: int = Field(
        default=0,
        ge=0,
        le=999,
        validation_alias=AliasChoices("retained_events", "retained_messages"),
        description="Keep this many newest messages for the next digests too (0: clear)",
    )
    expected_receive_period_in_days: float = Field(default=2, ge=0)


async def digest(run: AgentRun) -> Outcome:
    options = DigestOptions.model_validate(run.agent.options)
    queue = run.memory.get("queue")
    queue = queue if isinstance(queue, list) else []
    if run.mode == "receive":
        limit = options.retained_events or MAX_HELD_MESSAGES
        dropped = hold(run.memory, "queue", run.payload, limit)
        return Outcome(logs=["queued" + (" (oldest dropped)" if dropped else "")])
    if not queue:
        return Outcome(logs=["nothing to digest"])
    text = render_with(run, options.message, messages=queue)
    if options.retained_events == 0:
        run.memory["queue"] = []
    return Outcome(
        emit=[{"messages": queue, "message": text}],
        logs=[f"digest of {len(queue)} message(s)"],
    )


# -- buffer ------------------------------------------------------------------------------------


class BufferOptions(Options):
    max_messages: int = Field(
        default=100,
        gt=0,
        le=MAX_HELD_MESSAGES,
        validation_alias=AliasChoices("max_messages", "max_events"),
    )
    keep: Literal["newest", "oldest"] = Field(
        default="newest", description="When full: keep the newest or the oldest messages"
    )
    max_emitted_messages: int | None = Field(
        default=None,
        gt=0,
        validation_alias=AliasChoices("max_emitted_messages", "max_emitted_events"),
        description="Emit at most this many per check (unset: all)",
    )
    expected_receive_period_in_days: float = Field(default=10, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("max_emitted_messages", "max_emitted_events"):
                if data.get(key) == "":
                    data = {k: v for k, v in data.items() if k != key}
        return data


async def buffer(run: AgentRun) -> Outcome:
    options = BufferOptions.model_validate(run.agent.options)
    held = run.memory.get("messages")
    held = held if isinstance(held, list) else []
    if run.mode == "receive":
        if len(held) >= options.max_messages and options.keep == "oldest":
            run.memory["messages"] = held
            return Outcome(logs=["buffer full: message ignored (keep: oldest)"])
        held.append(dict(run.payload))
        run.memory["messages"] = held[-options.max_messages :]
        return Outcome(logs=[f"buffered ({len(run.memory['messages'])} held)"])
    count = len(held) if options.max_emitted_messages is None else options.max_emitted_messages
    out, rest = held[:count], held[count:]
    run.memory["messages"] = rest
    return Outcome(emit=out, logs=[f"emitted {len(out)}, {len(rest)} still held"])


# -- change_detector ---------------------------------------------------------------------------


class ChangeDetectorOptions(Options):
    property: str = Field(
        min_length=1,
        description="Template of the watched value; `last_property` is the previous one",
    )
    expected_update_period_in_days: float = Field(default=1, ge=0)


async def change_detector(run: AgentRun) -> Outcome:
    options = ChangeDetectorOptions.model_validate(run.agent.options)
    if run.mode == "check":
        return Outcome()
    last = run.memory.get("last_property")
    # python-liquid does not hold nil equal to `blank` as Ruby's Liquid does: a first run's
    # template sees "" (blank either way); the comparison still knows there was none.
    value = render_with(run, options.property, last_property="" if last is None else last)
    if value == last:
        return Outcome(logs=[f"Not propagating as incoming message has not changed from {last}."])
    run.memory["last_property"] = value
    return Outcome(
        emit=[dict(run.payload)],
        logs=[f"Propagating new message as property has changed to {value} from {last}"],
    )


# -- peak_detector -----------------------------------------------------------------------------


class PeakDetectorOptions(Options):
    value_path: str = Field(min_length=1, description="Path to the number watched")
    message: str = Field(min_length=1, description="Template of the emitted `message`")
    group_by_path: str | None = Field(default=None, description="Path to the group, if any")
    window_duration_in_days: float = Field(default=14, gt=0)
    std_multiple: float = Field(default=3, ge=0)
    min_peak_spacing_in_days: float = Field(default=2, ge=0)
    min_events: int = Field(
        default=4, ge=0, validation_alias=AliasChoices("min_events", "min_messages")
    )
    expected_receive_period_in_days: float = Field(default=2, ge=0)
    # Huginn's older options, in seconds; when given they win, as in Huginn.
    window_duration: float | None = Field(default=None, gt=0)
    peak_spacing: float | None = Field(default=None, ge=0)

    @property
    def window_seconds(self) -> float:
        return self.window_duration or self.window_duration_in_days * 86400

    @property
    def spacing_seconds(self) -> float:
        if self.peak_spacing is not None:
            return self.peak_spacing
        return self.min_peak_spacing_in_days * 86400


def _number(value: Any) -> float:
    """Ruby's `to_f`: numbers as they are, numeric text parsed, anything else 0."""
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else 0.0
    match = re.match(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", str(value or ""))
    return float(match.group(0)) if match else 0.0


async def peak_detector(run: AgentRun) -> Outcome:
    options = PeakDetectorOptions.model_validate(run.agent.options)
    if run.mode == "check":
        return Outcome()
    group = "no_group"
    if present(options.group_by_path):
        found = value_at(run.payload, str(options.group_by_path))
        if present(found):
            group = str(found)
    now = _now()
    window = options.window_seconds
    data: dict[str, Any] = run.memory.setdefault("data", {})
    peaks: dict[str, Any] = run.memory.setdefault("peaks", {})
    points = [p for p in data.get(group, []) if isinstance(p, list) and len(p) == 2]
    points.append([_number(value_at(run.payload, options.value_path)), now])
    points = [p for p in points if p[1] > now - window][-MAX_PEAK_POINTS:]
    data[group] = points
    group_peaks = peaks.setdefault(group, [])
    if len(points) <= options.min_events:
        return Outcome(logs=[f"{len(points)} data point(s) in {group}: collecting"])
    if group_peaks and group_peaks[-1] >= now - options.spacing_seconds:
        return Outcome(logs=["within the minimum peak spacing: not checked"])
    history = [p[0] for p in points[:-1]]
    mean = sum(history) / len(history)
    std = math.sqrt(sum((v - mean) ** 2 for v in history) / len(history))
    newest = points[-1][0]
    if newest <= mean + options.std_multiple * std:
        return Outcome(logs=[f"no peak: {newest:g} <= {mean:g} + {options.std_multiple:g} std"])
    group_peaks.append(now)
    peaks[group] = [p for p in group_peaks if p > now - window]
    return Outcome(
        emit=[
            {
                "message": render_with(run, options.message),
                "peak": newest,
                "peak_time": now,
                "grouped_by": group,
            }
        ],
        logs=[f"peak of {newest:g} in {group}"],
    )


# -- gap_detector ------------------------------------------------------------------------------


class GapDetectorOptions(Options):
    message: str = Field(default="No data has been received!", min_length=1)
    value_path: str | None = Field(
        default=None, description="Only messages with a value here count (unset: any message)"
    )
    window_duration_in_days: float | None = Field(default=None, gt=0)
    window_duration_in_minutes: float | None = Field(
        default=None, gt=0, description="The window in minutes (instead of days)"
    )
    expected_update_period_in_days: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_window(self) -> GapDetectorOptions:
        if self.window_duration_in_days is not None and self.window_duration_in_minutes:
            raise ValueError("give window_duration_in_days or window_duration_in_minutes, not both")
        return self

    @property
    def window_seconds(self) -> float:
        if self.window_duration_in_minutes is not None:
            return self.window_duration_in_minutes * 60
        return (self.window_duration_in_days or 2) * 86400


async def gap_detector(run: AgentRun) -> Outcome:
    options = GapDetectorOptions.model_validate(run.agent.options)
    if run.mode == "receive":
        if present(options.value_path):
            path = str(render_with(run, options.value_path))
            if not present(value_at(run.payload, path)):
                return Outcome(logs=[f"no value at {path}: not counted"])
        run.memory["newest_message_created_at"] = _now()
        run.memory.pop("alerted_at", None)
        return Outcome()
    newest = run.memory.get("newest_message_created_at")
    if not isinstance(newest, int | float) or run.memory.get("alerted_at"):
        return Outcome()
    if newest >= _now() - options.window_seconds:
        return Outcome()
    run.memory["alerted_at"] = _now()
    return Outcome(
        emit=[{"message": render_with(run, options.message), "gap_started_at": int(newest)}],
        logs=["no data in the window: alerted"],
    )


# -- attribute_difference ----------------------------------------------------------------------


class AttributeDifferenceOptions(Options):
    path: str = Field(min_length=1, description="Path to the attribute compared")
    output: str = Field(min_length=1, description="Key of the difference in the emitted payload")
    method: Literal["percentage_change", "integer_difference", "decimal_difference"] = (
        "integer_difference"
    )
    decimal_precision: int = Field(default=3, ge=0, le=15)
    expected_update_period_in_days: float = Field(default=1, ge=0)


def _integer(value: Any) -> int:
    return int(_number(value))


async def attribute_difference(run: AgentRun) -> Outcome:
    options = AttributeDifferenceOptions.model_validate(run.agent.options)
    if run.mode == "check":
        return Outcome()
    rendered = render_with(run, {"path": options.path, "output": options.output})
    value = value_at(run.payload, rendered["path"])
    value = 0 if value is None else value
    last = run.memory.get("last_value")
    difference: int | float | None
    if options.method == "integer_difference":
        difference = 0 if last is None else _integer(value) - _integer(last)
    elif options.method == "decimal_difference":
        difference = (
            0.0
            if last is None
            else round(_number(value) - _number(last), options.decimal_precision)
        )
    elif last is None:
        difference = 0.0
    elif _number(last) == 0:
        difference = None  # a change from zero has no percentage
    else:
        difference = round(_number(value) / _number(last) * 100 - 100, options.decimal_precision)
    run.memory["last_value"] = value
    payload = {**run.payload, str(rendered["output"]): difference}
    return Outcome(emit=[payload], logs=["Propagating new message"])


# -- manual_event ------------------------------------------------------------------------------


class ManualEventOptions(Options):
    # Huginn saves `{"no options": "are needed"}`: whatever an import carries is ignored.
    model_config = ConfigDict(extra="ignore")
    payload: dict[str, Any] | None = Field(
        default=None, description="Emitted when the agent is run with an empty message"
    )


async def manual_event(run: AgentRun) -> Outcome:
    """Emit the payload it is given; `{"payloads": [...]}` emits each (and nothing else)."""
    if run.mode == "check":
        return Outcome()
    payload = run.payload
    if not payload:
        default = run.options().get("payload")
        payload = default if isinstance(default, dict) else {}
    if "payloads" in payload:
        if len(payload) > 1:
            raise StepFailed(
                "If you provide the 'payloads' key, please do not provide any other keys "
                "at the top level."
            )
        items = payload["payloads"]
        items = items if isinstance(items, list) else [items]
        bad = [i for i, item in enumerate(items) if not isinstance(item, dict)]
        if bad:
            raise StepFailed(f"payloads[{bad[0]}] is not an object")
        return Outcome(emit=[dict(i) for i in items], logs=[f"emitted {len(items)} message(s)"])
    return Outcome(emit=[dict(payload)], logs=["emitted 1 message"])


_MANUAL_DESCRIPTION = (
    "Emits the payload it is given (place it after a manual trigger: executeWorkflow's input); "
    '{"payloads": [...]} emits one message per item; an empty message emits its `payload` option'
)

TYPES: tuple[AgentType, ...] = (
    AgentType(
        "de_duplication",
        Kind.ACTION,
        DeDuplicationOptions,
        "Passes a message on only if its `property` was not among the last `lookback` seen",
        de_duplication,
        local=True,
        emits="The received message, unchanged, when it is not a duplicate",
        example={"property": "{{value}}", "lookback": 100, "expected_update_period_in_days": 1},
    ),
    AgentType(
        "digest",
        Kind.ACTION,
        DigestOptions,
        "Collects received messages and emits them as one message when its schedule fires",
        digest,
        local=True,
        emits='{"messages": [payloads...], "message": "<rendered message template>"}',
        example={
            "expected_receive_period_in_days": "2",
            "message": "{{ messages | map: 'message' | join: ',' }}",
            "retained_events": "0",
        },
    ),
    AgentType(
        "buffer",
        Kind.ACTION,
        BufferOptions,
        "Holds up to `max_messages` received messages and emits copies when its schedule fires",
        buffer,
        local=True,
        emits="Each held message, unchanged, oldest first",
        example={"expected_receive_period_in_days": "2", "max_messages": "100", "keep": "newest"},
    ),
    AgentType(
        "change_detector",
        Kind.ACTION,
        ChangeDetectorOptions,
        "Passes a message on when its `property` differs from the last message's",
        change_detector,
        local=True,
        emits="The received message, unchanged, when the property changed",
        example={"property": "{{output}}", "expected_update_period_in_days": 1},
    ),
    AgentType(
        "peak_detector",
        Kind.ACTION,
        PeakDetectorOptions,
        "Watches a number for peaks beyond `std_multiple` standard deviations of its window",
        peak_detector,
        local=True,
        emits='{"message": "...", "peak": 6.0, "peak_time": 1700000000, "grouped_by": "x"}',
        example={
            "expected_receive_period_in_days": "2",
            "group_by_path": "filter",
            "value_path": "count",
            "message": "A peak of {{count}} was found in {{filter}}",
            "min_events": "4",
            "std_multiple": "3",
        },
    ),
    AgentType(
        "gap_detector",
        Kind.ACTION,
        GapDetectorOptions,
        "Alerts once, on its schedule, when no message (with a value) arrived within the window",
        gap_detector,
        local=True,
        emits='{"message": "No data has been received!", "gap_started_at": 1700000000}',
        example={"window_duration_in_days": "2", "message": "No data has been received!"},
    ),
    AgentType(
        "attribute_difference",
        Kind.ACTION,
        AttributeDifferenceOptions,
        "Adds the difference of an attribute from the previous message's to the message",
        attribute_difference,
        local=True,
        emits="The received message plus `output`: the difference or percentage change",
        example={
            "path": "data.rate",
            "output": "rate_diff",
            "method": "integer_difference",
            "expected_update_period_in_days": 1,
        },
    ),
    AgentType(
        "manual_event",
        Kind.ACTION,
        ManualEventOptions,
        _MANUAL_DESCRIPTION + " (Huginn's ManualEventAgent)",
        manual_event,
        local=True,
        emits="What it is given",
        example={"payload": {"message": "Hello from a manual event"}},
    ),
    AgentType(
        "manual_message",
        Kind.ACTION,
        ManualEventOptions,
        _MANUAL_DESCRIPTION + " (ActiveWorkflow's ManualMessageAgent)",
        manual_event,
        local=True,
        emits="What it is given",
        example={"payload": {"message": "Hello from a manual message"}},
    ),
)
