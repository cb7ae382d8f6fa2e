"""The catalog of agent types (`agentTypes`): what each does, its options as JSON Schema with
their defaults, an example that validates, and what it emits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from flowql.agents.base import AgentType, Kind
from flowql.agents.registry import REGISTRY
from flowql.resolvers.context import Context


@dataclass
class AgentTypeInfo:
    name: str
    kind: str
    description: str
    is_trigger: bool
    options_schema: dict[str, Any]
    defaults: dict[str, Any]
    example: dict[str, Any]
    emits: str
    secret_options: list[str]


def _defaults(agent_type: AgentType) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, info in agent_type.options.model_fields.items():
        if info.is_required():
            continue
        value = info.get_default(call_default_factory=True)
        found[name] = TypeAdapter(Any).dump_python(value, mode="json")
    return found


def describe(agent_type: AgentType) -> AgentTypeInfo:
    return AgentTypeInfo(
        name=agent_type.name,
        kind=agent_type.kind.value,
        description=agent_type.description,
        is_trigger=agent_type.kind is Kind.TRIGGER,
        options_schema=agent_type.options.model_json_schema(),
        defaults=_defaults(agent_type),
        example=dict(agent_type.example),
        emits=agent_type.emits,
        secret_options=list(agent_type.secret_options),
    )


def agent_types(ctx: Context, trigger: bool | None = None) -> list[AgentTypeInfo]:
    ctx.principal.ensure_authenticated()
    return [
        describe(t)
        for t in sorted(REGISTRY.values(), key=lambda t: (t.kind is not Kind.TRIGGER, t.name))
        if trigger is None or (t.kind is Kind.TRIGGER) == trigger
    ]


def agent_type(ctx: Context, name: str) -> AgentTypeInfo | None:
    ctx.principal.ensure_authenticated()
    found = REGISTRY.get(name)
    return describe(found) if found is not None else None
