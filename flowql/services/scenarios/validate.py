"""Full validation of a normalised scenario, naming the path of every problem.

Checks what normalising cannot: that `initial` exists, that every `goto` names a state, that
actors named in `actor`, `by` and `instructions` exist, that someone may perform each action
a state offers, that update instructions target what LetsFlow lets them set, that schemas are
valid JSON Schema without external references, and that every data function parses. What
flowql does not support is refused by name (or, where it is harmless, kept with a notice).
"""

from __future__ import annotations

from typing import Any

from flowql.errors import ValidationFailed
from flowql.services.scenarios.expressions import (
    ExpressionError,
    check_template,
    compile_expression,
    is_fn,
)
from flowql.services.scenarios.normalize import Normalized, Problems, normalize
from flowql.services.scenarios.schemas import check_schema, external_refs
from flowql.services.scenarios.state import UPDATE_PATH, is_service, matches


def _known_actor(scenario: dict[str, Any], name: Any) -> bool:
    if not isinstance(name, str):
        return False
    if name == "*" or (is_service(name) and len(name) > 8):
        return True
    actors = scenario["actors"]
    return name in actors or any(p.endswith("*") and matches(p, name) for p in actors)


class _Checker:
    def __init__(self, normalized: Normalized) -> None:
        self.scenario = normalized.scenario
        self.short = normalized.short_states
        self.problems: Problems = normalized.problems

    def transition_path(self, state: str, index: int) -> str:
        return f"states.{state}" if state in self.short else f"states.{state}.transitions.{index}"

    def run(self) -> None:
        states = self.scenario.get("states") or {}
        if states and "initial" not in states:
            self.problems.add("states.initial", "required: every scenario starts in `initial`")
        for key, state in states.items():
            self.check_state(key, state)
        for key, action in (self.scenario.get("actions") or {}).items():
            self.check_action(key, action)
        self.check_schemas()
        self.check_functions(self.scenario, "")

    def check_state(self, key: str, state: dict[str, Any]) -> None:
        states = self.scenario["states"]
        for actor in state.get("instructions", {}):
            if not _known_actor(self.scenario, actor) or actor == "*":
                self.problems.add(f"states.{key}.instructions.{actor}", f"unknown actor {actor!r}")
        for index, transition in enumerate(state.get("transitions", [])):
            path = self.transition_path(key, index)
            goto = transition.get("goto")
            if goto is not None and (not isinstance(goto, str) or goto not in states):
                self.problems.add(f"{path}.goto", f"transition to a missing state {goto!r}")
            if transition.get("on"):
                self.check_action_transition(path, key, transition)

    def check_action_transition(self, path: str, state: str, transition: dict[str, Any]) -> None:
        by = transition["by"]
        if not is_fn(by):
            for name in by:
                if not _known_actor(self.scenario, name):
                    self.problems.add(f"{path}.by", f"unknown actor {name!r}")
        action = self.scenario["actions"].get(transition["on"])
        if action is None or is_fn(by) or is_fn(action["actor"]):
            return
        if not all(isinstance(p, str) for p in [*by, *action["actor"]]):
            return  # a data function decides when it runs; a bad item is refused by name
        actors = list(self.scenario["actors"])
        services = [a for a in [*by, *action["actor"]] if isinstance(a, str) and is_service(a)]
        performers = [
            name
            for name in [*actors, *services]
            if any(matches(p, name) for p in action["actor"])
            and any(matches(p, name, by=True) for p in by)
        ]
        if not performers:
            self.problems.add(
                f"{path}.by",
                f"no actor may perform {transition['on']!r} in state {state!r}: "
                "the action's `actor` and the transition's `by` have nobody in common",
            )

    def check_action(self, key: str, action: dict[str, Any]) -> None:
        path = f"actions.{key}"
        actor = action.get("actor")
        if isinstance(actor, list):
            if not actor:
                self.problems.add(f"{path}.actor", "an action needs at least one actor")
            for name in actor:
                if not is_fn(name) and not _known_actor(self.scenario, name):
                    self.problems.add(f"{path}.actor", f"unknown actor {name!r}")
        elif not is_fn(actor):
            self.problems.add(
                f"{path}.actor", "must be an actor key, a list of them, or a data function"
            )
        updates = action.get("update", [])
        for index, instruction in enumerate(updates):
            where = f"{path}.update.{index}" if len(updates) > 1 else f"{path}.update"
            target = instruction.get("set")
            if not isinstance(target, str) or not UPDATE_PATH.match(target):
                self.problems.add(
                    f"{where}.set",
                    f"cannot set {target!r}: use title, tags, vars.…, actors.…, result, "
                    "previous or current.actor (simple dot paths)",
                )

    def check_schemas(self) -> None:
        schemas: list[tuple[str, Any]] = [("result", self.scenario.get("result"))]
        schemas += [(f"actors.{k}", v) for k, v in self.scenario.get("actors", {}).items()]
        schemas += [(f"vars.{k}", v) for k, v in self.scenario.get("vars", {}).items()]
        schemas += [
            (f"actions.{k}.response", a.get("response"))
            for k, a in self.scenario.get("actions", {}).items()
        ]
        for path, schema in schemas:
            if not isinstance(schema, dict) or is_fn(schema):
                continue
            for ref in external_refs(schema):
                self.problems.add(
                    f"{path}.{ref}",
                    "external schema references are not supported: flowql does not fetch "
                    "schemas; define the schema in the scenario",
                )
            problem = check_schema(schema)
            if problem:
                self.problems.add(path, f"not a valid JSON Schema: {problem}")

    def check_functions(self, value: Any, path: str) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                self.check_functions(item, f"{path}.{index}" if path else str(index))
            return
        if not isinstance(value, dict):
            return
        if len(value) == 1:
            key = next(iter(value))
            if isinstance(key, str) and key.startswith("<") and key.endswith(">"):
                self.check_function(key, value[key], self.author_path(path))
                return
        for key, item in value.items():
            self.check_functions(item, f"{path}.{key}" if path else str(key))

    def author_path(self, path: str) -> str:
        parts = path.split(".")
        short = len(parts) >= 4 and parts[0] == "states" and parts[1] in self.short
        if short and parts[2] == "transitions":
            return ".".join([*parts[:2], *parts[4:]])
        return path

    def check_function(self, kind: str, argument: Any, path: str) -> None:
        try:
            if kind == "<ref>":
                compile_expression(argument)
            elif kind == "<tpl>":
                template = argument.get("template") if isinstance(argument, dict) else argument
                check_template(template)
                if isinstance(argument, dict):
                    self.check_functions(argument.get("view"), f"{path}.view")
            elif kind == "<select>":
                if not isinstance(argument, dict) or "$" not in argument:
                    raise ExpressionError("<select> needs `$` (the value to select on) and options")
                for option, item in argument.items():
                    self.check_functions(item, f"{path}.{option}")
            else:
                raise ExpressionError(
                    f"unsupported data function {kind}: flowql knows <ref>, <tpl> and <select>"
                )
        except ExpressionError as exc:
            self.problems.add(path, str(exc))


def check(definition: Any, prefix: str = "definition") -> Normalized:
    """Normalise and validate; raise VALIDATION_ERROR naming every problem's path."""
    normalized = normalize(definition)
    if not normalized.problems.found:
        _Checker(normalized).run()
    found = normalized.problems.found
    if found:
        raise ValidationFailed({_join(prefix, path): problem for path, problem in found.items()})
    return normalized


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if path else prefix
