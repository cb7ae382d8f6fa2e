"""API keys through GraphQL: issuing, what a key may do and see, validation, revocation."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flowql.models import Role
from tests.conftest import Account, Factory, LiveServer

KEY_FIELDS = """
  id number workspaceId userId name description prefix privileges
  processScopes { scenario actors actions }
  createdAt expiresAt lastUsedAt revokedAt
"""
CREATE_KEY = f"""
mutation ($input: CreateApiKeyInput!) {{
  createApiKey(input: $input) {{ token apiKey {{ {KEY_FIELDS} }} }}
}}"""
LIST_KEYS = f"""
query ($ws: UUID, $revoked: Boolean! = false) {{
  apiKeys(workspaceId: $ws, filter: {{includeRevoked: $revoked}}) {{
    totalCount nodes {{ {KEY_FIELDS} }}
  }}
}}"""
GET_KEY = f"query ($id: UUID!) {{ apiKey(id: $id) {{ {KEY_FIELDS} }} }}"
REVOKE_KEY = "mutation ($id: UUID!) { revokeApiKey(id: $id) { id revokedAt } }"
LIST_WORKFLOWS = "{ workflows { totalCount nodes { id name workspaceId } } }"
CREATE_WORKFLOW = """
mutation ($name: String!) { createWorkflow(input: {name: $name}) { id name workspaceId } }
"""


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


async def create_key(server: LiveServer, account: Account, **fields: Any) -> dict[str, Any]:
    variables = {"input": {"name": "ci key", **fields}}
    body = await server.gql(CREATE_KEY, variables, token=account.token)
    created: dict[str, Any] = body["data"]["createApiKey"]
    return created


async def try_create_key(server: LiveServer, token: str, **fields: Any) -> dict[str, Any]:
    variables = {"input": {"name": "ci key", **fields}}
    return await server.gql(CREATE_KEY, variables, token=token, expect_errors=True)


async def key_count(server: LiveServer, account: Account) -> int:
    body = await server.gql(LIST_KEYS, {"revoked": True}, token=account.token)
    count: int = body["data"]["apiKeys"]["totalCount"]
    return count


async def create_workflow(server: LiveServer, account: Account, name: str) -> dict[str, Any]:
    body = await server.gql(CREATE_WORKFLOW, {"name": name}, token=account.token)
    workflow: dict[str, Any] = body["data"]["createWorkflow"]
    return workflow


# -- issuing -----------------------------------------------------------------------------------


async def test_created_key_carries_what_was_asked_and_its_token_works(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    scenario = str(uuid.uuid4())
    created = await create_key(
        server,
        account,
        description="for CI",
        privileges=["workflow:read", "process:run"],
        processScopes=[{"scenario": scenario, "actors": ["client"], "actions": ["submit"]}],
        expirationDays=30,
    )
    key = created["apiKey"]
    assert key["workspaceId"] == str(account.workspace_id)
    assert key["userId"] == str(account.user_id)
    assert key["name"] == "ci key"
    assert key["description"] == "for CI"
    assert key["privileges"] == ["process:run", "workflow:read"]
    assert key["processScopes"] == [
        {"scenario": scenario, "actors": ["client"], "actions": ["submit"]}
    ]
    assert created["token"].startswith(f"fql_{key['prefix']}_")
    expires = datetime.fromisoformat(key["expiresAt"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    assert key["revokedAt"] is None and key["lastUsedAt"] is None

    viewer = await server.gql("{ viewer { kind } }", token=created["token"])
    assert viewer["data"]["viewer"]["kind"] == "api_key"


async def test_token_is_shown_once_and_never_again(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    created = await create_key(server, account)
    token, key_id = created["token"], created["apiKey"]["id"]
    secret = token.split("_", 2)[2]

    listed = await server.gql(LIST_KEYS, token=account.token)
    fetched = await server.gql(GET_KEY, {"id": key_id}, token=account.token)
    as_itself = await server.gql(LIST_KEYS, token=token)
    for body in (listed, fetched, as_itself):
        assert secret not in json.dumps(body)
    assert listed["data"]["apiKeys"]["nodes"][0]["id"] == key_id

    type_fields = await server.gql('{ __type(name: "ApiKey") { fields { name } } }')
    names = {f["name"].lower() for f in type_fields["data"]["__type"]["fields"]}
    assert not names & {"token", "hash", "keyhash", "secret"}


async def test_key_without_privileges_given_gets_the_creators_privileges(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    admin = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    key = (await create_key(server, admin))["apiKey"]
    assert "apikey:write" in key["privileges"]
    assert "workspace:write" not in key["privileges"]


async def test_expires_at_and_expiration_days_together_are_invalid(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    body = await try_create_key(server, account.token, expiresAt=future, expirationDays=2)
    assert codes(body) == ["VALIDATION_ERROR"]
    assert "expirationDays" in body["errors"][0]["extensions"]["fields"]
    past = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    body = await try_create_key(server, account.token, expiresAt=past)
    assert body["errors"][0]["extensions"]["fields"] == {"expiresAt": "must be in the future"}
    assert await key_count(server, account) == 0


# -- privileges --------------------------------------------------------------------------------


async def test_key_privileges_limit_what_it_can_do(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    await create_workflow(server, account, "Nightly import")
    token = (await create_key(server, account, privileges=["workflow:read"]))["token"]

    listed = await server.gql(LIST_WORKFLOWS, token=token)
    assert [w["name"] for w in listed["data"]["workflows"]["nodes"]] == ["Nightly import"]

    refused = await server.gql(CREATE_WORKFLOW, {"name": "sneaky"}, token=token, expect_errors=True)
    assert codes(refused) == ["FORBIDDEN"]
    after = await server.gql(LIST_WORKFLOWS, token=account.token)
    assert after["data"]["workflows"]["totalCount"] == 1


async def test_key_cannot_see_another_workspaces_workflows(
    server: LiveServer, factory: Factory
) -> None:
    alice = await factory.account(workspace="Alice Inc")
    bob = await factory.account(workspace="Bob Ltd")
    await create_workflow(server, alice, "alice flow")
    bobs = await create_workflow(server, bob, "bob flow")
    token = (await create_key(server, alice, privileges=["workflow:read"]))["token"]

    listed = await server.gql(LIST_WORKFLOWS, token=token)
    assert [w["name"] for w in listed["data"]["workflows"]["nodes"]] == ["alice flow"]

    filtered = await server.gql(
        "query ($ws: UUID) { workflows(filter: {workspaceId: $ws}) { totalCount } }",
        {"ws": str(bob.workspace_id)},
        token=token,
    )
    assert filtered["data"]["workflows"]["totalCount"] == 0

    direct = await server.gql(
        "query ($id: UUID!) { workflow(id: $id) { name } }",
        {"id": bobs["id"]},
        token=token,
        expect_errors=True,
    )
    assert codes(direct) == ["NOT_FOUND"]


async def test_unknown_privileges_are_a_validation_error_and_nothing_is_written(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    body = await try_create_key(server, account.token, privileges=["workflow:read", "root:all"])
    assert codes(body) == ["VALIDATION_ERROR"]
    assert "root:all" in body["errors"][0]["extensions"]["fields"]["privileges"]
    assert await key_count(server, account) == 0


async def test_key_cannot_grant_privileges_its_creator_lacks(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    admin = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    body = await try_create_key(
        server, admin.token, privileges=["workflow:read", "workspace:write"]
    )
    assert codes(body) == ["FORBIDDEN"]
    extensions = body["errors"][0]["extensions"]
    assert extensions["field"] == "privileges"
    assert extensions["privileges"] == ["workspace:write"]
    assert await key_count(server, owner) == 0


async def test_key_cannot_issue_a_key_stronger_than_itself(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    token = (await create_key(server, account, privileges=["apikey:write", "apikey:read"]))["token"]
    body = await try_create_key(server, token, privileges=["workflow:write"])
    assert codes(body) == ["FORBIDDEN"]
    weaker = await server.gql(
        CREATE_KEY, {"input": {"name": "child", "privileges": ["apikey:read"]}}, token=token
    )
    assert weaker["data"]["createApiKey"]["apiKey"]["privileges"] == ["apikey:read"]


async def test_member_can_list_keys_but_not_create_or_revoke_them(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    key_id = (await create_key(server, owner))["apiKey"]["id"]

    listed = await server.gql(LIST_KEYS, token=member.token)
    assert [k["id"] for k in listed["data"]["apiKeys"]["nodes"]] == [key_id]
    assert codes(await try_create_key(server, member.token)) == ["FORBIDDEN"]
    revoke = await server.gql(REVOKE_KEY, {"id": key_id}, token=member.token, expect_errors=True)
    assert codes(revoke) == ["FORBIDDEN"]
    assert await key_count(server, owner) == 1


async def test_key_loses_privileges_its_creator_loses(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    admin = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    token = (await create_key(server, admin, privileges=["apikey:write", "workflow:read"]))["token"]
    assert "errors" not in await try_create_key(server, token, privileges=["workflow:read"])
    await server.gql(
        "mutation ($ws: UUID!, $u: UUID!) { updateMemberRole(workspaceId: $ws, userId: $u,"
        " role: MEMBER) { role } }",
        {"ws": str(owner.workspace_id), "u": str(admin.user_id)},
        token=owner.token,
    )
    # A key's privileges are capped, at every request, by what its creator holds now.
    viewer = await server.gql("{ viewer { workspaces { viewerPrivileges } } }", token=token)
    assert viewer["data"]["viewer"]["workspaces"][0]["viewerPrivileges"] == ["workflow:read"]
    assert codes(await try_create_key(server, token, privileges=["workflow:read"])) == ["FORBIDDEN"]


# -- process scopes ----------------------------------------------------------------------------


async def test_process_scope_with_empty_actor_is_a_validation_error(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    scopes = [{"scenario": None, "actors": ["client", " "], "actions": ["submit"]}]
    body = await try_create_key(server, account.token, processScopes=scopes)
    assert codes(body) == ["VALIDATION_ERROR"]
    assert list(body["errors"][0]["extensions"]["fields"]) == ["processScopes.0.actors"]
    assert await key_count(server, account) == 0


async def test_process_scope_scenario_must_be_a_uuid(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    scopes = [{"scenario": "not-a-uuid", "actors": [], "actions": []}]
    body = await try_create_key(server, account.token, processScopes=scopes)
    assert codes(body) == ["VALIDATION_ERROR"]
    assert await key_count(server, account) == 0


async def test_process_scope_without_scenario_covers_every_scenario(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    scopes = [{"actors": ["admin"], "actions": []}]
    key = (await create_key(server, account, processScopes=scopes))["apiKey"]
    assert key["processScopes"] == [{"scenario": None, "actors": ["admin"], "actions": []}]


async def test_scoped_key_issues_keys_only_within_its_scopes(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    scenario = str(uuid.uuid4())
    scope = {"scenario": scenario, "actors": ["client", "agent"], "actions": ["submit"]}
    parent = await create_key(
        server, account, privileges=["apikey:write", "process:run"], processScopes=[scope]
    )
    token = parent["token"]

    inherited = await try_create_key(server, token, privileges=["process:run"])
    assert inherited["data"]["createApiKey"]["apiKey"]["processScopes"] == [
        {"scenario": scenario, "actors": ["agent", "client"], "actions": ["submit"]}
    ]
    narrower = {"scenario": scenario, "actors": ["client"], "actions": ["submit"]}
    assert "errors" not in await try_create_key(server, token, processScopes=[narrower])

    before = await key_count(server, account)
    for wider in (
        [],
        [{"scenario": None, "actors": ["client"], "actions": ["submit"]}],
        [{"scenario": scenario, "actors": [], "actions": ["submit"]}],
        [{"scenario": scenario, "actors": ["client"], "actions": ["submit", "cancel"]}],
    ):
        body = await try_create_key(server, token, processScopes=wider)
        assert codes(body) == ["FORBIDDEN"], wider
        assert body["errors"][0]["extensions"]["field"] == "processScopes"
    assert await key_count(server, account) == before


# -- listing and revoking ----------------------------------------------------------------------


async def test_revoked_keys_are_listed_only_when_asked(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    kept = (await create_key(server, account, name="kept"))["apiKey"]["id"]
    gone = (await create_key(server, account, name="gone"))["apiKey"]["id"]
    revoked = await server.gql(REVOKE_KEY, {"id": gone}, token=account.token)
    revoked_at = revoked["data"]["revokeApiKey"]["revokedAt"]
    assert revoked_at is not None

    active = await server.gql(LIST_KEYS, token=account.token)
    assert [k["id"] for k in active["data"]["apiKeys"]["nodes"]] == [kept]
    everything = await server.gql(LIST_KEYS, {"revoked": True}, token=account.token)
    assert [k["id"] for k in everything["data"]["apiKeys"]["nodes"]] == [gone, kept]

    again = await server.gql(REVOKE_KEY, {"id": gone}, token=account.token)
    assert again["data"]["revokeApiKey"]["revokedAt"] == revoked_at


async def test_another_workspaces_key_is_not_found(server: LiveServer, factory: Factory) -> None:
    alice = await factory.account()
    bob = await factory.account()
    key_id = (await create_key(server, alice))["apiKey"]["id"]

    fetched = await server.gql(GET_KEY, {"id": key_id}, token=bob.token, expect_errors=True)
    assert codes(fetched) == ["NOT_FOUND"]
    revoke = await server.gql(REVOKE_KEY, {"id": key_id}, token=bob.token, expect_errors=True)
    assert codes(revoke) == ["NOT_FOUND"]
    listed = await server.gql(LIST_KEYS, {"ws": str(alice.workspace_id)}, token=bob.token)
    assert listed["data"]["apiKeys"]["totalCount"] == 0
    still = await server.gql(GET_KEY, {"id": key_id}, token=alice.token)
    assert still["data"]["apiKey"]["revokedAt"] is None


async def test_creating_a_key_in_another_workspace_is_not_found(
    server: LiveServer, factory: Factory
) -> None:
    alice = await factory.account()
    bob = await factory.account()
    body = await try_create_key(server, bob.token, workspaceId=str(alice.workspace_id))
    assert codes(body) == ["NOT_FOUND"]
    assert await key_count(server, alice) == 0
