"""The agent types flowql knows, each with a typed options schema checked when an agent is saved.

Options may hold Liquid templates (`{{ message.email }}`); they are rendered over the incoming
message when the agent runs, so the schema checks shape here, not rendered values. A new agent
type is a module in this room that exports `TYPES`; add it to `_MODULES`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from flowql.agents import control, core, files, javascript, mail, stateful, text, web
from flowql.agents.base import AgentType, Options
from flowql.agents.templating import check_syntax
from flowql.errors import ValidationFailed

_MODULES = (core, web, text, stateful, mail, javascript, files, control)

REGISTRY: dict[str, AgentType] = {t.name: t for module in _MODULES for t in module.TYPES}


def secret_fields(type_name: str) -> tuple[str, ...]:
    """Options whose values are secrets: encrypted at rest and never returned."""
    agent_type = REGISTRY.get(type_name)
    return agent_type.secret_options if agent_type else ()


def get_type(name: str, field: str = "type") -> AgentType:
    agent_type = REGISTRY.get(name)
    if agent_type is None:
        raise ValidationFailed.one(
            field, f"unknown agent type {name!r}; known: {', '.join(REGISTRY)}"
        )
    return agent_type


def option_problems(type_name: str, options: Any, field: str = "options") -> dict[str, str]:
    """Everything wrong with an agent's options at once, by path (`options.cases.0.receiver`):
    shape and types from the type's options model, then the syntax of every template."""
    agent_type = get_type(type_name)
    if not isinstance(options, dict):
        return {field: "must be an object"}
    problems: dict[str, str] = {}
    try:
        agent_type.options.model_validate(options)
    except ValidationError as exc:
        for err in exc.errors():
            path = ".".join([field, *(str(p) for p in err["loc"])])
            problems.setdefault(path, err["msg"])
    for path, problem in check_syntax(options, field).items():
        problems.setdefault(path, problem)
    conditions: dict[str, Any] = {}
    if type_name == "filter" and "condition" in options:
        conditions[f"{field}.condition"] = options["condition"]
    if type_name == "switch" and isinstance(options.get("cases"), list):
        for index, case in enumerate(options["cases"]):
            if isinstance(case, dict) and isinstance(case.get("condition"), str):
                conditions[f"{field}.cases.{index}.condition"] = case["condition"]
    for condition_path, expression in conditions.items():
        source = str(expression).strip()
        if source.startswith(("{{", "{%")):
            continue  # a template: checked above
        for path, problem in check_syntax(
            "{% if " + source + " %}{% endif %}", condition_path
        ).items():
            problems.setdefault(path, problem)
    return problems


def validate_options(type_name: str, options: dict[str, Any], field: str = "options") -> Options:
    problems = option_problems(type_name, options, field)
    if problems:
        raise ValidationFailed(problems)
    return get_type(type_name).options.model_validate(options)
