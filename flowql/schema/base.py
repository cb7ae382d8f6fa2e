"""Shared GraphQL building blocks: connections, page info, row -> type conversion, Info."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import strawberry
from strawberry.types import Info as StrawberryInfo
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from flowql.errors import ValidationFailed
from flowql.models import Row
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs

if TYPE_CHECKING:
    JSON = Any  # strawberry's JSON scalar; to the type checker, any JSON value
else:
    from strawberry.scalars import JSON

Info = StrawberryInfo[Context, None]
T = TypeVar("T")
N = TypeVar("N")


class FromRow:
    """Mixin for output types whose plain fields copy a row's attributes of the same name."""

    @classmethod
    def from_row(cls, row: Any) -> Self:
        values = {f.name: getattr(row, f.name) for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        return cls(**values)

    @classmethod
    def from_rows(cls, rows: Iterable[Any]) -> list[Self]:
        return [cls.from_row(row) for row in rows]

    @classmethod
    def maybe(cls, row: Any | None) -> Self | None:
        return None if row is None else cls.from_row(row)


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A Relay-style page of results, newest first unless said otherwise.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int

    @strawberry.field
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @classmethod
    def of(cls, page: Page[Any], convert: Callable[[Any], T]) -> Connection[T]:
        edges = [Edge(cursor=Page.cursor(row), node=convert(row)) for row in page.rows]
        return Connection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=page.total,
        )


def page_args(
    first: int | None,
    after: str | None,
    offset: int | None = None,
    descending: bool = True,
    info: Info | None = None,
) -> PageArgs:
    """With `info`, the page skips its COUNT(*) unless the query asks for `totalCount`."""
    count = info is None or selects(info, "totalCount")
    return PageArgs(first=first, after=after, offset=offset, descending=descending, count=count)


def selects(info: Info, name: str) -> bool:
    """Whether the current field's selection names the field `name` (fragments included)."""
    pending: list[Selection] = []
    for field in info.selected_fields:
        pending.extend(field.selections if isinstance(field, SelectedField) else [field])
    while pending:
        selection = pending.pop()
        if isinstance(selection, SelectedField):
            if selection.name == name:
                return True
        elif isinstance(selection, FragmentSpread | InlineFragment):
            pending.extend(selection.selections)
    return False


def ident(id: uuid.UUID | None, number: int | None) -> uuid.UUID | int:
    """Objects are addressed by UUID `id` or by their sequential `number`."""
    if id is not None:
        return id
    if number is not None:
        return number
    raise ValidationFailed.one("id", "give id or number")


__all__ = [
    "JSON",
    "Connection",
    "Edge",
    "FromRow",
    "Info",
    "PageInfo",
    "Row",
    "ident",
    "page_args",
    "selects",
]
