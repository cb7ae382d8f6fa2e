"""What a scenario leaves implicit, made explicit (LetsFlow's normalisation does the same).

- end states named in a `goto` (`(done)`) exist;
- actions used only by transitions exist, performable by the transitions' `by` actors;
- a service that may act in a state is notified on entering it, with `trigger` set when there
  is exactly one action it may perform there.
"""

from __future__ import annotations

import re
from typing import Any

END_STATE = re.compile(r"^\(.+\)$")


def key_to_title(key: str) -> str:
    return key.strip("()").rstrip("*").replace("_", " ").strip()


def add_implicit_parts(scenario: dict[str, Any]) -> None:
    _add_implicit_end_states(scenario["states"])
    _add_implicit_actions(scenario)
    _add_implicit_notify(scenario)


def _add_implicit_end_states(states: dict[str, Any]) -> None:
    for state in list(states.values()):
        for transition in state.get("transitions", []):
            goto = transition.get("goto")
            if isinstance(goto, str) and END_STATE.match(goto) and goto not in states:
                states[goto] = {
                    "title": key_to_title(goto),
                    "description": "",
                    "instructions": {},
                    "notify": [],
                }


def _add_implicit_actions(scenario: dict[str, Any]) -> None:
    actions = scenario["actions"]
    implicit: dict[str, list[str]] = {}
    for state in scenario["states"].values():
        for transition in state.get("transitions", []):
            key = transition.get("on")
            if not key or key in actions:
                continue
            by = transition["by"] if isinstance(transition["by"], list) else ["*"]
            implicit.setdefault(key, [])
            implicit[key].extend(a for a in by if a not in implicit[key])
    for key, actors in implicit.items():
        # `by` may hold a data function or a bad item (an object): only names can be services.
        services = [a for a in actors if isinstance(a, str) and a.startswith("service:")]
        actor = ["*", *services] if "*" in actors else actors
        actions[key] = {
            "title": key_to_title(key),
            "description": "",
            "if": True,
            "actor": actor,
            "response": {},
            "update": [],
        }


def _add_implicit_notify(scenario: dict[str, Any]) -> None:
    """A service that may act in a state is notified on entering it (LetsFlow's implicit notify)."""
    for state in scenario["states"].values():
        services: dict[str, list[str]] = {}
        for transition in state.get("transitions", []):
            action = scenario["actions"].get(transition.get("on") or "")
            if action is None:
                continue
            allowed = action["actor"] if isinstance(action["actor"], list) else []
            by = transition.get("by") if isinstance(transition.get("by"), list) else []
            # Names only: an `actor`/`by` item may be a data function (an object), or a bad
            # item the checker refuses later; neither names a service (nor is hashable).
            names = dict.fromkeys(n for n in [*allowed, *by] if isinstance(n, str))
            for name in names:
                if name.startswith("service:"):
                    in_both = name in allowed or "*" in allowed
                    if in_both and (name in by or "*" in by):
                        services.setdefault(name[8:], []).append(transition["on"])
        notified = {n.get("service") for n in state["notify"]}
        for service, actions in services.items():
            if service not in notified:
                unique = list(dict.fromkeys(actions))
                trigger = unique[0] if len(unique) == 1 else None
                state["notify"].append(
                    {"service": service, "after": 0, "if": True, "trigger": trigger}
                )
