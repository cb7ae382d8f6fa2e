"""The server answers GraphQL over real HTTP, on both storage backends."""

from __future__ import annotations

from tests.conftest import Factory, LiveServer


async def test_healthz_and_viewer(server: LiveServer, factory: Factory) -> None:
    assert (await server.client.get("/healthz")).status_code == 200
    account = await factory.account(workspace="Acme")
    body = await server.gql(
        "{ viewer { kind user { email } workspaces { name } } }", token=account.token
    )
    assert body["data"]["viewer"] == {
        "kind": "user",
        "user": {"email": account.email},
        "workspaces": [{"name": "Acme"}],
    }


async def test_graphiql_is_served(server: LiveServer) -> None:
    response = await server.client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
