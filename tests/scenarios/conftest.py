"""Helpers for scenario tests: GraphQL documents and a small client over the live server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer

DATA = Path(__file__).parent / "data"

PROCESS_FIELDS = """
fragment P on Process {
  id status state title actors vars result
  current {
    key title description instructions notify isEndState timestamp
    actions { key title actors response }
  }
  previous
  history { id number type action actor response skipped errors previousHash hash }
}
"""

STORE = """
mutation Store($yaml: String, $definition: JSON, $ws: UUID) {
  storeScenario(yaml: $yaml, definition: $definition, workspaceId: $ws) {
    id name title disabled yaml definition
    notices { path message }
    actors { key wildcard }
    actions { key actors }
    states { key isEndState }
  }
}
"""

START = (
    """
mutation Start($input: StartProcessInput!) { startProcess(input: $input) { ...P } }
"""
    + PROCESS_FIELDS
)

ACT = (
    """
mutation Act($input: PerformActionInput!) {
  performAction(input: $input) {
    process { ...P }
    event { type action actor response skipped errors previousHash hash }
  }
}
"""
    + PROCESS_FIELDS
)

PROCESS = """query P($id: UUID!) { process(id: $id) { ...P } }""" + PROCESS_FIELDS

VERIFY = (
    """query V($id: UUID!) { verifyProcess(id: $id) { valid events brokenAt eventId reason } }"""
)


def scenario_text(name: str) -> str:
    return (DATA / f"{name}.yaml").read_text()


@dataclass
class ScenarioClient:
    server: LiveServer

    async def store(
        self,
        token: str,
        *,
        yaml: str | None = None,
        definition: Any = None,
        workspace_id: str | None = None,
        expect_errors: bool = False,
    ) -> dict[str, Any]:
        body = await self.server.gql(
            STORE,
            {"yaml": yaml, "definition": definition, "ws": workspace_id},
            token=token,
            expect_errors=expect_errors,
        )
        return body if expect_errors else body["data"]["storeScenario"]

    async def store_file(self, token: str, name: str) -> dict[str, Any]:
        return await self.store(token, yaml=scenario_text(name))

    async def start(
        self,
        token: str,
        scenario_id: str,
        actors: dict[str, Any] | None = None,
        action: dict[str, Any] | None = None,
        expect_errors: bool = False,
    ) -> dict[str, Any]:
        variables = {"input": {"scenarioId": scenario_id, "actors": actors, "action": action}}
        body = await self.server.gql(START, variables, token=token, expect_errors=expect_errors)
        return body if expect_errors else body["data"]["startProcess"]

    async def act(
        self,
        token: str,
        process_id: str,
        action: str,
        response: Any = None,
        actor: str | None = None,
        expect_errors: bool = False,
    ) -> dict[str, Any]:
        variables = {
            "input": {
                "processId": process_id,
                "action": action,
                "response": response,
                "actor": actor,
            }
        }
        body = await self.server.gql(ACT, variables, token=token, expect_errors=expect_errors)
        return body if expect_errors else body["data"]["performAction"]

    async def process(self, token: str, process_id: str) -> dict[str, Any]:
        body = await self.server.gql(PROCESS, {"id": process_id}, token=token)
        result: dict[str, Any] = body["data"]["process"]
        return result

    async def verify(self, token: str, process_id: str) -> dict[str, Any]:
        body = await self.server.gql(VERIFY, {"id": process_id}, token=token)
        result: dict[str, Any] = body["data"]["verifyProcess"]
        return result


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    """The single GraphQL error of a response: its message and extensions."""
    assert body.get("errors"), body
    assert len(body["errors"]) == 1, body["errors"]
    error: dict[str, Any] = body["errors"][0]
    return error


@pytest.fixture
def scenarios(server: LiveServer) -> ScenarioClient:
    return ScenarioClient(server)
