"""The catalog of agent types: what a workflow can be built from."""

from __future__ import annotations

import strawberry

from flowql.resolvers import agent_types as resolve
from flowql.resolvers.agent_types import AgentTypeInfo
from flowql.schema.base import JSON, Info


@strawberry.type(description="An agent type: what it does, its options and what it emits.")
class AgentType:
    name: str
    kind: str = strawberry.field(description="trigger or action.")
    description: str
    is_trigger: bool = strawberry.field(description="Whether its agents start processes.")
    options_schema: JSON = strawberry.field(
        description="Its options as JSON Schema (any string option may be a Liquid template)."
    )
    defaults: JSON = strawberry.field(description="The value of every option left out.")
    example: JSON = strawberry.field(description="Options that make a working agent.")
    emits: str = strawberry.field(description="What its agents emit, in a sentence.")
    secret_options: list[str] = strawberry.field(
        description="Options stored encrypted and never returned."
    )

    @classmethod
    def of(cls, found: AgentTypeInfo) -> AgentType:
        return cls(
            name=found.name,
            kind=found.kind,
            description=found.description,
            is_trigger=found.is_trigger,
            options_schema=found.options_schema,
            defaults=found.defaults,
            example=found.example,
            emits=found.emits,
            secret_options=found.secret_options,
        )


@strawberry.type
class Query:
    @strawberry.field(
        description="Every agent type, triggers first; `trigger` keeps only triggers (true) or "
        "only actions (false)."
    )
    def agent_types(self, info: Info, trigger: bool | None = None) -> list[AgentType]:
        return [AgentType.of(t) for t in resolve.agent_types(info.context, trigger)]

    @strawberry.field(description="One agent type by name (null when there is none).")
    def agent_type(self, info: Info, name: str) -> AgentType | None:
        found = resolve.agent_type(info.context, name)
        return AgentType.of(found) if found is not None else None
