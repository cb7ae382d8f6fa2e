"""The two node types other domain modules return across the schema's cycles, found at run time.

A GraphQL graph is cyclic (a workflow's processes, a process's workflow; a message's agent, an
agent's messages; a scenario's processes, a process's scenario), but modules must not be:
`workflows` imports `messages`, `processes` imports `workflows` and `scenarios`, and the way
back goes through here. `Agent` (flowql.schema.workflows) and `Process` (flowql.schema.processes)
register themselves when their module is imported; `flowql.schema` imports every domain module
before it builds the schema, so a resolver that runs finds them. Annotations name them with
`strawberry.lazy` as before (type-only imports are not run-time dependencies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from flowql.schema.processes import Process
    from flowql.schema.workflows import Agent

T = TypeVar("T", bound=type[Any])

_registered: dict[str, type[Any]] = {}


def register(cls: T) -> T:
    """Class decorator (outermost, above `@strawberry.type`) of a node type named here."""
    _registered[cls.__name__] = cls
    return cls


def agent() -> type[Agent]:
    return cast("type[Agent]", _registered["Agent"])


def process() -> type[Process]:
    return cast("type[Process]", _registered["Process"])
