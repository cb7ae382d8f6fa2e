"""Walking a GraphQL connection page by page for REST routes that return whole lists."""

from __future__ import annotations

from typing import Any

from flowql.rest_compat.base import Call

PAGE_FIELDS = "pageInfo { hasNextPage endCursor }"
MAX_PAGES = 100


async def all_nodes(
    call: Call,
    selection: str,
    field: str,
    variables: dict[str, Any] | None = None,
    types: dict[str, str] | None = None,
    limit: int | None = None,
    also: str = "",
) -> list[dict[str, Any]]:
    """Every node of `field` (newest first), or the first `limit` of them.

    `selection` is the connection field with `$after` as its cursor and `{PAGE}` where the page
    info goes; `types` declares the GraphQL types of any extra variables. `also` is a further
    root field asked in the same operation, e.g. the object the list belongs to, so that a
    missing one answers NOT_FOUND without a second operation.
    """
    declared = "".join(f", ${name}: {kind}" for name, kind in (types or {}).items())
    fields = f"{also} {selection.replace('{PAGE}', PAGE_FIELDS)}".strip()
    document = f"query($after: String{declared}) {{ {fields} }}"
    nodes: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(MAX_PAGES):
        data = await call.run(document, {**(variables or {}), "after": after})
        connection = data[field]
        nodes.extend(connection["nodes"])
        if limit is not None and len(nodes) >= limit:
            return nodes[:limit]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    return nodes
