"""FastLeaves answers plain leaf fields in a tight loop; whatever it answers, and every error it
leaves to graphql-core, must come out exactly as graphql-core's own executor would have it."""

from __future__ import annotations

import asyncio
import datetime
import enum
import uuid
from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from flowql.schema.documents import FastLeaves, context_only, with_fast_leaves


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    id: uuid.UUID
    name: str
    colour: Colour
    when: datetime.datetime
    note: str | None
    count: int

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field
    @context_only
    def twins(self, info: strawberry.Info) -> list[Item]:
        """Called directly by FastLeaves; raises for the item without a name."""
        assert info.context == {"who": "test"}
        return [item(name=f"{self.name} a"), item(name=f"{self.name} b", count=None)]


def item(**changes: Any) -> Item:
    values: dict[str, Any] = {
        "id": uuid.UUID(int=7),
        "name": "seven",
        "colour": Colour.RED,
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "note": None,
        "count": 7,
    }
    values.update(changes)
    return Item(**values)


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:  # an item in error leaves the others
        broken = item()
        broken.name = None  # type: ignore[assignment]  # a non-null field without a value
        wrong = item(count="many")  # does not coerce to Int
        bad_colour = item(colour="green")  # not a member of the enum
        return [item(), item(note="hi", colour=Colour.BLUE), broken, wrong, bad_colour]

    @strawberry.field
    async def later(self) -> list[Item]:
        return [item(), item(name="eight")]

    @strawberry.field
    @context_only
    def plain(self) -> list[Item]:
        """`(self)` only: called directly without an info."""
        return [item(name="nine")]


QUERY = (
    "{ items { id name colour when note count shout twins { name count } } "
    "later { name note colour twins { id } } plain { name twins { name } } }"
)


@pytest.fixture(params=[False, True], ids=["graphql-core", "fast leaves"])
def schema(request: pytest.FixtureRequest) -> strawberry.Schema:
    schema = strawberry.Schema(query=Query)
    if request.param:
        schema.execution_context_class = with_fast_leaves(StrawberryGraphQLCoreExecutionContext)
    return schema


def answer(schema: strawberry.Schema) -> tuple[Any, list[tuple[str, Any]]]:
    result = asyncio.run(schema.execute(QUERY, context_value={"who": "test"}))
    errors = sorted((e.message, e.path) for e in result.errors or [])
    return result.data, errors


def test_fast_leaves_answer_as_graphql_core_does() -> None:
    plain = strawberry.Schema(query=Query)
    fast = strawberry.Schema(query=Query)
    fast.execution_context_class = with_fast_leaves(StrawberryGraphQLCoreExecutionContext)
    expected = answer(plain)
    assert expected[1], "the query is meant to produce field errors"
    assert answer(fast) == expected


def test_fast_leaves_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain leaves do not go through graphql-core's execute_field; resolver fields do."""
    fast = strawberry.Schema(query=Query)
    fast.execution_context_class = with_fast_leaves(StrawberryGraphQLCoreExecutionContext)
    seen: list[str] = []
    original = StrawberryGraphQLCoreExecutionContext.execute_field

    def counting(self: Any, parent: Any, source: Any, details: Any, *args: Any) -> Any:
        seen.append(f"{parent.name}.{details[0].node.name.value}")
        return original(self, parent, source, details, *args)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", counting)
    answer(fast)
    assert "Item.shout" in seen and "Query.items" in seen
    assert "Item.id" not in seen and "Item.when" not in seen
    assert "Item.twins" not in seen  # context_only: called directly
    assert "Query.plain" not in seen
    # Only the fields whose value needs graphql-core's error path went back to it.
    assert {f for f in seen if f.startswith("Item.")} == {
        "Item.shout",
        "Item.colour",
        "Item.count",
        "Item.name",
    }


def test_with_fast_leaves_wraps_once() -> None:
    once = with_fast_leaves(StrawberryGraphQLCoreExecutionContext)
    assert issubclass(once, FastLeaves)
    assert with_fast_leaves(once) is once


def test_broken_reads_are_reported_alike(schema: strawberry.Schema) -> None:
    _, errors = answer(schema)
    assert any(path == ["items", 2, "name"] for _, path in errors)
