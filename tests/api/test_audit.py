"""The audit log: every change with the credential that made it, readable by owners and admins
only, and never holding a secret value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flowql.models import Role
from tests.conftest import PASSWORD, Account, Factory, LiveServer, error_of, raw_rows

AUDIT = """
query ($ws: UUID, $first: Int, $after: String, $filter: AuditFilterInput) {
  auditLog(workspaceId: $ws, first: $first, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes {
      workspaceId action targetType targetId actorKind actorUserId actorApiKeyId
      actorProcessId details createdAt
    }
  }
}"""
CREATE_WORKFLOW = """mutation ($input: CreateWorkflowInput!) {
  createWorkflow(input: $input) { id } }"""
UPDATE_WORKFLOW = """mutation ($id: UUID!, $input: UpdateWorkflowInput!) {
  updateWorkflow(id: $id, input: $input) { id } }"""
EXECUTE = """mutation ($id: UUID!) {
  executeWorkflow(id: $id, wait: true, waitTimeout: 20) { id status steps { status } } }"""
CANCEL = "mutation ($id: UUID!) { cancelProcess(id: $id) { id } }"
CREATE_CREDENTIAL = """mutation ($input: CreateCredentialInput!) {
  createCredential(input: $input) { id } }"""
UPDATE_CREDENTIAL = """mutation ($id: UUID!, $input: UpdateCredentialInput!) {
  updateCredential(id: $id, input: $input) { id } }"""
DELETE_CREDENTIAL = "mutation ($id: UUID!) { deleteCredential(id: $id) { id } }"
CREATE_INTEGRATION = """mutation ($input: CreateIntegrationInput!) {
  createIntegration(input: $input) { id } }"""
CREATE_SUBSCRIPTION = """mutation ($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { id } }"""
CREATE_KEY = """mutation ($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { token apiKey { id } } }"""
REVOKE_KEY = "mutation ($id: UUID!) { revokeApiKey(id: $id) { id } }"
INVITE = """mutation ($ws: UUID!, $email: String!) {
  inviteMember(workspaceId: $ws, email: $email) { id } }"""
KEYS = "{ apiKeys { nodes { id } } }"

AGENT_SECRET = "agent-option-secret-4711"
CREDENTIAL_SECRET = "credential-value-secret-1"
CREDENTIAL_SECRET_2 = "credential-value-secret-2"
INTEGRATION_SECRET = "integration-bot-token-secret"
WEBHOOK_SECRET = "webhook-signing-secret"
URL_SECRET = "token-in-a-webhook-url"


async def audit_log(
    server: LiveServer, token: str, expect_errors: bool = False, **variables: Any
) -> dict[str, Any]:
    return await server.gql(AUDIT, variables, token=token, expect_errors=expect_errors)


def entries(body: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = body["data"]["auditLog"]["nodes"]
    return found


async def data(server: LiveServer, query: str, token: str, **variables: Any) -> dict[str, Any]:
    body = await server.gql(query, variables, token=token)
    found: dict[str, Any] = body["data"]
    return found


async def test_changes_are_audited_with_their_credential_and_never_a_secret(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    key = await factory.api_key(owner)
    [key_row] = (await data(server, KEYS, owner.token))["apiKeys"]["nodes"]
    agents = [
        {"name": "start", "type": "message"},
        {
            "name": "shape",
            "type": "transform",
            "sources": ["start"],
            "options": {"payload": {"x": AGENT_SECRET}},
        },
    ]
    created = await data(
        server, CREATE_WORKFLOW, owner.token, input={"name": "Flow", "agents": agents}
    )
    workflow_id = created["createWorkflow"]["id"]
    await data(server, UPDATE_WORKFLOW, owner.token, id=workflow_id, input={"name": "Flow 2"})
    process = (await data(server, EXECUTE, owner.token, id=workflow_id))["executeWorkflow"]
    assert process["status"] == "COMPLETED" and len(process["steps"]) == 2

    # With the API key: credentials, integrations, webhooks, keys, invitations.
    credential = await data(
        server, CREATE_CREDENTIAL, key, input={"name": "db", "value": CREDENTIAL_SECRET}
    )
    credential_id = credential["createCredential"]["id"]
    await data(
        server, UPDATE_CREDENTIAL, key, id=credential_id, input={"value": CREDENTIAL_SECRET_2}
    )
    await data(server, DELETE_CREDENTIAL, key, id=credential_id)
    await data(
        server,
        CREATE_INTEGRATION,
        key,
        input={"name": "Slack", "type": "slack", "credentials": {"bot_token": INTEGRATION_SECRET}},
    )
    await data(
        server,
        CREATE_SUBSCRIPTION,
        key,
        input={
            "url": f"https://hooks.example.com/in?token={URL_SECRET}",
            "events": ["workflow.executed"],
            "secret": WEBHOOK_SECRET,
        },
    )
    issued = (await data(server, CREATE_KEY, key, input={"name": "ci"}))["createApiKey"]
    await data(server, REVOKE_KEY, key, id=issued["apiKey"]["id"])
    await data(server, INVITE, key, ws=str(owner.workspace_id), email="new@example.com")

    log = entries(await audit_log(server, owner.token, first=50))
    by_user = {"actorKind": "user", "actorUserId": str(owner.user_id), "actorApiKeyId": None}
    by_key = {
        "actorKind": "api_key",
        "actorUserId": str(owner.user_id),
        "actorApiKeyId": key_row["id"],
    }
    expected = [
        ("CREATE", "Workflow", workflow_id, by_user),
        ("UPDATE", "Workflow", workflow_id, by_user),
        ("EXECUTE", "Process", process["id"], by_user),
        ("CREATE", "Credential", credential_id, by_key),
        ("UPDATE", "Credential", credential_id, by_key),
        ("DELETE", "Credential", credential_id, by_key),
        ("CREATE", "Integration", None, by_key),
        ("CREATE", "WebhookSubscription", None, by_key),
        ("CREATE", "ApiKey", issued["apiKey"]["id"], by_key),
        ("REVOKE", "ApiKey", issued["apiKey"]["id"], by_key),
        ("INVITE", "Invitation", None, by_key),
    ]
    assert len(log) == len(expected)
    for entry, (action, target_type, target_id, actor) in zip(reversed(log), expected, strict=True):
        assert (entry["action"], entry["targetType"]) == (action, target_type)
        assert entry["workspaceId"] == str(owner.workspace_id)
        if target_id is not None:
            assert entry["targetId"] == target_id
        assert {k: entry[k] for k in actor} == actor
    assert log[-2]["details"] == {"fields": ["name"]}  # names of what changed, not values
    assert log[-5]["details"] == {"fields": ["value"]}

    # Nothing secret anywhere in the stored rows, in any column.
    stored = repr(await raw_rows(server, "audit_entries"))
    secrets = [
        AGENT_SECRET,
        CREDENTIAL_SECRET,
        CREDENTIAL_SECRET_2,
        INTEGRATION_SECRET,
        WEBHOOK_SECRET,
        URL_SECRET,
        issued["token"],
        key,
        owner.token,
        PASSWORD,
    ]
    assert [s for s in secrets if s in stored] == []


async def test_a_process_is_audited_when_started_not_at_each_step(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    agents = [{"name": "a", "type": "message"}] + [
        {"name": f"s{i}", "type": "message", "sources": ["a" if i == 0 else f"s{i - 1}"]}
        for i in range(5)
    ]
    created = await data(
        server, CREATE_WORKFLOW, owner.token, input={"name": "F", "agents": agents}
    )
    process = await data(server, EXECUTE, owner.token, id=created["createWorkflow"]["id"])
    assert len(process["executeWorkflow"]["steps"]) == 6
    log = entries(await audit_log(server, owner.token, filter={"targetTypes": ["Process"]}))
    assert [e["action"] for e in log] == ["EXECUTE"]


async def test_only_owners_and_admins_read_the_audit_log(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    admin = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    member = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    stranger = await factory.account()
    await data(server, CREATE_WORKFLOW, member.token, input={"name": "by member"})
    ws = str(owner.workspace_id)

    assert len(entries(await audit_log(server, admin.token, ws=ws))) == 1
    refused = await audit_log(server, member.token, expect_errors=True, ws=ws)
    assert error_of(refused)["code"] == "FORBIDDEN"
    assert entries(await audit_log(server, member.token)) == []
    hidden = await audit_log(server, stranger.token, expect_errors=True, ws=ws)
    assert error_of(hidden)["code"] == "NOT_FOUND"
    assert entries(await audit_log(server, stranger.token)) == []
    narrow = await factory.api_key(owner, privileges=["workflow:read"])
    by_key = await audit_log(server, narrow, expect_errors=True, ws=ws)
    assert error_of(by_key)["code"] == "FORBIDDEN"
    auditor = await factory.api_key(owner, privileges=["audit:read"])
    assert len(entries(await audit_log(server, auditor, ws=ws))) == 1


async def test_audit_log_filters_and_pages(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    key = await factory.api_key(owner)
    [key_row] = (await data(server, KEYS, owner.token))["apiKeys"]["nodes"]
    for n in range(3):
        await data(server, CREATE_WORKFLOW, owner.token, input={"name": f"mine {n}"})
    await data(server, CREATE_WORKFLOW, key, input={"name": "by key"})
    created = await data(
        server, CREATE_CREDENTIAL, key, input={"name": "db", "value": CREDENTIAL_SECRET}
    )
    await data(server, DELETE_CREDENTIAL, key, id=created["createCredential"]["id"])

    def count(body: dict[str, Any]) -> int:
        total: int = body["data"]["auditLog"]["totalCount"]
        return total

    assert count(await audit_log(server, owner.token, filter={"actions": ["DELETE"]})) == 1
    workflows = await audit_log(server, owner.token, filter={"targetTypes": ["Workflow"]})
    assert count(workflows) == 4
    by_key = await audit_log(server, owner.token, filter={"actorApiKeyId": key_row["id"]})
    assert count(by_key) == 3
    by_user = await audit_log(server, owner.token, filter={"actorUserId": str(owner.user_id)})
    assert count(by_user) == 6  # an API key acts for its issuer
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert count(await audit_log(server, owner.token, filter={"since": future})) == 0
    assert count(await audit_log(server, owner.token, filter={"since": past})) == 6
    assert count(await audit_log(server, owner.token, filter={"until": past})) == 0

    first = await audit_log(server, owner.token, first=4)
    page = first["data"]["auditLog"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await audit_log(server, owner.token, first=4, after=page["pageInfo"]["endCursor"])
    assert len(entries(first)) + len(entries(rest)) == 6
    assert rest["data"]["auditLog"]["pageInfo"]["hasNextPage"] is False


async def test_a_refused_change_leaves_no_audit_entry(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    bad = [{"name": "x", "type": "no-such-type"}]
    body = await server.gql(
        CREATE_WORKFLOW,
        {"input": {"name": "bad", "agents": bad}},
        token=owner.token,
        expect_errors=True,
    )
    assert error_of(body)["code"] == "VALIDATION_ERROR"
    assert await raw_rows(server, "audit_entries") == []


async def test_membership_changes_are_audited(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    member: Account = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    await data(
        server,
        """mutation ($ws: UUID!, $user: UUID!) {
          updateMemberRole(workspaceId: $ws, userId: $user, role: ADMIN) { role } }""",
        owner.token,
        ws=str(owner.workspace_id),
        user=str(member.user_id),
    )
    await data(
        server,
        """mutation ($ws: UUID!, $user: UUID!) {
          removeMember(workspaceId: $ws, userId: $user) { role } }""",
        owner.token,
        ws=str(owner.workspace_id),
        user=str(member.user_id),
    )
    log = entries(await audit_log(server, owner.token, filter={"targetTypes": ["Member"]}))
    assert [(e["action"], e["details"]) for e in log] == [
        ("DELETE", {"user_id": str(member.user_id)}),
        ("UPDATE", {"user_id": str(member.user_id), "role": "admin"}),
    ]
