"""Credentials and workflow secrets: write-only values, encrypted at rest, tenant-isolated."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from flowql.errors import NotFound
from flowql.models import Role
from flowql.services.credentials import resolve_credential_value
from tests.conftest import Account, Factory, LiveServer, error_of, raw_rows

SECRET = "xoxb-very-secret-9c2e71"
FIELDS = "id number workspaceId workflowId name type createdAt updatedAt"
CREATE = f"""
mutation ($input: CreateCredentialInput!) {{ createCredential(input: $input) {{ {FIELDS} }} }}"""
UPDATE = f"""
mutation ($id: UUID!, $input: UpdateCredentialInput!) {{
  updateCredential(id: $id, input: $input) {{ {FIELDS} }}
}}"""
DELETE = "mutation ($id: UUID!) { deleteCredential(id: $id) { id } }"
SET_SECRET = f"""
mutation ($workflowId: UUID!, $key: String!, $value: String!) {{
  setWorkflowSecret(workflowId: $workflowId, key: $key, value: $value) {{ {FIELDS} }}
}}"""
GET = f"query ($id: UUID, $number: Int) {{ credential(id: $id, number: $number) {{ {FIELDS} }} }}"
LIST = f"""
query ($filter: CredentialFilterInput) {{
  credentials(filter: $filter) {{ totalCount nodes {{ {FIELDS} }} }}
}}"""
CREATE_WORKFLOW = "mutation ($name: String!) { createWorkflow(input: {name: $name}) { id } }"


async def create(server: LiveServer, account: Account, **values: Any) -> dict[str, Any]:
    body = await server.gql(CREATE, {"input": values}, token=account.token)
    created: dict[str, Any] = body["data"]["createCredential"]
    return created


async def workflow(server: LiveServer, account: Account, name: str = "Flow") -> str:
    body = await server.gql(CREATE_WORKFLOW, {"name": name}, token=account.token)
    workflow_id: str = body["data"]["createWorkflow"]["id"]
    return workflow_id


async def plaintext(
    server: LiveServer, account: Account, name: str, workflow_id: str | None = None
) -> str:
    async with server.runtime.db.read() as session:
        return await resolve_credential_value(
            session,
            server.runtime.box,
            account.workspace_id,
            name,
            uuid.UUID(workflow_id) if workflow_id else None,
        )


async def test_credential_crud_never_returns_the_value(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    created = await create(server, owner, name="Slack Bot Token", type="api_key", value=SECRET)
    assert created["workspaceId"] == str(owner.workspace_id)
    assert created["workflowId"] is None
    assert created["type"] == "api_key"
    assert await plaintext(server, owner, "Slack Bot Token") == SECRET

    by_number = await server.gql(GET, {"number": created["number"]}, token=owner.token)
    assert by_number["data"]["credential"] == created
    listed = await server.gql(LIST, {"filter": {"search": "slack"}}, token=owner.token)
    assert [n["id"] for n in listed["data"]["credentials"]["nodes"]] == [created["id"]]

    updated = await server.gql(
        UPDATE,
        {"id": created["id"], "input": {"name": "Slack", "value": "rotated-value"}},
        token=owner.token,
    )
    assert updated["data"]["updateCredential"]["name"] == "Slack"
    assert await plaintext(server, owner, "Slack") == "rotated-value"
    for body in (created, by_number, listed, updated):
        assert SECRET not in json.dumps(body)
        assert "rotated-value" not in json.dumps(body)

    await server.gql(DELETE, {"id": created["id"]}, token=owner.token)
    gone = await server.gql(GET, {"id": created["id"]}, token=owner.token, expect_errors=True)
    assert error_of(gone)["code"] == "NOT_FOUND"
    with pytest.raises(NotFound):
        await plaintext(server, owner, "Slack")


async def test_values_are_stored_only_encrypted(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    workflow_id = await workflow(server, owner)
    await create(server, owner, name="a", value=SECRET)
    await server.gql(
        SET_SECRET, {"workflowId": workflow_id, "key": "B", "value": SECRET}, token=owner.token
    )
    rows = await raw_rows(server, "credentials")
    assert len(rows) == 2
    assert all(SECRET not in str(value) for row in rows for value in row)


async def test_workflow_secrets_are_upserted_and_win_over_workspace_ones(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    workflow_id = await workflow(server, owner)
    await create(server, owner, name="API_KEY", value="workspace-wide")
    first = await server.gql(
        SET_SECRET, {"workflowId": workflow_id, "key": "API_KEY", "value": "v1"}, token=owner.token
    )
    second = await server.gql(
        SET_SECRET, {"workflowId": workflow_id, "key": "API_KEY", "value": "v2"}, token=owner.token
    )
    assert first["data"]["setWorkflowSecret"]["id"] == second["data"]["setWorkflowSecret"]["id"]
    assert second["data"]["setWorkflowSecret"]["workflowId"] == workflow_id
    assert await plaintext(server, owner, "API_KEY", workflow_id) == "v2"
    assert await plaintext(server, owner, "API_KEY") == "workspace-wide"
    other_workflow = await workflow(server, owner, "Other")
    assert await plaintext(server, owner, "API_KEY", other_workflow) == "workspace-wide"

    scoped = await server.gql(LIST, {"filter": {"workflowId": workflow_id}}, token=owner.token)
    assert scoped["data"]["credentials"]["totalCount"] == 1
    everything = await server.gql(LIST, token=owner.token)
    assert everything["data"]["credentials"]["totalCount"] == 2


async def test_a_workflow_scoped_credential_can_be_created_directly(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    workflow_id = await workflow(server, owner)
    created = await create(server, owner, name="TOKEN", value="x", workflowId=workflow_id)
    assert created["workflowId"] == workflow_id
    assert created["workspaceId"] == str(owner.workspace_id)


async def test_setting_a_workflow_secret_needs_workflow_write(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    workflow_id = await workflow(server, owner)
    reader = await factory.api_key(owner, privileges=["workflow:read", "credential:read"])
    body = await server.gql(
        SET_SECRET,
        {"workflowId": workflow_id, "key": "K", "value": "v"},
        token=reader,
        expect_errors=True,
    )
    assert error_of(body)["code"] == "FORBIDDEN"
    # A member holds workflow:write but not credential:write: workflow secrets yes, others no.
    member = await factory.account(role=Role.MEMBER, join=owner.workspace_id)
    await server.gql(
        SET_SECRET, {"workflowId": workflow_id, "key": "K", "value": "v"}, token=member.token
    )
    refused = await server.gql(
        CREATE, {"input": {"name": "n", "value": "v"}}, token=member.token, expect_errors=True
    )
    assert error_of(refused)["code"] == "FORBIDDEN"
    assert len(await raw_rows(server, "credentials")) == 1


async def test_another_workspace_cannot_see_or_touch_credentials(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    stranger = await factory.account()
    workflow_id = await workflow(server, owner)
    created = await create(server, owner, name="Owner Secret", value=SECRET)
    before = await raw_rows(server, "credentials")

    listed = await server.gql(LIST, token=stranger.token)
    assert listed["data"]["credentials"] == {"totalCount": 0, "nodes": []}
    attempts: list[tuple[str, dict[str, Any]]] = [
        (GET, {"id": created["id"]}),
        (GET, {"number": created["number"]}),
        (UPDATE, {"id": created["id"], "input": {"value": "hijack"}}),
        (DELETE, {"id": created["id"]}),
        (SET_SECRET, {"workflowId": workflow_id, "key": "K", "value": "v"}),
        (CREATE, {"input": {"name": "n", "value": "v", "workspaceId": str(owner.workspace_id)}}),
    ]
    for query, variables in attempts:
        body = await server.gql(query, variables, token=stranger.token, expect_errors=True)
        assert error_of(body)["code"] == "NOT_FOUND", query
        assert "Owner Secret" not in json.dumps(body)
    foreign_workflow = await server.gql(
        CREATE,
        {"input": {"name": "n", "value": "v", "workflowId": workflow_id}},
        token=stranger.token,
        expect_errors=True,
    )
    assert error_of(foreign_workflow)["fields"] == {"workflowId": "no such workflow"}
    assert await raw_rows(server, "credentials") == before


@pytest.mark.parametrize(
    ("values", "field_name"),
    [
        ({"name": "", "value": "v"}, "name"),
        ({"name": "n" * 201, "value": "v"}, "name"),
        ({"name": "n", "value": ""}, "value"),
        ({"name": "n", "value": "v", "type": "has spaces"}, "type"),
        ({"name": "Existing", "value": "v"}, "name"),
        ({"name": "n", "value": "v", "workflowId": str(uuid.uuid4())}, "workflowId"),
    ],
)
async def test_invalid_credential_input_is_refused_naming_the_field(
    server: LiveServer, factory: Factory, values: dict[str, Any], field_name: str
) -> None:
    owner = await factory.account()
    await create(server, owner, name="Existing", value="v")
    before = await raw_rows(server, "credentials")
    body = await server.gql(CREATE, {"input": values}, token=owner.token, expect_errors=True)
    assert error_of(body)["code"] == "VALIDATION_ERROR"
    assert field_name in error_of(body)["fields"]
    assert await raw_rows(server, "credentials") == before


async def test_invalid_updates_and_secrets_are_refused_naming_the_field(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    workflow_id = await workflow(server, owner)
    await create(server, owner, name="Taken", value="v")
    created = await create(server, owner, name="Mine", value="v")
    before = await raw_rows(server, "credentials")
    attempts: list[tuple[str, dict[str, Any], str]] = [
        (UPDATE, {"id": created["id"], "input": {"name": " "}}, "name"),
        (UPDATE, {"id": created["id"], "input": {"name": "Taken"}}, "name"),
        (UPDATE, {"id": created["id"], "input": {"value": ""}}, "value"),
        (SET_SECRET, {"workflowId": workflow_id, "key": "", "value": "v"}, "key"),
        (SET_SECRET, {"workflowId": workflow_id, "key": "K", "value": ""}, "value"),
    ]
    for query, variables, field_name in attempts:
        body = await server.gql(query, variables, token=owner.token, expect_errors=True)
        assert error_of(body)["code"] == "VALIDATION_ERROR", variables
        assert field_name in error_of(body)["fields"], variables
    assert await raw_rows(server, "credentials") == before
