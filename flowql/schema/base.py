"""Shared GraphQL building blocks: connections, page info, row -> type conversion, Info."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, cast

import strawberry
from strawberry.types import Info as StrawberryInfo
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from flowql.errors import ValidationFailed
from flowql.models import Row
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs, encode_cursor
from flowql.schema.documents import context_only

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
        fields = getattr(row, "_fields", None)
        if fields is not None:
            # A plain row; that of a pruned list (`node_columns`) lacks the columns nobody
            # asked for, and those fields stay None (never read: not selected).
            plan = _row_plan(cls, fields)  # type: ignore[arg-type]
            return cls(**{name: None if i < 0 else row[i] for name, i in plan})
        names: tuple[str, ...] = _init_fields(cls)  # type: ignore[arg-type]
        return cls(**{name: getattr(row, name) for name in names})

    @classmethod
    def from_rows(cls, rows: Iterable[Any]) -> list[Self]:
        rows = list(rows)
        fields = getattr(rows[0], "_fields", None) if rows else None
        if fields is None or cls.from_row.__func__ is not FromRow.from_row.__func__:  # type: ignore[attr-defined]
            return [cls.from_row(row) for row in rows]
        # Plain rows of one result: the same columns in each (asked once, not per row).
        plan = _row_plan(cls, fields)  # type: ignore[arg-type]
        return [cls(**{name: None if i < 0 else row[i] for name, i in plan}) for row in rows]

    @classmethod
    def maybe(cls, row: Any | None) -> Self | None:
        return None if row is None else cls.from_row(row)


@functools.cache
def _init_fields(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)


@functools.cache
def _row_plan(cls: type[Any], fields: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """Each init field of `cls` and its position in rows of these columns (-1: absent)."""
    position = {name: i for i, name in enumerate(fields)}
    return tuple((name, position.get(name, -1)) for name in _init_fields(cls))  # type: ignore[arg-type]


R = TypeVar("R")


def when_loaded(pending: Awaitable[Any], convert: Callable[[Any], R]) -> R:
    """`convert` of a dataloader's answer: at once when the answer is already there (the list
    above prefetched it), else an awaitable of it, which graphql-core awaits.

    A synchronous resolver costs a plain call; an async one costs a coroutine and a task per
    item, which on a page of hundreds is most of the time spent on the relation.
    """
    if isinstance(pending, asyncio.Future) and pending.done():
        return convert(pending.result())

    async def later() -> R:
        return convert(await pending)

    return cast(R, later())


def subtree_names(info: Info) -> set[str]:
    """Every field name selected anywhere under the current field (fragments included): lists
    use it to prefetch the relations the query will ask for, in one statement each."""
    names: set[str] = set()
    pending: list[Selection] = list(info.selected_fields)
    while pending:
        selection = pending.pop()
        if isinstance(selection, SelectedField):
            names.add(selection.name)
        pending.extend(selection.selections)
    return names


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
    # Nodes and their rows' numbers (the cursors): edges are only built when asked for.
    _nodes: strawberry.Private[list[T]]
    _numbers: strawberry.Private[list[int]]
    _page_info: strawberry.Private[PageInfo]
    _total_count: strawberry.Private[int]

    @strawberry.field
    def edges(self) -> list[Edge[T]]:
        return [
            Edge(cursor=encode_cursor(n), node=node)
            for n, node in zip(self._numbers, self._nodes, strict=True)
        ]

    @strawberry.field
    def page_info(self) -> PageInfo:
        return self._page_info

    @strawberry.field
    def total_count(self) -> int:
        return self._total_count

    @strawberry.field
    @context_only
    def nodes(self) -> list[T]:
        return self._nodes

    @classmethod
    def of(cls, page: Page[Any], convert: Callable[[Any], T]) -> Connection[T]:
        numbers = [row.number or 0 for row in page.rows]
        return Connection(
            _nodes=[convert(row) for row in page.rows],
            _numbers=numbers,
            _page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=encode_cursor(numbers[0]) if numbers else None,
                end_cursor=encode_cursor(numbers[-1]) if numbers else None,
            ),
            _total_count=page.total,
        )


def page_args(
    first: int | None,
    after: str | None,
    offset: int | None = None,
    descending: bool = True,
    info: Info | None = None,
    model: type[Any] | None = None,
    needs: Mapping[str, tuple[str, ...]] | None = None,
) -> PageArgs:
    """With `info`, the page skips its COUNT(*) unless the query asks for `totalCount`; with
    `model` too, it fetches only the columns the nodes' selected fields need (see
    `node_columns`)."""
    count = info is None or selects(info, "totalCount")
    columns = None if info is None or model is None else node_columns(info, model, needs or {})
    return PageArgs(
        first=first, after=after, offset=offset, descending=descending, count=count, columns=columns
    )


def node_columns(
    info: Info, model: type[Any], needs: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...] | None:
    """The columns of `model` a connection's selected node fields read: a field named like a
    column reads it, a resolver field reads what `needs` says; any other field (or a field of a
    type condition) means all columns (None), so pruning is never wrong, only less useful."""
    table_columns = model.__table__.c
    wanted = {"id", "number"}
    pending: list[Selection] = []
    for field in info.selected_fields:
        for selection in field.selections:
            if isinstance(selection, SelectedField) and selection.name == "nodes":
                pending.extend(selection.selections)
            elif isinstance(selection, SelectedField) and selection.name == "edges":
                for edge in selection.selections:
                    if isinstance(edge, SelectedField) and edge.name == "node":
                        pending.extend(edge.selections)
                    elif not isinstance(edge, SelectedField):
                        return None
            elif not isinstance(selection, SelectedField):
                return None
    return _columns_read(pending, table_columns, needs, wanted)


def relation_columns(
    info: Info, relation: str, model: type[Any], needs: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...] | None:
    """The columns of `model` that the fields selected under every `relation` field in the
    current field's subtree read (as `node_columns`: a field named like a column, or what
    `needs` says of a resolver field); None (all columns) if any of them is something else."""
    table_columns = model.__table__.c
    wanted = {"id", "number"}
    pending: list[Selection] = list(info.selected_fields)
    under: list[Selection] = []
    while pending:
        selection = pending.pop()
        if isinstance(selection, SelectedField) and selection.name == relation:
            under.extend(selection.selections)
        pending.extend(selection.selections)
    return _columns_read(under, table_columns, needs, wanted)


def _columns_read(
    pending: list[Selection],
    table_columns: Any,
    needs: Mapping[str, tuple[str, ...]],
    wanted: set[str],
) -> tuple[str, ...] | None:
    """The columns the selections read: a field named like a column, or what `needs` says of a
    resolver field; None (all columns) if any of them is something else."""
    while pending:
        selection = pending.pop()
        if not isinstance(selection, SelectedField):
            pending.extend(selection.selections)
            continue
        name = _snake(selection.name)
        if name in needs:
            wanted.update(needs[name])
        elif name in table_columns:
            wanted.add(name)
        elif name != "__typename":
            return None
    return tuple(c.name for c in table_columns if c.name in wanted)


@functools.cache
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


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


def ident(
    id: uuid.UUID | None, number: int | None, field: str = "id", number_field: str = "number"
) -> uuid.UUID | int:
    """Objects are addressed by UUID `id` or by their sequential `number` (the id wins if both are
    given); `field`/`number_field` name the argument pair, e.g. `workspaceId`/`workspaceNumber`."""
    if id is not None:
        return id
    if number is not None:
        return number
    raise ValidationFailed.one(field, f"give {field} or {number_field}")


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
