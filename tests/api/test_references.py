"""Issue 13: mutations that address a workspace, invitation, group, workflow or process accept its
number as well as its UUID; a number in another tenant is NOT_FOUND, no reference at all is a
VALIDATION_ERROR naming the argument."""

from __future__ import annotations

from typing import Any

from tests.conftest import Account, Factory, LiveServer, error_of
from tests.engine.conftest import create_workflow, execute


async def _ok(server: LiveServer, account: Account, query: str, **variables: Any) -> Any:
    body = await server.gql(query, variables, token=account.token)
    return next(iter(body["data"].values()))


async def _code(server: LiveServer, account: Account, query: str, **variables: Any) -> str:
    body = await server.gql(query, variables, token=account.token, expect_errors=True)
    code: str = error_of(body)["code"]
    return code


async def _workspace_number(server: LiveServer, account: Account) -> int:
    ws = await _ok(
        server,
        account,
        "query($id: UUID!) { workspace(id: $id) { number } }",
        id=str(account.workspace_id),
    )
    number: int = ws["number"]
    return number


async def test_workspace_invitation_and_group_mutations_by_number(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account(workspace="Team")
    invitee = await factory.account(workspace="Mine")
    stranger = await factory.account(workspace="Other")
    ws_n = await _workspace_number(server, owner)

    renamed = await _ok(
        server,
        owner,
        'mutation($n: Int!) { updateWorkspace(number: $n, input: {name: "Renamed"}) { id name } }',
        n=ws_n,
    )
    assert renamed == {"id": str(owner.workspace_id), "name": "Renamed"}

    invite = """mutation($n: Int!, $email: String!) {
      inviteMember(workspaceNumber: $n, email: $email) { id number workspaceId status } }"""
    first = await _ok(server, owner, invite, n=ws_n, email=invitee.email)
    assert first["workspaceId"] == str(owner.workspace_id)
    revoked = await _ok(
        server,
        owner,
        "mutation($n: Int!) { revokeInvitation(number: $n) { id status } }",
        n=first["number"],
    )
    assert revoked == {"id": first["id"], "status": "REVOKED"}
    second = await _ok(server, owner, invite, n=ws_n, email=invitee.email)
    # Only the invited user may answer, by number as by id.
    assert (
        await _code(
            server,
            stranger,
            "mutation($n: Int!) { acceptInvitation(number: $n) { id } }",
            n=second["number"],
        )
        == "NOT_FOUND"
    )
    accepted = await _ok(
        server,
        invitee,
        "mutation($n: Int!) { acceptInvitation(number: $n) { id status } }",
        n=second["number"],
    )
    assert accepted == {"id": second["id"], "status": "ACCEPTED"}
    third = await _ok(server, owner, invite, n=ws_n, email="nobody@example.com")
    declined_elsewhere = await _code(
        server,
        invitee,
        "mutation($n: Int!) { declineInvitation(number: $n) { id } }",
        n=third["number"],
    )
    assert declined_elsewhere == "NOT_FOUND"

    member = await _ok(
        server,
        owner,
        """mutation($n: Int!, $u: UUID!) {
          updateMemberRole(workspaceNumber: $n, userId: $u, role: ADMIN) { userId role } }""",
        n=ws_n,
        u=str(invitee.user_id),
    )
    assert member == {"userId": str(invitee.user_id), "role": "ADMIN"}

    group = await _ok(
        server,
        owner,
        'mutation($n: Int!) { createGroup(workspaceNumber: $n, name: "ops") { id number workspaceId } }',
        n=ws_n,
    )
    assert group["workspaceId"] == str(owner.workspace_id)
    added = await _ok(
        server,
        owner,
        """mutation($n: Int!, $u: UUID!) {
          addGroupMember(groupNumber: $n, userId: $u) { id members { id } } }""",
        n=group["number"],
        u=str(invitee.user_id),
    )
    assert added == {"id": group["id"], "members": [{"id": str(invitee.user_id)}]}
    removed = await _ok(
        server,
        owner,
        """mutation($n: Int!, $u: UUID!) {
          removeGroupMember(groupNumber: $n, userId: $u) { members { id } } }""",
        n=group["number"],
        u=str(invitee.user_id),
    )
    assert removed == {"members": []}

    # Another tenant's numbers are NOT_FOUND, and nothing changes.
    for query, n in [
        ('mutation($n: Int!) { updateWorkspace(number: $n, input: {name: "x"}) { id } }', ws_n),
        ('mutation($n: Int!) { createGroup(workspaceNumber: $n, name: "spy") { id } }', ws_n),
        (
            'mutation($n: Int!) { inviteMember(workspaceNumber: $n, email: "a@b.example") { id } }',
            ws_n,
        ),
        ("mutation($n: Int!) { deleteGroup(number: $n) { id } }", group["number"]),
        ("mutation($n: Int!) { revokeInvitation(number: $n) { id } }", third["number"]),
    ]:
        assert await _code(server, stranger, query, n=n) == "NOT_FOUND", query
    assert (
        await _code(
            server,
            owner,
            'mutation($n: Int!) { updateWorkspace(number: $n, input: {name: "x"}) { id } }',
            n=10**9,
        )
        == "NOT_FOUND"
    )
    missing = await server.gql(
        'mutation { createGroup(name: "x") { id } }', token=owner.token, expect_errors=True
    )
    assert error_of(missing)["code"] == "VALIDATION_ERROR"
    assert "workspaceId" in str(error_of(missing))

    deleted = await _ok(
        server, owner, "mutation($n: Int!) { deleteGroup(number: $n) { id } }", n=group["number"]
    )
    assert deleted == {"id": group["id"]}
    left = await _ok(
        server,
        owner,
        "mutation($n: Int!, $u: UUID!) { removeMember(workspaceNumber: $n, userId: $u) { userId } }",
        n=ws_n,
        u=str(invitee.user_id),
    )
    assert left == {"userId": str(invitee.user_id)}
    team = await _ok(
        server,
        owner,
        "query($id: UUID!) { workspace(id: $id) { name groups { name } members { userId } } }",
        id=str(owner.workspace_id),
    )
    assert team["name"] == "Renamed"
    assert "ops" not in [g["name"] for g in team["groups"]]
    assert str(invitee.user_id) not in [m["userId"] for m in team["members"]]


async def test_workflow_secret_and_http_response_by_number(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    stranger = await factory.account()
    workflow = await create_workflow(
        server, owner.token, "numbered", [{"name": "m", "type": "message"}]
    )
    process = await execute(server, owner.token, workflow["id"], {})
    numbers = await server.gql(
        "query($w: UUID!, $p: UUID!) { workflow(id: $w) { number } process(id: $p) { number } }",
        {"w": workflow["id"], "p": process["id"]},
        token=owner.token,
    )
    wf_n = numbers["data"]["workflow"]["number"]
    proc_n = numbers["data"]["process"]["number"]

    secret = """mutation($n: Int!) {
      setWorkflowSecret(workflowNumber: $n, key: "TOKEN", value: "s3cret") { id name } }"""
    assert await _code(server, stranger, secret, n=wf_n) == "NOT_FOUND"
    made = await server.gql(secret, {"n": wf_n}, token=owner.token)
    assert "s3cret" not in str(made)
    assert made["data"]["setWorkflowSecret"]["id"]

    respond = """mutation($n: Int!) {
      respondToHttpTrigger(processNumber: $n, status: 201, body: {ok: true}) { id } }"""
    assert await _code(server, stranger, respond, n=proc_n) == "NOT_FOUND"
    answered = await _ok(server, owner, respond, n=proc_n)
    assert answered == {"id": process["id"]}
    again = await server.gql(respond, {"n": proc_n}, token=owner.token, expect_errors=True)
    assert error_of(again)["code"] == "VALIDATION_ERROR"

    for query in [
        'mutation { setWorkflowSecret(key: "K", value: "v") { id } }',
        "mutation { respondToHttpTrigger(status: 200) { id } }",
    ]:
        body = await server.gql(query, token=owner.token, expect_errors=True)
        assert error_of(body)["code"] == "VALIDATION_ERROR", query


async def test_form_input_takes_the_workflow_number(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    stranger = await factory.account()
    workflow = await create_workflow(server, owner.token, "w", [{"name": "m", "type": "message"}])
    other = await create_workflow(server, owner.token, "w2", [{"name": "m", "type": "message"}])
    numbers = await server.gql(
        "query($a: UUID!, $b: UUID!) { a: workflow(id: $a) { number } b: workflow(id: $b) { number } }",
        {"a": workflow["id"], "b": other["id"]},
        token=owner.token,
    )
    wf_n, other_n = numbers["data"]["a"]["number"], numbers["data"]["b"]["number"]
    create = """mutation($n: Int!) {
      createForm(input: {name: "F", workflowNumber: $n}) { id workflow { id } } }"""
    form = await _ok(server, owner, create, n=wf_n)
    assert form["workflow"] == {"id": workflow["id"]}
    moved = await _ok(
        server,
        owner,
        """mutation($id: UUID!, $n: Int!) {
          updateForm(id: $id, input: {workflowNumber: $n}) { workflow { id } } }""",
        id=form["id"],
        n=other_n,
    )
    assert moved == {"workflow": {"id": other["id"]}}
    foreign = await server.gql(create, {"n": wf_n}, token=stranger.token, expect_errors=True)
    assert error_of(foreign)["code"] == "VALIDATION_ERROR"
    assert error_of(foreign)["fields"] == {
        "workflowNumber": "no such workflow in the form's workspace"
    }


async def test_agent_and_trigger_inputs_take_the_workflow_number(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    stranger = await factory.account()
    workflow = await create_workflow(server, owner.token, "w", [{"name": "m", "type": "message"}])
    wf = await _ok(
        server, owner, "query($id: UUID!) { workflow(id: $id) { number } }", id=workflow["id"]
    )
    agent = """mutation($n: Int) {
      createAgent(input: {workflowNumber: $n, name: "a2", type: "message"}) { workflowId } }"""
    trigger = """mutation($n: Int) {
      createTrigger(input: {workflowNumber: $n, type: WEBHOOK, name: "hook",
                            options: {path: "p"}}) { workflowId } }"""
    assert await _ok(server, owner, agent, n=wf["number"]) == {"workflowId": workflow["id"]}
    assert await _ok(server, owner, trigger, n=wf["number"]) == {"workflowId": workflow["id"]}
    for query in (agent, trigger):
        assert await _code(server, stranger, query, n=wf["number"]) == "NOT_FOUND"
        missing = await server.gql(query, {"n": None}, token=owner.token, expect_errors=True)
        assert error_of(missing)["code"] == "VALIDATION_ERROR"
        assert "workflowId" in error_of(missing)["fields"]
