"""The committed schema.graphql is the schema the server serves, and keeps its public contract."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from graphql import GraphQLNonNull, GraphQLObjectType, GraphQLSchema, build_schema, get_named_type

from flowql.schema import build_schema as build_flowql_schema

COMMITTED = Path(__file__).resolve().parent.parent / "schema.graphql"
REGENERATE = "run `flowql schema print -o schema.graphql` and commit the result"


def current_sdl(production: bool = False) -> str:
    """Exactly what `flowql schema print` writes."""
    return str(build_flowql_schema(production=production)) + "\n"


@pytest.fixture(scope="module")
def committed() -> GraphQLSchema:
    return build_schema(COMMITTED.read_text())


def test_committed_schema_graphql_is_current() -> None:
    committed_sdl = COMMITTED.read_text()
    printed = current_sdl()
    if printed != committed_sdl:
        diff = difflib.unified_diff(
            committed_sdl.splitlines(),
            printed.splitlines(),
            "schema.graphql (committed)",
            "flowql schema print",
            lineterm="",
        )
        excerpt = "\n".join(list(diff)[:60])
        pytest.fail(f"schema.graphql is stale: {REGENERATE}\n{excerpt}", pytrace=False)


def test_production_serves_the_same_schema_as_development() -> None:
    assert current_sdl(production=True) == current_sdl()


def field_type(schema: GraphQLSchema, type_name: str, field: str) -> str:
    owner = schema.get_type(type_name)
    assert isinstance(owner, GraphQLObjectType), f"{type_name} is not an object type"
    assert field in owner.fields, f"{type_name}.{field} is missing ({REGENERATE} if it moved)"
    return str(owner.fields[field].type)


def test_login_and_refresh_return_access_refresh_and_expiry(committed: GraphQLSchema) -> None:
    mutation = committed.mutation_type
    assert mutation is not None
    login = mutation.fields["login"]
    assert set(login.args) == {"email", "password"}
    assert all(isinstance(arg.type, GraphQLNonNull) for arg in login.args.values())
    refresh = mutation.fields["refreshToken"]
    assert set(refresh.args) == {"refreshToken"}
    for field in (login, refresh):
        tokens = get_named_type(field.type)
        assert isinstance(tokens, GraphQLObjectType)
        assert str(tokens.fields["accessToken"].type) == "String!"
        assert str(tokens.fields["refreshToken"].type) == "String!"
        assert str(tokens.fields["expiresIn"].type) == "Int!"


def test_viewer_returns_the_caller_with_its_workspaces(committed: GraphQLSchema) -> None:
    assert field_type(committed, "Query", "viewer") == "Viewer!"
    assert field_type(committed, "Viewer", "workspaces") == "[Workspace!]!"
    assert field_type(committed, "Viewer", "user") == "User"


@pytest.mark.parametrize("listing", ["workflows", "processes"])
def test_lists_are_relay_connections_with_cursor_arguments(
    committed: GraphQLSchema, listing: str
) -> None:
    query = committed.query_type
    assert query is not None
    field = query.fields[listing]
    assert {"first", "after", "filter"} <= set(field.args)
    assert str(field.args["first"].type) == "Int"
    assert str(field.args["after"].type) == "String"
    connection = get_named_type(field.type)
    assert isinstance(connection, GraphQLObjectType)
    assert {"edges", "pageInfo", "totalCount", "nodes"} <= set(connection.fields)
    edge = get_named_type(connection.fields["edges"].type)
    assert isinstance(edge, GraphQLObjectType)
    assert {"cursor", "node"} <= set(edge.fields)
    page_info = get_named_type(connection.fields["pageInfo"].type)
    assert isinstance(page_info, GraphQLObjectType)
    assert {"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"} <= set(page_info.fields)


def test_relations_the_dataloaders_serve_are_in_the_schema(committed: GraphQLSchema) -> None:
    assert field_type(committed, "Workflow", "agents") == "[Agent!]!"
    assert field_type(committed, "Agent", "sources") == "[Agent!]!"
    assert field_type(committed, "Agent", "messagesCount") == "Int!"
    assert field_type(committed, "Agent", "messages") == "[Message!]!"
    assert field_type(committed, "Workflow", "processes") == "[Process!]!"
