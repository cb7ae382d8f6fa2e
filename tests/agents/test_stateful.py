"""The stateful agents (flowql/agents/stateful.py): each behaviour ActiveWorkflow documents, with
memory carried across runs as the engine carries it (a JSON round trip between runs)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowql.agents.base import Outcome, StepFailed
from flowql.agents.registry import REGISTRY, validate_options
from flowql.agents.stateful import value_at
from flowql.errors import ValidationFailed
from flowql.formats.huginn import flowql_type
from flowql.models import utcnow
from tests.agents.conftest import RunAgent


class Agent:
    """One agent whose memory survives between runs as JSON, like the engine saves it."""

    def __init__(self, run_agent: RunAgent, type_: str, options: dict[str, Any]) -> None:
        self.run_agent, self.type, self.options = run_agent, type_, options
        self.memory: dict[str, Any] = {}

    async def _run(self, payload: dict[str, Any] | None, mode: str) -> Outcome:
        memory = json.loads(json.dumps(self.memory))
        outcome = await self.run_agent(self.type, self.options, payload, memory=memory, mode=mode)
        self.memory = json.loads(json.dumps(memory))  # must stay JSON-serialisable
        return outcome

    async def receive(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        return (await self._run(payload, "receive")).emit

    async def check(self) -> list[dict[str, Any]]:
        return (await self._run(None, "check")).emit


def test_huginn_and_activeworkflow_class_names_map_to_these_types() -> None:
    for huginn, ours in [
        ("Agents::DeDuplicationAgent", "de_duplication"),
        ("Agents::DigestAgent", "digest"),
        ("Agents::BufferAgent", "buffer"),
        ("Agents::ChangeDetectorAgent", "change_detector"),
        ("Agents::PeakDetectorAgent", "peak_detector"),
        ("Agents::GapDetectorAgent", "gap_detector"),
        ("Agents::AttributeDifferenceAgent", "attribute_difference"),
        ("Agents::ManualEventAgent", "manual_event"),
        ("Agents::ManualMessageAgent", "manual_message"),
    ]:
        assert flowql_type(huginn) == ours
        assert ours in REGISTRY
        assert REGISTRY[ours].local and REGISTRY[ours].emits and REGISTRY[ours].description


def test_value_at_reads_the_jsonpath_subset() -> None:
    data = {"data": {"rate": 5, "items": [{"p": 1}, {"p": 2}]}, "a b": {"c": "x"}}
    assert value_at(data, "data.rate") == 5
    assert value_at(data, ".data.rate") == 5
    assert value_at(data, "$.data.rate") == 5
    assert value_at(data, "data.items[1].p") == 2
    assert value_at(data, "$['a b'].c") == "x"
    assert value_at(data, "data.missing") is None
    assert value_at(data, "data.items[5]") is None


# -- de_duplication ----------------------------------------------------------------------------


async def test_de_duplication_by_property_within_lookback(run_agent: RunAgent) -> None:
    agent = Agent(run_agent, "de_duplication", {"property": "{{ message.id }}", "lookback": 2})
    assert await agent.receive({"id": 1, "n": "a"}) == [{"id": 1, "n": "a"}]
    assert await agent.receive({"id": 1, "n": "b"}) == []  # duplicate
    assert await agent.receive({"id": 2}) == [{"id": 2}]
    assert await agent.receive({"id": 3}) == [{"id": 3}]
    # lookback 2: id 1 fell out of the window, so it passes again
    assert await agent.receive({"id": 1}) == [{"id": 1}]
    assert await agent.receive({"id": 3}) == []
    assert agent.memory["properties"] == ["3", "1"]


async def test_de_duplication_whole_payload_and_unlimited_lookback(run_agent: RunAgent) -> None:
    agent = Agent(run_agent, "de_duplication", {"lookback": 0})
    payloads = [{"k": i, "text": "a long payload value"} for i in range(150)]
    for payload in payloads:
        assert await agent.receive(payload) == [payload]
    assert await agent.receive(payloads[0]) == []  # still remembered: 0 is unlimited
    assert len(agent.memory["properties"]) == 150
    # long values are remembered by their CRC32, as Huginn does
    assert all(p.isdigit() for p in agent.memory["properties"])


def test_de_duplication_rejects_negative_lookback() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_options("de_duplication", {"lookback": -1})
    assert "options.lookback" in info.value.fields


# -- digest ------------------------------------------------------------------------------------


async def test_digest_collects_then_emits_one_message_on_check(run_agent: RunAgent) -> None:
    agent = Agent(run_agent, "digest", {})
    assert await agent.check() == []  # nothing collected yet
    for word in ("a", "b", "c"):
        assert await agent.receive({"message": word}) == []
    emitted = await agent.check()
    assert emitted == [
        {"messages": [{"message": "a"}, {"message": "b"}, {"message": "c"}], "message": "a,b,c"}
    ]
    assert await agent.check() == []  # retained 0: cleared after the digest


async def test_digest_retained_events_roll(run_agent: RunAgent) -> None:
    # ActiveWorkflow's example: retain 3; after 5,4,3 then 6 the digest holds 6,5,4 (newest 3).
    agent = Agent(
        run_agent,
        "digest",
        {"retained_messages": 3, "message": "{% for m in messages %}{{ m.n }}{% endfor %}"},
    )
    for n in (5, 4, 3):
        await agent.receive({"n": n})
    assert (await agent.check())[0]["message"] == "543"
    assert (await agent.check())[0]["message"] == "543"  # retained for future digests
    await agent.receive({"n": 6})
    assert (await agent.check())[0]["message"] == "436"


def test_digest_retained_range_is_checked() -> None:
    with pytest.raises(ValidationFailed):
        validate_options("digest", {"retained_events": 1000})
    validate_options("digest", {"retained_events": "999"})  # Huginn stores it as text


# -- buffer ------------------------------------------------------------------------------------


async def test_buffer_keeps_newest_and_emits_on_check(run_agent: RunAgent) -> None:
    agent = Agent(run_agent, "buffer", {"max_messages": 2, "keep": "newest"})
    for n in (1, 2, 3):
        assert await agent.receive({"n": n}) == []
    assert await agent.check() == [{"n": 2}, {"n": 3}]
    assert await agent.check() == []


async def test_buffer_keep_oldest_ignores_new_when_full(run_agent: RunAgent) -> None:
    agent = Agent(run_agent, "buffer", {"max_messages": 2, "keep": "oldest"})
    for n in (1, 2, 3):
        await agent.receive({"n": n})
    assert await agent.check() == [{"n": 1}, {"n": 2}]


async def test_buffer_max_emitted_leaves_the_rest_for_later(run_agent: RunAgent) -> None:
    agent = Agent(run_agent, "buffer", {"max_messages": 10, "max_emitted_messages": 2})
    for n in range(5):
        await agent.receive({"n": n})
    assert await agent.check() == [{"n": 0}, {"n": 1}]
    assert await agent.check() == [{"n": 2}, {"n": 3}]
    assert await agent.check() == [{"n": 4}]


def test_buffer_options_are_checked() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_options("buffer", {"keep": "middle", "max_messages": 0})
    assert {"options.keep", "options.max_messages"} <= set(info.value.fields)
    validate_options("buffer", {"max_emitted_messages": ""})  # ActiveWorkflow's blank default


# -- change_detector ---------------------------------------------------------------------------


async def test_change_detector_emits_only_on_change(run_agent: RunAgent) -> None:
    agent = Agent(run_agent, "change_detector", {"property": "{{ message.output }}"})
    assert await agent.receive({"output": "a"}) == [{"output": "a"}]
    assert await agent.receive({"output": "a", "other": 1}) == []
    assert await agent.receive({"output": "b"}) == [{"output": "b"}]
    assert agent.memory == {"last_property": "b"}


async def test_change_detector_new_lowest_price_with_last_property(run_agent: RunAgent) -> None:
    # The recipe in ActiveWorkflow's description, over flowql's `message`.
    prop = (
        "{% assign drop = last_property | minus: message.price %}"
        "{% if last_property == blank or drop > 0 %}{{ message.price | default: last_property }}"
        "{% else %}{{ last_property }}{% endif %}"
    )
    agent = Agent(run_agent, "change_detector", {"property": prop})
    assert await agent.receive({"price": 10}) == [{"price": 10}]
    assert await agent.receive({"price": 12}) == []  # higher: no new lowest
    assert await agent.receive({"price": 8}) == [{"price": 8}]
    assert agent.memory["last_property"] == "8"


def test_change_detector_requires_property() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_options("change_detector", {})
    assert "options.property" in info.value.fields


# -- peak_detector -----------------------------------------------------------------------------


async def test_peak_detector_finds_a_peak_per_group(run_agent: RunAgent) -> None:
    agent = Agent(
        run_agent,
        "peak_detector",
        {
            "value_path": "count",
            "group_by_path": "filter",
            "message": "A peak of {{ message.count }} was found in {{ message.filter }}",
            "min_events": 4,
        },
    )
    for count in (5, 6, 5, 6, 5):
        assert await agent.receive({"count": count, "filter": "x"}) == []
    # a different group does not see x's data
    assert await agent.receive({"count": 100, "filter": "y"}) == []
    [peak] = await agent.receive({"count": 50, "filter": "x"})
    assert peak["message"] == "A peak of 50 was found in x"
    assert peak["peak"] == 50.0 and peak["grouped_by"] == "x"
    assert isinstance(peak["peak_time"], int)
    # within min_peak_spacing_in_days (2): a second peak is not reported
    assert await agent.receive({"count": 500, "filter": "x"}) == []


async def test_peak_detector_spacing_window_and_min_events(run_agent: RunAgent) -> None:
    agent = Agent(
        run_agent,
        "peak_detector",
        {"value_path": "v", "message": "peak", "min_messages": 2, "window_duration_in_days": 1},
    )
    now = int(utcnow().timestamp())
    old = now - 3 * 86400
    # a peak 3 days ago (beyond the 2-day spacing) and data points outside the 1-day window
    agent.memory = {
        "data": {"no_group": [[1000.0, old], [1000.0, old]]},
        "peaks": {"no_group": [old]},
    }
    assert await agent.receive({"v": 1}) == []  # old points dropped: only 1 point, min 2
    assert agent.memory["data"]["no_group"] == [[1.0, agent.memory["data"]["no_group"][0][1]]]
    assert await agent.receive({"v": 1}) == []  # 2 points, not above min_events (2)
    assert await agent.receive({"v": 1}) == []  # flat: no peak
    [peak] = await agent.receive({"v": 9})
    assert peak["peak"] == 9.0 and peak["grouped_by"] == "no_group"
    assert agent.memory["peaks"]["no_group"] == [peak["peak_time"]]  # the old peak expired


async def test_peak_detector_huginn_legacy_seconds_options(run_agent: RunAgent) -> None:
    # `peak_spacing: 0` (seconds, Huginn's older option): peaks may follow each other
    agent = Agent(
        run_agent,
        "peak_detector",
        {
            "value_path": "v",
            "message": "p",
            "min_events": 2,
            "peak_spacing": 0,
            "window_duration": 3600,
        },
    )
    for v in (1, 1, 1):
        await agent.receive({"v": v})
    assert len(await agent.receive({"v": 50})) == 1
    agent.memory["peaks"]["no_group"] = [t - 1 for t in agent.memory["peaks"]["no_group"]]
    assert len(await agent.receive({"v": 5000})) == 1  # a second later is spaced enough


def test_peak_detector_requires_value_path_and_message() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_options("peak_detector", {})
    assert {"options.value_path", "options.message"} <= set(info.value.fields)


# -- gap_detector ------------------------------------------------------------------------------


async def test_gap_detector_alerts_once_then_resets_on_data(run_agent: RunAgent) -> None:
    agent = Agent(
        run_agent, "gap_detector", {"window_duration_in_minutes": 10, "message": "quiet!"}
    )
    assert await agent.check() == []  # never received anything: no alert
    assert await agent.receive({"x": 1}) == []
    assert await agent.check() == []  # data arrived within the window
    started = int(utcnow().timestamp()) - 11 * 60
    agent.memory["newest_message_created_at"] = started  # the last message is 11 minutes old
    assert await agent.check() == [{"message": "quiet!", "gap_started_at": started}]
    assert await agent.check() == []  # alerted once
    await agent.receive({"x": 2})
    assert "alerted_at" not in agent.memory
    assert await agent.check() == []


async def test_gap_detector_value_path_ignores_empty_values(run_agent: RunAgent) -> None:
    agent = Agent(run_agent, "gap_detector", {"value_path": "data.v", "window_duration_in_days": 1})
    await agent.receive({"data": {"v": ""}})
    assert "newest_message_created_at" not in agent.memory  # empty value: not data
    await agent.receive({"data": {"v": 3}})
    assert "newest_message_created_at" in agent.memory
    agent.memory["newest_message_created_at"] -= 86400 + 5
    [alert] = await agent.check()
    assert alert["message"] == "No data has been received!"


def test_gap_detector_window_options() -> None:
    with pytest.raises(ValidationFailed):
        validate_options("gap_detector", {"window_duration_in_days": 0})
    with pytest.raises(ValidationFailed):
        validate_options(
            "gap_detector", {"window_duration_in_days": 1, "window_duration_in_minutes": 5}
        )


# -- attribute_difference ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "values", "expected"),
    [
        ("integer_difference", [50, 40], [0, -10]),
        ("decimal_difference", [5.5, 15.2], [0.0, 9.7]),
        ("percentage_change", [160, 116], [0.0, -27.5]),
        ("percentage_change", ["3", "4"], [0.0, 33.333]),
    ],
)
async def test_attribute_difference_methods(
    run_agent: RunAgent, method: str, values: list[Any], expected: list[Any]
) -> None:
    agent = Agent(
        run_agent,
        "attribute_difference",
        {"path": ".data.rate", "output": "rate_diff", "method": method},
    )
    for value, want in zip(values, expected, strict=True):
        [out] = await agent.receive({"data": {"rate": value}, "keep": True})
        assert out == {"data": {"rate": value}, "keep": True, "rate_diff": want}
    assert agent.memory["last_value"] == values[-1]


async def test_attribute_difference_precision_missing_values_and_zero(
    run_agent: RunAgent,
) -> None:
    agent = Agent(
        run_agent,
        "attribute_difference",
        {
            "path": "v",
            "output": "{{ message.name }}_change",
            "method": "percentage_change",
            "decimal_precision": 1,
        },
    )
    assert (await agent.receive({"name": "x"}))[0]["x_change"] == 0.0  # missing: 0
    assert (await agent.receive({"name": "x", "v": 5}))[0]["x_change"] is None  # from 0
    assert (await agent.receive({"name": "x", "v": 6}))[0]["x_change"] == 20.0


def test_attribute_difference_rejects_unknown_method() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_options("attribute_difference", {"path": "v", "output": "d", "method": "ratio"})
    assert "options.method" in info.value.fields


# -- manual_event ------------------------------------------------------------------------------


@pytest.mark.parametrize("type_", ["manual_event", "manual_message"])
async def test_manual_event_emits_what_it_is_given(run_agent: RunAgent, type_: str) -> None:
    options = {"no options": "are needed"}  # what a Huginn export carries
    assert (await run_agent(type_, options, {"a": 1})).emit == [{"a": 1}]
    outcome = await run_agent(type_, options, {"payloads": [{"a": 1}, {"b": 2}]})
    assert outcome.emit == [{"a": 1}, {"b": 2}]
    with pytest.raises(StepFailed, match="payloads"):
        await run_agent(type_, options, {"payloads": [{"a": 1}], "extra": 1})
    given = {"payload": {"hello": "{{ workflow.name }}"}}
    assert (await run_agent(type_, given, {})).emit == [{"hello": "wf"}]
    assert (await run_agent(type_, given, {"b": 2})).emit == [{"b": 2}]
