"""A process as a deterministic projection of its events: instantiate, action, timeout.

Pure functions over LetsFlow's process JSON (the `view`); nothing here touches the database.
Every event carries the sha256 hash of the one before it (`previous`) and its own `hash`,
taken over its canonical JSON, so the history is a hash chain. `replay` rebuilds a process
from its scenario and events with the same code that produced them.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flowql.services.scenarios.expressions import ExpressionError, apply_fn, canonical_json
from flowql.services.scenarios.schemas import property_defaults, schema_errors
from flowql.services.scenarios.state import (
    UpdateError,
    actor_keys,
    actor_view,
    apply_update,
    instantiate_actors,
    instantiate_state,
    is_service,
    matches,
    process_errors,
)


class ReplayError(ValueError):
    """The events do not replay into a process (the history was altered or is inconsistent)."""


def iso(moment: datetime) -> str:
    """JavaScript's Date JSON: UTC with milliseconds, e.g. 2025-01-31T09:30:00.000Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def truncate(moment: datetime) -> datetime:
    """Event times are kept to the millisecond, so the stored time hashes the same."""
    return moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)


def event_hash(event: dict[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def with_hash(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "hash": event_hash(event)}


def event_kind(event: dict[str, Any]) -> str:
    if "scenario" in event and "previous" not in event:
        return "instantiate"
    return "action" if "action" in event else "timeout"


@dataclass
class StepOutcome:
    view: dict[str, Any]
    event: dict[str, Any]
    # (field, message): field is `action`, `actor` or `response`, where the problem lies.
    errors: list[tuple[str, str]] = field(default_factory=list)
    entered: bool = False  # a state was entered (not `goto: ~`)

    @property
    def skipped(self) -> bool:
        return bool(self.errors)


# -- instantiate --------------------------------------------------------------------------------


def instantiate(
    scenario: dict[str, Any],
    scenario_id: str,
    process_id: str,
    actors: dict[str, Any],
    vars: dict[str, Any],
    timestamp: datetime,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A new process in its initial state, and problems (path, message) with the input."""
    event = with_hash(
        {
            "id": process_id,
            "timestamp": iso(timestamp),
            "scenario": scenario_id,
            "actors": actors,
            "vars": vars,
        }
    )
    records, problems = instantiate_actors(scenario, actors)
    view: dict[str, Any] = {
        "id": process_id,
        "title": scenario.get("title") or scenario.get("name") or "",
        "tags": list(scenario.get("tags") or []),
        "scenario": {"id": scenario_id, **scenario},
        "actors": records,
        "vars": {**property_defaults(scenario["vars"]), **copy.deepcopy(vars)},
        "result": copy.deepcopy(scenario["result"].get("default")),
        "current": {},
        "previous": [],
        "events": [event],
    }
    for error in [] if problems else process_errors(view):
        problems.append(("vars" if error.startswith("Variable") else "actors", error))
    if not problems:
        try:
            view["current"] = instantiate_state(view, "initial", event["timestamp"])
        except ExpressionError as exc:
            problems.append(("states.initial", str(exc)))
    return view, problems


# -- actions ------------------------------------------------------------------------------------


def _action_errors(
    view: dict[str, Any], action: str, actor_key: str, response: Any
) -> list[tuple[str, str]]:
    """LetsFlow's checks before an action is applied, in its order."""
    scenario = view["scenario"]
    state = view["current"]["key"]
    errors: list[tuple[str, str]] = []
    transitions = scenario["states"][state].get("transitions", [])
    if not any(t.get("on") == action for t in transitions):
        errors.append(("action", f"Action '{action}' is not allowed in state '{state}'"))
    service = actor_key[8:] if is_service(actor_key) else None
    if service is None and actor_key not in view["actors"]:
        errors.append(("actor", f"Actor '{actor_key}' is not defined in the scenario"))
    definition = scenario["actions"].get(action)
    if definition is None:
        errors.append(("action", f"Action '{action}' is not defined in the scenario"))
        return errors
    instance = apply_fn({k: v for k, v in definition.items() if k != "update"}, view)
    patterns = instance.get("actor")
    allowed = actor_keys(view, patterns if isinstance(patterns, list) else [patterns])
    if actor_key not in allowed and (service or actor_key in view["actors"]):
        who = f"Service '{service}'" if service else f"Actor '{actor_key}'"
        errors.append(("actor", f"{who} is not allowed to perform action '{action}'"))
    if service is not None and not any(
        n.get("service") == service and n.get("trigger") in (None, action)
        for n in view["current"].get("notify", [])
    ):
        errors.append(
            ("actor", f"Service '{service}' is not expected to trigger action '{action}'")
        )
    if not instance.get("if"):
        errors.append(("action", f"Action '{action}' is not allowed due to if condition"))
    schema = instance.get("response") or {}
    errors += [("response", f"Response is invalid: {p}") for p in schema_errors(schema, response)]
    return errors


def _next_transition(view: dict[str, Any], action: str, actor_key: str) -> dict[str, Any] | None:
    state = view["scenario"]["states"][view["current"]["key"]]
    for transition in state.get("transitions", []):
        if transition.get("on") != action:
            continue
        by = apply_fn(transition["by"], view)
        if apply_fn(transition["if"], view) and any(matches(p, actor_key, by=True) for p in by):
            return transition  # type: ignore[no-any-return]
    return None


def _log_entry(
    view: dict[str, Any], transition: dict[str, Any], action: str, event: dict[str, Any]
) -> dict[str, Any] | None:
    definition = view["scenario"]["actions"][action]
    log = apply_fn(transition.get("log") or {}, view)
    if not log.get("if", True):
        return None
    extra = {k: v for k, v in log.items() if k not in ("title", "description", "if")}
    return {
        "title": log.get("title", apply_fn(definition.get("title", action), view)),
        "description": log.get("description", apply_fn(definition.get("description", ""), view)),
        "timestamp": event["timestamp"],
        "actor": event["actor"],
        **extra,
    }


def step(
    view: dict[str, Any],
    action: str,
    actor: dict[str, Any],
    response: Any,
    timestamp: datetime,
) -> StepOutcome:
    """Perform `action` as `actor` (`{"key": ..., ...}`); a refused action is a skipped event."""
    event: dict[str, Any] = {
        "previous": view["events"][-1]["hash"],
        "timestamp": iso(timestamp),
        "action": action,
        "actor": actor,
        "response": response,
        "skipped": False,
    }
    process = {**view, "events": [*view["events"], event]}
    for key in ("actors", "vars", "result", "title", "tags", "previous"):
        process[key] = copy.deepcopy(view[key])
    transition: dict[str, Any] | None = None
    process["current"] = {
        **view["current"],
        "response": response,
        "actor": actor_view(view, actor["key"]),
    }
    try:
        errors = _action_errors(process, action, actor["key"], response)
        if not errors:
            errors, transition = _apply(process, action, actor["key"])
        if not errors:
            assert transition is not None
            return _advance(view, process, with_hash(event), transition)
    except (ExpressionError, UpdateError) as exc:
        errors = [("action", str(exc))]
    skipped = with_hash({**event, "skipped": True, "errors": [m for _, m in errors]})
    return StepOutcome({**view, "events": [*view["events"], skipped]}, skipped, errors)


def _advance(
    view: dict[str, Any], process: dict[str, Any], event: dict[str, Any], transition: dict[str, Any]
) -> StepOutcome:
    """After the updates: log the transition, enter the next state (or stay on `goto: ~`)."""
    process["events"] = [*view["events"], event]
    entry = _log_entry(process, transition, event["action"], event)
    if entry is not None:
        process["previous"].append(entry)
    goto = transition.get("goto")
    target = goto or view["current"]["key"]
    started = event["timestamp"] if goto else view["current"]["timestamp"]
    process["current"] = instantiate_state(process, target, started)
    return StepOutcome(process, event, [], entered=goto is not None)


def _apply(
    process: dict[str, Any], action: str, actor_key: str
) -> tuple[list[tuple[str, str]], dict[str, Any] | None]:
    for instruction in process["scenario"]["actions"][action]["update"]:
        applied = apply_fn({k: v for k, v in instruction.items() if k != "stub"}, process)
        if applied.get("if"):
            apply_update(process, applied, actor_key)
    errors = [("response", e) for e in process_errors(process)]
    transition = _next_transition(process, action, actor_key)
    if transition is None:
        state = process["current"]["key"]
        message = (
            f"No transition found for action '{action}' in state '{state}' for actor '{actor_key}'"
        )
        errors.append(("action", message))
    return errors, transition


# -- timeouts -----------------------------------------------------------------------------------


def _timeouts(view: dict[str, Any]) -> list[tuple[datetime, dict[str, Any]]]:
    """Timeout transitions of the current state with their due times, earliest first; a
    timeout that already fired in this state (`goto: ~`) is not due again."""
    current = view["current"]
    state = view["scenario"]["states"][current["key"]]
    entered = parse_iso(current["timestamp"])
    fired = [
        parse_iso(e["timestamp"])
        for e in view["events"]
        if event_kind(e) == "timeout" and parse_iso(e["timestamp"]) >= entered
    ]
    last = max(fired) if fired else None
    due = [
        (entered + timedelta(seconds=t["after"]), t)
        for t in state.get("transitions", [])
        if "after" in t
    ]
    return sorted(
        [(when, t) for when, t in due if last is None or when > last], key=lambda item: item[0]
    )


def next_timeout(view: dict[str, Any], after: datetime | None = None) -> datetime | None:
    """When the process should be woken for a timeout (durable `wake_at`), if ever."""
    timeouts = _timeouts(view) if view.get("current") else []
    later = [when for when, _ in timeouts if after is None or when > after]
    return later[0] if later else None


def timeout(view: dict[str, Any], now: datetime, at: datetime | None = None) -> StepOutcome | None:
    """Fire the first due timeout transition whose `if` holds, or None when none is due.

    The event is dated when the transition became due (not later than the previous event);
    `at` dates it exactly (replay)."""
    last_event = parse_iso(view["events"][-1]["timestamp"])
    for due, transition in _timeouts(view):
        if due > now:
            break
        if not apply_fn(transition["if"], view):
            continue
        moment = at or max(due, last_event)
        event = with_hash({"previous": view["events"][-1]["hash"], "timestamp": iso(moment)})
        process = {**view, "events": [*view["events"], event]}
        goto = transition.get("goto")
        if goto is not None:
            process["current"] = instantiate_state(process, goto, event["timestamp"])
        return StepOutcome(process, event, [], entered=goto is not None)
    return None


# -- replay -------------------------------------------------------------------------------------


def replay(scenario: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """The process that `events` (LetsFlow event JSON, oldest first) project to."""
    if not events or event_kind(events[0]) != "instantiate":
        raise ReplayError("the first event must instantiate the process")
    first = events[0]
    view, problems = instantiate(
        scenario,
        first["scenario"],
        first["id"],
        first.get("actors") or {},
        first.get("vars") or {},
        parse_iso(first["timestamp"]),
    )
    if problems:
        raise ReplayError(f"the process does not instantiate: {problems[0][1]}")
    view["events"] = [first]
    for index, event in enumerate(events[1:], start=1):
        view = _replay_one(view, event, index)
    return view


def _replay_one(view: dict[str, Any], event: dict[str, Any], index: int) -> dict[str, Any]:
    moment = parse_iso(event["timestamp"])
    if event_kind(event) == "timeout":
        outcome = timeout(view, moment, at=moment)
    elif event.get("skipped"):
        return {**view, "events": [*view["events"], event]}
    else:
        outcome = step(view, event["action"], event["actor"], event.get("response"), moment)
    if outcome is None or outcome.skipped:
        raise ReplayError(f"event {index} does not apply to the process it follows")
    return {**outcome.view, "events": [*view["events"], event]}
