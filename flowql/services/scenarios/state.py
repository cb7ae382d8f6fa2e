"""The pieces of a process projection: actors, the current state, update instructions.

A process `view` is LetsFlow's process JSON (`schemas.letsflow.io/v1.0/process`): `id`,
`title`, `tags`, `scenario`, `actors`, `vars`, `result`, `current`, `previous`, `events`.
Data functions (`<ref>`, `<tpl>`, `<select>`) are evaluated against it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from flowql.services.scenarios.expressions import apply_fn
from flowql.services.scenarios.schemas import property_defaults, schema_errors

# Fields of an actor record that say who plays it; they survive updates that rewrite the record.
IDENTITY_FIELDS = ("id", "userId")
UPDATE_PATH = re.compile(
    r"^(title|tags|vars|actors|result|previous|current\.actor)"
    r"(\.[A-Za-z0-9_$*@-]+|\[\d+\])*$"
)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


class UpdateError(ValueError):
    pass


# -- actors -------------------------------------------------------------------------------------


def is_service(key: str) -> bool:
    return key.startswith("service:")


def matches(pattern: str, key: str, by: bool = False) -> bool:
    """`person_*` matches `person_1`; `*` matches every actor. In an action's `actor`, `*`
    does not include services (they are named); in a transition's `by` it does."""
    if pattern == key:
        return True
    if pattern == "*":
        return by or not is_service(key)
    if is_service(key):
        return False
    return pattern.endswith("*") and key.startswith(pattern[:-1]) and len(key) >= len(pattern)


def actor_schema(scenario: dict[str, Any], key: str) -> dict[str, Any] | None:
    actors: dict[str, Any] = scenario["actors"]
    if key in actors:
        schema: dict[str, Any] = actors[key]
        return schema
    for pattern, schema in actors.items():
        if pattern.endswith("*") and matches(pattern, key):
            return dict(schema)
    return None


def new_actor(schema: dict[str, Any], key: str, given: dict[str, Any] | None) -> dict[str, Any]:
    record = {
        "title": schema.get("title") or key,
        **property_defaults(schema.get("properties") or {}),
        **(given or {}),
    }
    if "role" in schema:
        record["role"] = schema["role"]
    return record


def instantiate_actors(
    scenario: dict[str, Any], given: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The actors of a new process, and problems (path, message) with the given ones."""
    keys = [k for k in scenario["actors"] if not k.endswith("*")]
    keys += [k for k in given if k not in keys]
    actors: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key in keys:
        schema = actor_schema(scenario, key)
        value = given.get(key)
        if schema is None:
            problems.append((f"actors.{key}", "not an actor of this scenario"))
        elif value is not None and not isinstance(value, dict):
            problems.append((f"actors.{key}", "must be an object (an actor record)"))
        else:
            actors[key] = new_actor(schema, key, value)
    return actors, problems


def actor_keys(view: dict[str, Any], patterns: list[Any], by: list[Any] | None = None) -> list[str]:
    """Process actors (and services) named by `patterns` and, when given, allowed by `by`."""
    keys = [*view["actors"], *sorted({p for p in patterns if isinstance(p, str) and is_service(p)})]
    found = []
    for key in keys:
        named = any(isinstance(p, str) and matches(p, key) for p in patterns)
        allowed = by is None or any(isinstance(p, str) and matches(p, key, by=True) for p in by)
        if named and allowed:
            found.append(key)
    return found


def actor_view(view: dict[str, Any], key: str) -> dict[str, Any] | None:
    """`current.actor`: the process actor with its key (None for a service)."""
    record = view["actors"].get(key)
    return None if record is None else {**record, "key": key}


def validation_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """An actor schema plus the fields flowql and LetsFlow keep on every actor record."""
    properties = {
        **(schema.get("properties") or {}),
        "userId": {"type": "string"},
        "role": {"type": ["string", "array"]},
    }
    return {**schema, "properties": properties}


def process_errors(view: dict[str, Any]) -> list[str]:
    """What is wrong with the process data after updates (LetsFlow's validateProcess)."""
    scenario = view["scenario"]
    errors = []
    if not isinstance(view["title"], str):
        errors.append("Title is invalid: must be a string")
    for key, record in view["actors"].items():
        schema = actor_schema(scenario, key)
        if schema is None:
            errors.append(f"Actor '{key}' is not defined in the scenario")
            continue
        for problem in schema_errors(validation_schema(schema), record):
            errors.append(f"Actor '{key}' is invalid: {problem}")
    for key in scenario["actors"]:
        if not key.endswith("*") and key not in view["actors"]:
            errors.append(f"Actor '{key}' is missing")
    for key, value in view["vars"].items():
        var_schema = scenario["vars"].get(key)
        if var_schema is None:
            errors.append(f"Variable '{key}' is not defined in the scenario")
            continue
        errors.extend(f"Variable '{key}' is invalid: {p}" for p in schema_errors(var_schema, value))
    if view["result"] is not None:
        errors.extend(
            f"Result is invalid: {p}" for p in schema_errors(scenario["result"], view["result"])
        )
    return errors


# -- the current state --------------------------------------------------------------------------


def available_actions(view: dict[str, Any], state_key: str) -> list[dict[str, Any]]:
    """Instantiated actions of a state, each with the actors that may perform it now."""
    scenario = view["scenario"]
    transitions = [t for t in scenario["states"][state_key].get("transitions", []) if "on" in t]
    actions = []
    for key in dict.fromkeys(t["on"] for t in transitions):
        by: list[Any] = []
        for transition in transitions:
            if transition["on"] == key and apply_fn(transition["if"], view):
                by.extend(apply_fn(transition["by"], view))
        action = scenario["actions"].get(key)
        if not by or action is None:
            continue
        instance = apply_fn({k: v for k, v in action.items() if k != "update"}, view)
        if not instance.get("if"):
            continue
        patterns = instance.get("actor")
        actors = actor_keys(view, patterns if isinstance(patterns, list) else [patterns], by)
        if actors:
            actions.append({**instance, "key": key, "actor": actors})
    return actions


def instantiate_state(view: dict[str, Any], key: str, timestamp: str) -> dict[str, Any]:
    """The scenario state `key` with its data functions evaluated (LetsFlow's current state)."""
    scenario_state = view["scenario"]["states"][key]
    state: dict[str, Any] = apply_fn(
        {k: v for k, v in scenario_state.items() if k != "transitions"}, view
    )
    state["key"] = key
    state["timestamp"] = timestamp
    state["actions"] = available_actions(view, key) if "transitions" in scenario_state else []
    state["notify"] = [n for n in state.get("notify", []) if n.get("if")]
    return state


# -- update instructions ------------------------------------------------------------------------


def _steps(path: str) -> list[str | int]:
    """`vars.a.b[2]` -> ["vars", "a", "b", 2]; `current.actor` is one target."""
    if path == "current.actor" or path.startswith(("current.actor.", "current.actor[")):
        head: list[str | int] = ["current", "actor"]
        rest = path[len("current.actor") :]
    else:
        match = re.match(r"^[^.\[]+", path)
        head = [match.group(0)] if match else []
        rest = path[match.end() :] if match else path
    return head + [int(m.group(2)) if m.group(2) else m.group(1) for m in _STEP.finditer(rest)]


def _get(data: Any, steps: list[str | int]) -> Any:
    for step in steps:
        if isinstance(step, int):
            data = data[step] if isinstance(data, list) and -len(data) <= step < len(data) else None
        else:
            data = data.get(step) if isinstance(data, dict) else None
    return data


def _set(data: Any, steps: list[str | int], value: Any) -> None:
    for index, step in enumerate(steps[:-1]):
        following = steps[index + 1]
        child = data[step] if _has(data, step) else None
        if not isinstance(child, dict | list):
            child = [] if isinstance(following, int) else {}
            _put(data, step, child)
        data = child
    _put(data, steps[-1], value)


def _has(data: Any, step: str | int) -> bool:
    if isinstance(step, int):
        return isinstance(data, list) and 0 <= step < len(data)
    return isinstance(data, dict) and step in data


def _put(data: Any, step: str | int, value: Any) -> None:
    if isinstance(step, int):
        if not isinstance(data, list):
            raise UpdateError(f"cannot index a non-list with [{step}]")
        while len(data) <= step:
            data.append(None)
    elif not isinstance(data, dict):
        raise UpdateError(f"cannot set {step!r} on a non-object")
    data[step] = value


def apply_update(view: dict[str, Any], instruction: dict[str, Any], actor_key: str) -> None:
    """Apply one instantiated update instruction (`set`, `value`, `mode`) to the view in place."""
    path = instruction.get("set")
    if not isinstance(path, str) or not UPDATE_PATH.match(path):
        raise UpdateError(f"Not allowed to set '{path}' through update instructions")
    steps = _steps(path)
    value = copy.deepcopy(instruction.get("value"))
    existing = _get(view, steps)
    mode = instruction.get("mode", "replace")
    if mode == "merge":
        if isinstance(existing, dict) and isinstance(value, dict):
            value = {**existing, **value}
        elif isinstance(existing, list) and isinstance(value, list):
            value = [*existing, *value]
    elif mode == "append":
        value = [*existing, value] if isinstance(existing, list) else [value]
    before = copy.deepcopy(view["actors"])
    _set(view, steps, value)
    if steps[:2] == ["current", "actor"] and actor_key in view["actors"]:
        current = view["current"].get("actor")
        if isinstance(current, dict):
            view["actors"][actor_key] = {k: v for k, v in current.items() if k != "key"}
    if steps[0] in ("actors", "current"):
        _reconcile_actors(view, before)


def _reconcile_actors(view: dict[str, Any], before: dict[str, Any]) -> None:
    """Actor records an update added or rewrote are completed from their schema (title,
    defaults, role), as new actors are; an actor's assignment (`id`, `userId`) survives an
    update that rewrites its record (flowql assigns actors at start, LetsFlow's tutorials
    create them with the update)."""
    actors = view["actors"]
    if not isinstance(actors, dict):
        return
    for key, record in list(actors.items()):
        schema = actor_schema(view["scenario"], key)
        changed = key not in before or record is None or record != before[key]
        if schema is not None and changed:
            record = new_actor(schema, key, record if isinstance(record, dict) else None)
        if isinstance(record, dict) and isinstance(before.get(key), dict):
            for field in IDENTITY_FIELDS:
                if field not in record and field in before[key]:
                    record = {**record, field: before[key][field]}
        actors[key] = record
