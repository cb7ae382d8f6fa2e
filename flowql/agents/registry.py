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


def validate_options(type_name: str, options: dict[str, Any], field: str = "options") -> Options:
    agent_type = get_type(type_name)
    try:
        parsed = agent_type.options.model_validate(options)
    except ValidationError as exc:
        fields = {
            ".".join([field, *(str(p) for p in err["loc"])]): err["msg"] for err in exc.errors()
        }
        raise ValidationFailed(fields) from None
    problems = check_syntax(options, field)
    if type_name in ("filter",) and "condition" in options:
        problems.update(
            check_syntax(
                "{% if " + str(options["condition"]) + " %}{% endif %}", f"{field}.condition"
            )
        )
    if problems:
        raise ValidationFailed(problems)
    return parsed
