"""The schema introspects (GraphiQL's docs and codegen tools depend on it)."""

from __future__ import annotations

from graphql import get_introspection_query

from flowql.schema import build_schema


async def test_introspection_succeeds() -> None:
    result = await build_schema().execute(get_introspection_query())
    assert result.errors is None, result.errors
    assert result.data is not None
    names = {t["name"] for t in result.data["__schema"]["types"]}
    assert {"Workflow", "Process", "Scenario", "Subscription"} <= names
