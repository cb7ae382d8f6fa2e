"""Issue 12, holes 1 and 4: a process's credentials do only what the process needs and no more
than the people behind it may; revoking a login refuses its access tokens at once."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlmodel import select

from flowql.models import Process, Role
from flowql.services.auth import issuer_for
from flowql.settings import Settings
from tests.conftest import PASSWORD, Account, Factory, LiveServer, error_of
from tests.engine.conftest import Target, create_workflow, execute, target  # noqa: F401
from tests.subscriptions.conftest import TRANSPORT_WS, WS

SECRET_VALUE = "sk-live-credential-4b1f9c"
ISSUE = "mutation($id: UUID!) { issueExecutionToken(id: $id) { accessToken refreshToken } }"
QUICK = [{"name": "m", "type": "message", "options": {"payload": {"ok": True}}}]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"ws_revalidate_interval": 0.3})


def code(body: dict[str, Any]) -> str:
    value: str = error_of(body)["code"]
    return value


async def issue(server: LiveServer, token: str, process_id: str) -> dict[str, str]:
    body = await server.gql(ISSUE, {"id": process_id}, token=token)
    tokens: dict[str, str] = body["data"]["issueExecutionToken"]
    return tokens


def engine_token(server: LiveServer, process_id: str, account: Account) -> str:
    """An execution token exactly as the runner mints one for a step (what `{{ process.token }}`
    used to render)."""
    return issuer_for(server.runtime.settings).issue(
        process_id,
        server.runtime.settings.execution_token_ttl,
        typ="execution",
        ws=str(account.workspace_id),
        usr=str(account.user_id),
    )


async def stored_privileges(server: LiveServer, process_id: str) -> set[str]:
    async with server.runtime.db.read() as session:
        stmt = select(Process).where(Process.id == uuid.UUID(process_id))
        process = (await session.exec(stmt)).one()
    assert process.privileges is not None
    return set(process.privileges)


async def test_a_process_started_with_a_narrow_key_holds_no_more_than_the_key(
    server: LiveServer, factory: Factory
) -> None:
    """The starter is the credential that starts the run, not the person behind it: an
    owner's key that may only run workflows starts processes that may do no more."""
    owner = await factory.account()
    workflow = await create_workflow(server, owner.token, "narrow", QUICK)
    key = await factory.api_key(owner, ["workflow:read", "process:run", "process:read"])
    started = await execute(server, key, workflow["id"])
    privileges = await stored_privileges(server, started["id"])
    assert privileges <= {"workflow:read", "process:run", "process:read"}, privileges
    assert "credential:read" not in privileges and "integration:write" not in privileges
    by_owner = await execute(server, owner.token, workflow["id"])
    assert "credential:read" in await stored_privileges(server, by_owner["id"])


# -- hole 1: templates ---------------------------------------------------------------------------


async def test_a_template_renders_no_token_or_secret(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    member = await factory.account(role=Role.MEMBER, join=owner.workspace_id)
    await server.gql(
        """mutation($v: String!) { createCredential(input: {name: "stripe", value: $v}) { id } }""",
        {"v": SECRET_VALUE},
        token=owner.token,
    )
    probes = {
        "token": "{{ process.token }}",
        "process": "{{ process }}",
        "secrets": "{{ secrets }}{{ secret.stripe }}{{ credentials.stripe }}{{ credential }}",
        "settings": "{{ settings }}{{ settings.secret_key }}{{ env }}{{ runtime }}",
        "workflow": "{{ workflow }}",
        "vars": "{{ vars }}",
    }
    workflow = await create_workflow(
        server,
        member.token,
        "innocent",
        [{"name": "leak", "type": "transform", "options": {"payload": probes}}],
    )
    process = await execute(server, owner.token, workflow["id"])
    assert process["status"] == "COMPLETED", process
    detail = await server.gql(
        """query($id: UUID!) { process(id: $id) { output logs { message data } steps { error } }
             messages(filter: {processId: $id}) { nodes { payload } } }""",
        {"id": process["id"]},
        token=owner.token,
    )
    assert detail["data"]["messages"]["nodes"], detail
    seen = json.dumps(detail)
    for secret in (
        "eyJ",  # any JWT
        SECRET_VALUE,
        server.runtime.settings.secret_key or "-",
        owner.token,
        member.token,
    ):
        assert secret not in seen


# -- hole 1: what an execution token may do ------------------------------------------------------


async def test_an_execution_token_does_only_what_its_process_needs(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    workflow = await create_workflow(server, owner.token, "mine", QUICK)
    other_workflow = await create_workflow(server, owner.token, "other", QUICK)
    process = await execute(server, owner.token, workflow["id"])
    other = await execute(server, owner.token, other_workflow["id"], wait=False)
    issued = await issue(server, owner.token, process["id"])
    for token in (issued["accessToken"], engine_token(server, process["id"], owner)):
        own = await server.gql(
            "query($id: UUID!) { process(id: $id) { id } }", {"id": process["id"]}, token=token
        )
        assert own["data"]["process"]["id"] == process["id"]
        listed = await server.gql("{ processes { nodes { id } } }", token=token)
        assert listed["data"]["processes"]["nodes"] == [{"id": process["id"]}]
        for document, variables, refused in [
            ("query($id: UUID!) { process(id: $id) { id } }", {"id": other["id"]}, "NOT_FOUND"),
            ("mutation($id: UUID!) { cancelProcess(id: $id) { id } }", {"id": other["id"]}, None),
            ("mutation($id: UUID!) { retryProcess(id: $id) { id } }", {"id": process["id"]}, None),
            ("query($id: UUID!) { workflow(id: $id) { id } }", {"id": other_workflow["id"]}, None),
            ("mutation($id: UUID!) { executeWorkflow(id: $id) { id } }", {"id": workflow["id"]}, None),
            ("mutation($id: UUID!) { issueExecutionToken(id: $id) { accessToken } }", {"id": process["id"]}, None),
            ('mutation { createApiKey(input: {name: "persist"}) { token } }', {}, None),
            ('mutation { createWorkflow(input: {name: "x"}) { id } }', {}, None),
            ('mutation($id: UUID!) { updateWorkflow(id: $id, input: {name: "y"}) { id } }', {"id": workflow["id"]}, None),
            ('mutation($id: UUID!) { setWorkflowSecret(workflowId: $id, key: "K", value: "v") { id } }', {"id": workflow["id"]}, None),
            ('mutation { createCredential(input: {name: "c", value: "v"}) { id } }', {}, None),
            ('mutation($ws: UUID!) { inviteMember(workspaceId: $ws, email: "x@example.com") { role } }', {"ws": str(owner.workspace_id)}, None),
        ]:  # fmt: skip
            body = await server.gql(document, variables, token=token, expect_errors=True)
            assert body.get("errors"), (document, body)
            assert code(body) in ({refused} if refused else {"FORBIDDEN", "NOT_FOUND"}), document
        for listing in ("credentials", "apiKeys", "integrations"):
            nothing = await server.gql(f"{{ {listing} {{ nodes {{ id }} }} }}", token=token)
            assert nothing["data"][listing]["nodes"] == [], listing
    still = await server.gql(
        "query($id: UUID!) { process(id: $id) { status } }", {"id": other["id"]}, token=owner.token
    )
    assert still["data"]["process"]["status"] != "CANCELLED"


async def test_a_process_acts_with_its_last_editors_privileges_too(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    member = await factory.account(role=Role.MEMBER, join=owner.workspace_id)
    integration = (
        await server.gql(
            """mutation { createIntegration(input: {name: "Slack", type: "slack",
                 credentials: {token: "xoxb-secret"}}) { id } }""",
            token=owner.token,
        )
    )["data"]["createIntegration"]["id"]
    read = "query($id: UUID!) { integration(id: $id) { credentials } }"
    workflow = await create_workflow(server, owner.token, "edited", QUICK)

    by_owner = await execute(server, owner.token, workflow["id"])
    assert {"apikey:write", "integration:write"} <= await stored_privileges(server, by_owner["id"])
    token = (await issue(server, owner.token, by_owner["id"]))["accessToken"]
    handed = await server.gql(read, {"id": integration}, token=token)
    assert handed["data"]["integration"]["credentials"] == {"token": "xoxb-secret"}

    # A member's edit: the owner's next run holds no more than the member does.
    await server.gql(
        'mutation($id: UUID!) { updateWorkflow(id: $id, input: {description: "mine now"}) { id } }',
        {"id": workflow["id"]},
        token=member.token,
    )
    after_edit = await execute(server, owner.token, workflow["id"])
    privileges = await stored_privileges(server, after_edit["id"])
    assert "apikey:write" not in privileges and "integration:write" not in privileges
    assert "workflow:read" in privileges
    token = (await issue(server, owner.token, after_edit["id"]))["accessToken"]
    refused = await server.gql(read, {"id": integration}, token=token, expect_errors=True)
    assert code(refused) in ("FORBIDDEN", "NOT_FOUND")
    # Editing one agent counts as editing the workflow.
    agent = (
        await server.gql(
            "query($id: UUID!) { workflow(id: $id) { agents { id } } }",
            {"id": workflow["id"]},
            token=owner.token,
        )
    )["data"]["workflow"]["agents"][0]["id"]
    await server.gql(
        'mutation($id: UUID!) { updateWorkflow(id: $id, input: {description: "owner"}) { id } }',
        {"id": workflow["id"]},
        token=owner.token,
    )
    assert "integration:write" in await stored_privileges(
        server, (await execute(server, owner.token, workflow["id"]))["id"]
    )
    await server.gql(
        "mutation($id: UUID!) { updateAgent(id: $id, input: {disabled: false}) { id } }",
        {"id": agent},
        token=member.token,
    )
    assert "integration:write" not in await stored_privileges(
        server, (await execute(server, owner.token, workflow["id"]))["id"]
    )
    # And a run started by the member holds no more than the member, whoever edited last.
    await server.gql(
        'mutation($id: UUID!) { updateWorkflow(id: $id, input: {description: "owner"}) { id } }',
        {"id": workflow["id"]},
        token=owner.token,
    )
    by_member = await execute(server, member.token, workflow["id"])
    assert "integration:write" not in await stored_privileges(server, by_member["id"])


async def test_a_process_uses_credentials_only_if_its_editor_may(
    server: LiveServer,
    factory: Factory,
    target: Target,  # noqa: F811 (the fixture)
) -> None:
    owner = await factory.account()
    await server.gql(
        """mutation($v: String!) { createCredential(input: {name: "api", value: $v}) { id } }""",
        {"v": SECRET_VALUE},
        token=owner.token,
    )
    call = {"url": f"{target.url}/out", "method": "POST", "credential": "api"}
    workflow = await create_workflow(
        server,
        owner.token,
        "calls out",
        [{"name": "call", "type": "http_request", "options": call}],
    )
    assert (await execute(server, owner.token, workflow["id"]))["status"] == "COMPLETED"
    assert target.hits("/out")[0]["headers"]["authorization"] == f"Bearer {SECRET_VALUE}"
    # An editor (here a key) that may change workflows but not read credentials: its workflow
    # no longer hands them out, even when the owner runs it.
    editor = await factory.api_key(owner, privileges=["workflow:read", "workflow:write"])
    await server.gql(
        'mutation($id: UUID!) { updateWorkflow(id: $id, input: {description: "x"}) { id } }',
        {"id": workflow["id"]},
        token=editor,
    )
    failed = await execute(server, owner.token, workflow["id"])
    assert failed["status"] == "FAILED" and "credential:read" in failed["error"], failed
    assert len(target.hits("/out")) == 1


async def test_an_execution_token_is_never_wider_than_who_asked_for_it(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    workflow = await create_workflow(server, owner.token, "w", QUICK)
    process = await execute(server, owner.token, workflow["id"])
    narrow = await factory.api_key(owner, privileges=["process:read", "process:run"])
    issued = await issue(server, narrow, process["id"])
    for token in (issued["accessToken"],):
        own = await server.gql(
            "query($id: UUID!) { process(id: $id) { id } }", {"id": process["id"]}, token=token
        )
        assert own["data"]["process"]["id"] == process["id"]
        wider = await server.gql(
            "query($id: UUID!) { workflow(id: $id) { id } }",
            {"id": workflow["id"]},
            token=token,
            expect_errors=True,
        )
        assert code(wider) == "FORBIDDEN"
    # Rotation keeps the limit.
    rotated = (
        await server.gql(
            "mutation($r: String!) { refreshExecutionToken(refreshToken: $r) { accessToken } }",
            {"r": issued["refreshToken"]},
        )
    )["data"]["refreshExecutionToken"]["accessToken"]
    wider = await server.gql(
        "query($id: UUID!) { workflow(id: $id) { id } }",
        {"id": workflow["id"]},
        token=rotated,
        expect_errors=True,
    )
    assert code(wider) == "FORBIDDEN"


# -- hole 4: revocation --------------------------------------------------------------------------

REFRESH = "mutation($r: String!) { refreshToken(refreshToken: $r) { accessToken refreshToken } }"
VIEWER = "{ viewer { kind } }"


async def test_reusing_a_refresh_token_refuses_every_access_token_of_that_login(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    other_login = (
        await server.gql(
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            {"e": account.email, "p": PASSWORD},
        )
    )["data"]["login"]["accessToken"]
    rotated = (await server.gql(REFRESH, {"r": account.refresh_token}))["data"]["refreshToken"]
    assert (await server.gql(VIEWER, token=rotated["accessToken"]))["data"]["viewer"]
    reuse = await server.gql(REFRESH, {"r": account.refresh_token}, expect_errors=True)
    assert code(reuse) == "UNAUTHORIZED"
    for token in (account.token, rotated["accessToken"]):
        refused = await server.client.post(
            "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 401, refused.text
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"
    # Another login of the same user is untouched.
    assert (await server.gql(VIEWER, token=other_login))["data"]["viewer"]["kind"] == "user"


async def test_a_revoked_login_closes_its_open_subscriptions(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    async with WS.open(server, TRANSPORT_WS, token=account.token) as ws:
        await ws.subscribe("feed", "subscription { processEvents { id } }")
        await server.gql(REFRESH, {"r": account.refresh_token})
        await server.gql(REFRESH, {"r": account.refresh_token}, expect_errors=True)
        closed_code, reason = await ws.closed(timeout=10)
        assert closed_code == 4401 and reason and "revoked" in reason


async def test_reusing_an_execution_refresh_token_refuses_its_access_tokens(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    workflow = await create_workflow(server, owner.token, "w", QUICK)
    process = await execute(server, owner.token, workflow["id"])
    issued = await issue(server, owner.token, process["id"])
    rotate = "mutation($r: String!) { refreshExecutionToken(refreshToken: $r) { accessToken } }"
    await server.gql(rotate, {"r": issued["refreshToken"]})
    await server.gql(rotate, {"r": issued["refreshToken"]}, expect_errors=True)
    refused = await server.gql(VIEWER, token=issued["accessToken"], expect_errors=True)
    assert code(refused) == "UNAUTHORIZED"
