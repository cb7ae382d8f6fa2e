"""Filter inputs, declared once: each is derived from its service's filter dataclass.

The dataclass in `flowql.services` is the definition (names, types, defaults, and the
description in a field's `metadata["description"]`); `@filter_input(SourceFilter)` makes the
GraphQL input of the same fields and `to_filter()` turns an input back into the dataclass.
A list field (`field(default_factory=list)`) is optional in GraphQL (`[X!] = null`), and
fields the query takes as arguments instead (`exclude=`) are left out of the input.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import strawberry

F = TypeVar("F")
In = TypeVar("In", bound="FilterInput[Any]")


class FilterInput(Generic[F]):
    """Base of the derived inputs (typing only: `to_filter` returns the source dataclass)."""

    __filter_source__: type[Any]
    __filter_lists__: frozenset[str]

    def to_filter(self, **extra: Any) -> F:
        """The service's filter: this input's values, plus `extra` (the excluded fields)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            values[f.name] = list(value or []) if f.name in self.__filter_lists__ else value
        return typing.cast(F, self.__filter_source__(**values, **extra))


def filter_input(
    source: type[F], *, name: str | None = None, exclude: Iterable[str] = ()
) -> Callable[[type[In]], type[In]]:
    """Class decorator: give the (empty) input class the fields of `source`, then make it a
    Strawberry input. The class name is the GraphQL name unless `name` is given."""
    skipped = frozenset(exclude)

    def wrap(cls: type[In]) -> type[In]:
        hints = typing.get_type_hints(source)
        annotations: dict[str, Any] = {}
        lists: set[str] = set()
        for f in dataclasses.fields(source):  # type: ignore[arg-type]
            if f.name in skipped:
                continue
            kind = hints[f.name]
            default: Any = f.default
            if f.default_factory is not dataclasses.MISSING:
                kind, default = kind | None, None
                lists.add(f.name)
            annotations[f.name] = kind
            description = f.metadata.get("description")
            value = (
                strawberry.field(default=default, description=description)
                if description
                else default
            )
            setattr(cls, f.name, value)
        cls.__annotations__ = annotations
        cls.__filter_source__ = source
        cls.__filter_lists__ = frozenset(lists)
        return strawberry.input(cls, name=name)

    return wrap
