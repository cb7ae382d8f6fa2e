"""A scenario as written (short forms, shorthands) -> its normalised JSON form.

The normalised form is what is stored, hashed into the id, and run: every state has `title`,
`description`, `instructions`, `notify` and (unless it is an end state) `transitions`; every
action has `title`, `description`, `if`, `actor` (a list), `response` and `update` (a list of
instructions); end states referenced by a `goto` exist; actions used only by transitions exist.
Normalising a normalised scenario changes nothing, so YAML and JSON round-trips keep the id.

Structural problems (wrong types, unknown keys where LetsFlow allows none) are collected in
`Problems` with the path the author wrote; `validate.py` checks the meaning afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flowql.services.scenarios.expressions import is_fn
from flowql.services.scenarios.implicit import END_STATE, add_implicit_parts, key_to_title
from flowql.services.scenarios.schemas import SchemaProblem, expand_schema, normalize_schema

SCENARIO_SCHEMA = "https://schemas.letsflow.io/v1.0/scenario"
_ACCEPTED_SCHEMA = re.compile(r"^https://schemas\.letsflow\.io/v1\.0(\.0)?/scenario(\.json)?#?$")
_ACTION_SCHEMA = re.compile(r"^https://schemas\.letsflow\.io/v1\.0(\.0)?/action(\.json)?#?$")
_SHORT_KEYS = ("on", "action", "by", "goto", "if", "after", "log")
TRANSITION_KEYS = frozenset({"on", "by", "if", "goto", "after", "log"})
UPDATE_KEYS = frozenset({"set", "value", "data", "mode", "if", "stub"})
UPDATE_MODES = {"replace": "replace", "merge": "merge", "append": "append", "set": "replace"}
_UNITS = {
    **dict.fromkeys(("", "s", "sec", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "week", "weeks"), 604800),
}


@dataclass
class Problems:
    """Problems found so far, by path (as the author wrote it)."""

    found: dict[str, str] = field(default_factory=dict)
    notices: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, problem: str) -> None:
        self.found.setdefault(path, problem)

    def notice(self, path: str, note: str) -> None:
        self.notices.setdefault(path, note)


@dataclass
class Normalized:
    scenario: dict[str, Any]
    problems: Problems
    # States written in the short form (`on`/`after` + `goto` on the state itself).
    short_states: set[str] = field(default_factory=set)


def is_end_state(key: str, state: dict[str, Any]) -> bool:
    return "transitions" not in state or bool(END_STATE.match(key))


def parse_period(value: Any) -> int:
    """`10 minutes`, `1 week`, `24 hours` (or a number of seconds) -> seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must be a period like '10 minutes', '24 hours' or '1 week'")
    unit = match.group(2).lower()
    if unit not in _UNITS:
        raise ValueError(f"unsupported time unit {match.group(2)!r}; use seconds to weeks")
    return int(match.group(1)) * _UNITS[unit]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _schema(value: Any, path: str, problems: Problems) -> dict[str, Any]:
    try:
        return normalize_schema(value, path)
    except SchemaProblem as exc:
        problems.add(exc.path or path, str(exc))
        return {}


def normalize(definition: Any) -> Normalized:
    problems = Problems()
    if not isinstance(definition, dict):
        problems.add("", "a scenario must be an object")
        return Normalized({}, problems)
    scenario = dict(definition)
    declared = scenario.pop("$schema", None)
    if declared is not None and not (
        isinstance(declared, str) and _ACCEPTED_SCHEMA.match(declared)
    ):
        problems.add(
            "$schema", f"unsupported scenario schema {declared!r}; flowql runs LetsFlow v1.0"
        )
    if "id" in scenario:
        scenario.pop("id")
        problems.notice("id", "set by flowql from the scenario's hash; the given value is not used")
    result: dict[str, Any] = {"$schema": SCENARIO_SCHEMA}
    for key in ("name", "version", "title", "description"):
        value = scenario.pop(key, None)
        if value is not None and not isinstance(value, str):
            problems.add(
                key, "must be a string" + (" (quote it in YAML)" if key == "version" else "")
            )
        elif value is not None or key in ("title", "description"):
            result[key] = value or ""
    tags = scenario.pop("tags", None) or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.add("tags", "must be a list of strings")
        tags = []
    result["tags"] = tags
    result["actors"] = _actors(scenario.pop("actors", None), problems)
    result["actions"] = _actions(scenario.pop("actions", None), problems)
    states, short = _states(scenario.pop("states", None), problems)
    result["states"] = states
    result["vars"] = _vars(scenario.pop("vars", None), problems)
    result["result"] = _schema(scenario.pop("result", None), "result", problems)
    result.update(scenario)  # additional properties are kept, as LetsFlow does
    add_implicit_parts(result)
    return Normalized(result, problems, short)


def _actors(actors: Any, problems: Problems) -> dict[str, Any]:
    if actors is None:
        actors = {"actor": {"title": "actor"}}
    if not isinstance(actors, dict):
        problems.add("actors", "must be a map of actor schemas")
        return {}
    result: dict[str, Any] = {}
    for key, value in actors.items():
        path = f"actors.{key}"
        if key.startswith("service:"):
            problems.add(
                path, "services are not declared as actors; use service:NAME in `actor`/`by`"
            )
            continue
        if isinstance(value, str):
            value = expand_schema(value)  # a simple reference: `client: https://…/client`
        if value is not None and not isinstance(value, dict):
            problems.add(path, "an actor is a schema (an object)")
            continue
        actor = dict(value or {})
        actor.setdefault("title", key_to_title(key))
        properties = actor.get("properties") or {}
        if not isinstance(properties, dict):
            problems.add(f"{path}.properties", "must be a map of schemas")
            properties = {}
        actor["properties"] = {**properties, "id": {"type": "string"}, "title": {"type": "string"}}
        schema = _schema(actor, path, problems)
        schema["type"] = "object"
        result[key] = schema
    return result


def _vars(items: Any, problems: Problems) -> dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, dict):
        problems.add("vars", "must be a map of schemas")
        return {}
    result = {}
    for key, value in items.items():
        schema = _schema(value, f"vars.{key}", problems)
        schema.setdefault("title", key_to_title(key))
        result[key] = schema
    return result


def _actions(actions: Any, problems: Problems) -> dict[str, Any]:
    if actions is None:
        return {}
    if not isinstance(actions, dict):
        problems.add("actions", "must be a map of actions")
        return {}
    return {key: _action(key, value, problems) for key, value in actions.items()}


def _action(key: str, value: Any, problems: Problems) -> dict[str, Any]:
    path = f"actions.{key}"
    if value is not None and not isinstance(value, dict):
        problems.add(path, "an action must be an object")
        value = {}
    action = dict(value or {})
    if "responses" in action:
        problems.add(
            f"{path}.responses",
            "LetsFlow v0.x `responses` are not supported; use `response` and `update`",
        )
    declared = action.pop("$schema", None)
    if declared is not None and not (isinstance(declared, str) and _ACTION_SCHEMA.match(declared)):
        problems.add(
            f"{path}.$schema",
            f"unsupported action schema {declared!r}: flowql does not validate actions against sub-schemas",
        )
    if isinstance(action.get("schema"), str):
        problems.notice(
            f"{path}.schema", "kept for clients; flowql does not validate the action against it"
        )
    action.setdefault("title", key_to_title(key))
    action.setdefault("description", "")
    action.setdefault("if", True)
    actor = action.get("actor", ["*"])
    action["actor"] = actor if is_fn(actor) else _as_list(actor)
    action["response"] = _schema(action.get("response"), f"{path}.response", problems)
    action["update"] = [
        _update(
            item,
            f"{path}.update" + (f".{i}" if isinstance(action.get("update"), list) else ""),
            problems,
        )
        for i, item in enumerate(_as_list(action.get("update") or []))
    ]
    if "stub" in action:
        problems.notice(f"{path}.stub", "kept; flowql does not predict next states")
    return action


def _update(item: Any, path: str, problems: Problems) -> dict[str, Any]:
    if isinstance(item, str):
        item = {"set": item}
    if not isinstance(item, dict):
        problems.add(path, "an update instruction is a path or an object with `set`")
        return {"set": "", "value": None, "mode": "replace", "if": True}
    unknown = sorted(set(item) - UPDATE_KEYS)
    if unknown:
        problems.add(f"{path}.{unknown[0]}", f"unknown update property {unknown[0]!r}")
    if "data" in item and "value" in item:
        problems.add(f"{path}.data", "give `value` (or its older name `data`), not both")
    mode = item.get("mode", "replace")
    if mode not in UPDATE_MODES:
        problems.add(f"{path}.mode", "must be replace, merge or append")
    instruction = {
        "set": item.get("set"),
        "value": item.get("value", item.get("data", {"<ref>": "current.response"})),
        "mode": UPDATE_MODES.get(mode, "replace"),
        "if": item.get("if", True),
    }
    if "stub" in item:
        instruction["stub"] = item["stub"]
    return instruction


def _states(states: Any, problems: Problems) -> tuple[dict[str, Any], set[str]]:
    if not isinstance(states, dict) or not states:
        problems.add("states", "required: a map of states with at least `initial`")
        return {}, set()
    result: dict[str, Any] = {}
    short: set[str] = set()
    for key, value in states.items():
        if value is not None and not isinstance(value, dict):
            problems.add(f"states.{key}", "a state must be an object")
            continue
        state = dict(value or {})
        if any(k in state for k in _SHORT_KEYS):
            short.add(key)
        result[key] = _state(key, state, problems)
    if "*" in result:
        any_state = result.pop("*")
        for state in result.values():
            _merge_state(state, any_state)
    return result, short


def _state(key: str, state: dict[str, Any], problems: Problems) -> dict[str, Any]:
    path = f"states.{key}"
    short = {k: state.pop(k) for k in _SHORT_KEYS if k in state}
    if short and "transitions" in state:
        problems.add(path, "give either `transitions` or a single `on`/`after` with `goto`")
    if "on" in short and "action" in short:
        problems.add(f"{path}.action", "give `on` (or its older name `action`), not both")
    if "action" in short:
        short["on"] = short.pop("action")
    transitions: Any = [short] if short else state.pop("transitions", None)
    state.setdefault("title", key_to_title(key))
    state.setdefault("description", "")
    instructions = state.get("instructions") or {}
    if not isinstance(instructions, dict):
        problems.add(f"{path}.instructions", "must be a map of actor -> text")
        instructions = {}
    state["instructions"] = instructions
    state["notify"] = _notify(state.get("notify"), f"{path}.notify", problems)
    if transitions is None:
        return state
    if END_STATE.match(key):
        problems.add(path, "an end state (in parentheses) has no transitions")
        return state
    if not isinstance(transitions, list):
        problems.add(f"{path}.transitions", "must be a list of transitions")
        transitions = []
    state["transitions"] = [
        _transition(t, path if short else f"{path}.transitions.{i}", problems)
        for i, t in enumerate(transitions)
    ]
    return state


def _transition(value: Any, path: str, problems: Problems) -> dict[str, Any]:
    if not isinstance(value, dict):
        problems.add(path, "a transition must be an object")
        return {"on": "", "by": ["*"], "if": True, "goto": None}
    unknown = sorted(set(value) - TRANSITION_KEYS)
    if unknown:
        problems.add(f"{path}.{unknown[0]}", f"unknown transition property {unknown[0]!r}")
    if "goto" not in value:
        problems.add(f"{path}.goto", "required (use ~ to stay in the state)")
    transition: dict[str, Any] = {}
    if "on" in value and "after" in value:
        problems.add(path, "a transition has either `on` (an action) or `after` (a timeout)")
    if "after" in value:
        if "by" in value:
            problems.add(f"{path}.by", "a timeout transition has no actor")
        try:
            transition["after"] = parse_period(value["after"])
        except ValueError as exc:
            problems.add(f"{path}.after", str(exc))
            transition["after"] = 0
    elif isinstance(value.get("on"), str) and value["on"]:
        by = value.get("by", ["*"])
        transition.update(on=value["on"], by=by if is_fn(by) else _as_list(by))
    else:
        problems.add(f"{path}.on", "required: the action (or `after` for a timeout)")
        transition.update(on="", by=["*"])
    transition["if"] = value.get("if", True)
    transition["goto"] = value.get("goto")
    if "log" in value:
        transition["log"] = value["log"]
    return transition


def _notify(value: Any, path: str, problems: Problems) -> list[dict[str, Any]]:
    result = []
    items = [] if value is None else _as_list(value)
    for index, item in enumerate(items):
        where = f"{path}.{index}" if isinstance(value, list) else path
        if isinstance(item, str):
            item = {"service": item}
        if not isinstance(item, dict) or not isinstance(item.get("service"), str):
            problems.add(where, "a notify instruction names a `service`")
            continue
        notify = dict(item)
        try:
            notify["after"] = parse_period(notify.get("after", 0))
        except ValueError as exc:
            problems.add(f"{where}.after", str(exc))
        if notify.get("after"):
            problems.notice(
                f"{where}.after",
                "handed to the state-entered hooks with the notification; flowql itself "
                "does not delay it",
            )
        notify.setdefault("if", True)
        result.append(notify)
    return result


def _merge_state(state: dict[str, Any], partial: dict[str, Any]) -> None:
    """LetsFlow's `*` state: its transitions, instructions and notify apply to every state."""
    if "transitions" in state and "transitions" in partial:
        state["transitions"] = [*state["transitions"], *partial["transitions"]]
    state["instructions"] = {**partial["instructions"], **state["instructions"]}
    state["notify"] = [*state["notify"], *partial["notify"]]
    for key, value in partial.items():
        state.setdefault(key, value)
