"""Joining a workspace takes consent: an invitation the invited user accepts or declines.

Until they accept nothing changes for them; the inviter cannot tell whether the address has an
account; only the user signed in with the invited address may answer; invitations expire and
admins can revoke them.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select, update

from flowql.models import Invitation, Role, User, Workspace, utcnow
from flowql.services import invitations
from flowql.services.auth import create_user, login
from flowql.services.workspaces import add_member
from tests.api.test_members import ACCEPT, INVITE, attempt, codes, fields, join, roles, workspace
from tests.conftest import PASSWORD, Account, Factory, LiveServer

MY_INVITATIONS = """{ viewer { workspaces { id } invitations {
  id workspaceId workspaceName email role status invitedBy { email } workspace { id } } } }"""
WORKSPACE_INVITATIONS = """query ($id: UUID!, $open: Boolean! = true) {
  workspace(id: $id) { invitations(openOnly: $open) { id email role status } } }"""
DECLINE = "mutation ($id: UUID!) { declineInvitation(id: $id) { id status } }"
REVOKE = "mutation ($id: UUID!) { revokeInvitation(id: $id) { id status } }"
CREATE_WORKFLOW = """mutation ($name: String!, $ws: UUID) {
  createWorkflow(input: {name: $name, workspaceId: $ws}) { id workspaceId } }"""
WORKFLOWS = "{ workflows(first: 50) { nodes { name workspaceId } } }"
# What the server's scheduler loop runs meanwhile, whatever the request.
SCHEDULER_STATEMENTS = (
    "SELECT processes.",
    "SELECT triggers.",
    "SELECT webhook_deliveries.",
    "UPDATE processes",
    "UPDATE triggers",
    "UPDATE webhook_deliveries",
)


async def invite(server: LiveServer, inviter: Account, email: str, role: str = "MEMBER") -> str:
    body = await server.gql(
        INVITE,
        {"ws": str(inviter.workspace_id), "email": email, "role": role},
        token=inviter.token,
    )
    invitation_id: str = body["data"]["inviteMember"]["id"]
    return invitation_id


async def my_invitations(server: LiveServer, account: Account) -> list[dict[str, Any]]:
    body = await server.gql(MY_INVITATIONS, token=account.token)
    found: list[dict[str, Any]] = body["data"]["viewer"]["invitations"]
    return found


async def test_an_invitation_changes_nothing_for_the_invitee_until_accepted(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account(workspace="Team")
    invitee = await factory.account(workspace="Mine")
    before = await server.gql(MY_INVITATIONS, token=invitee.token)
    invitation_id = await invite(server, owner, invitee.email, "ADMIN")

    after = await server.gql(MY_INVITATIONS, token=invitee.token)
    assert after["data"]["viewer"]["workspaces"] == before["data"]["viewer"]["workspaces"]
    assert after["data"]["viewer"]["invitations"] == [
        {
            "id": invitation_id,
            "workspaceId": str(owner.workspace_id),
            "workspaceName": "Team",
            "email": invitee.email,
            "role": "ADMIN",
            "status": "PENDING",
            "invitedBy": {"email": owner.email},
            "workspace": None,
        }
    ]
    # Their calls work as before: a create without a workspace still goes to their own one.
    created = await server.gql(CREATE_WORKFLOW, {"name": "still mine"}, token=invitee.token)
    assert created["data"]["createWorkflow"]["workspaceId"] == str(invitee.workspace_id)
    hidden = await attempt(server, WORKSPACE_INVITATIONS, invitee, id=owner.workspace_id)
    assert codes(hidden) == ["NOT_FOUND"]
    assert roles(await workspace(server, owner)) == {owner.email: "OWNER"}


async def test_inviting_answers_alike_whether_or_not_the_address_is_registered(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    registered = await factory.account()
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"

    async def invited(email: str) -> tuple[int, dict[str, Any], list[str]]:
        log = server.runtime.db.statement_log
        log.start()
        try:
            response = await server.client.post(
                "/graphql",
                json={
                    "query": INVITE,
                    "variables": {"ws": str(owner.workspace_id), "email": email, "role": "MEMBER"},
                },
                headers={"Authorization": f"Bearer {owner.token}"},
            )
        finally:
            statements = [s for s in log.stop() if not s.startswith(SCHEDULER_STATEMENTS)]
        return response.status_code, response.json(), statements

    # Authenticated once first: both invitations then find the owner's principal cached.
    await server.gql("{ __typename }", token=owner.token)
    status_a, body_a, statements_a = await invited(registered.email)
    status_b, body_b, statements_b = await invited(unknown)
    assert status_a == status_b == 200
    a, b = body_a["data"]["inviteMember"], body_b["data"]["inviteMember"]
    assert set(body_a) == set(body_b) == {"data"}
    assert {k: v for k, v in a.items() if k not in ("id", "email", "expiresAt")} == {
        k: v for k, v in b.items() if k not in ("id", "email", "expiresAt")
    }
    # The same statements, in the same order: nothing looks the address up on its own.
    assert statements_a == statements_b

    # The address registered later (by the operator) finds its invitation waiting.
    async with server.runtime.db.transaction() as session:
        await create_user(session, unknown, PASSWORD)
    async with server.runtime.db.transaction() as session:
        pair = await login(session, server.runtime.settings, unknown, PASSWORD)
    newcomer = Account(uuid.uuid4(), unknown, owner.workspace_id, pair.access_token, "")
    [pending] = await my_invitations(server, newcomer)
    await server.gql(ACCEPT, {"id": pending["id"]}, token=newcomer.token)
    assert roles(await workspace(server, owner))[unknown] == "MEMBER"


async def test_only_the_invited_user_may_answer(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    invitee = await factory.account()
    stranger = await factory.account()
    invitation_id = await invite(server, owner, invitee.email)

    for caller in (stranger, owner):
        body = await attempt(server, ACCEPT, caller, id=invitation_id)
        assert codes(body) == ["NOT_FOUND"]
        body = await attempt(server, DECLINE, caller, id=invitation_id)
        assert codes(body) == ["NOT_FOUND"]
    assert await my_invitations(server, stranger) == []
    # The invitee's own API key is not the invitee: a person answers.
    key = await factory.api_key(invitee)
    by_key = await server.gql(ACCEPT, {"id": invitation_id}, token=key, expect_errors=True)
    assert codes(by_key) == ["FORBIDDEN"]
    keyed_viewer = await server.gql(MY_INVITATIONS, token=key)
    assert keyed_viewer["data"]["viewer"]["invitations"] == []
    anonymous = await server.gql(ACCEPT, {"id": invitation_id}, expect_errors=True)
    assert codes(anonymous) == ["UNAUTHORIZED"]
    assert len(await my_invitations(server, invitee)) == 1
    assert roles(await workspace(server, owner)) == {owner.email: "OWNER"}


async def test_a_declined_invitation_adds_nobody_and_cannot_be_accepted_later(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    invitee = await factory.account()
    invitation_id = await invite(server, owner, invitee.email)
    declined = await server.gql(DECLINE, {"id": invitation_id}, token=invitee.token)
    assert declined["data"]["declineInvitation"]["status"] == "DECLINED"
    late = await attempt(server, ACCEPT, invitee, id=invitation_id)
    assert codes(late) == ["VALIDATION_ERROR"]
    assert set(fields(late)) == {"id"}
    assert await my_invitations(server, invitee) == []
    assert roles(await workspace(server, owner)) == {owner.email: "OWNER"}


async def test_an_expired_invitation_cannot_be_accepted(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    invitee = await factory.account()
    invitation_id = await invite(server, owner, invitee.email)
    async with server.runtime.db.transaction() as session:
        await session.exec(
            update(Invitation)
            .where(col(Invitation.id) == uuid.UUID(invitation_id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await my_invitations(server, invitee) == []
    body = await attempt(server, ACCEPT, invitee, id=invitation_id)
    assert codes(body) == ["VALIDATION_ERROR"]
    listed = await server.gql(
        WORKSPACE_INVITATIONS, {"id": str(owner.workspace_id), "open": False}, token=owner.token
    )
    assert [i["status"] for i in listed["data"]["workspace"]["invitations"]] == ["EXPIRED"]
    assert roles(await workspace(server, owner)) == {owner.email: "OWNER"}


async def test_admins_list_and_revoke_invitations_members_and_strangers_cannot(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    admin = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    member = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    stranger = await factory.account()
    invitee = await factory.account()
    to_member = await invite(server, admin, invitee.email)
    to_owner = await invite(server, owner, "future-owner@example.com", "OWNER")

    listed = await server.gql(
        WORKSPACE_INVITATIONS, {"id": str(owner.workspace_id), "open": True}, token=admin.token
    )
    assert [i["id"] for i in listed["data"]["workspace"]["invitations"]] == [to_owner, to_member]
    hidden = await attempt(server, WORKSPACE_INVITATIONS, member, id=owner.workspace_id)
    assert codes(hidden) == ["FORBIDDEN"]
    assert codes(await attempt(server, REVOKE, member, id=to_member)) == ["FORBIDDEN"]
    assert codes(await attempt(server, REVOKE, stranger, id=to_member)) == ["NOT_FOUND"]
    assert codes(await attempt(server, REVOKE, admin, id=to_owner)) == ["FORBIDDEN"]

    revoked = await server.gql(REVOKE, {"id": to_member}, token=admin.token)
    assert revoked["data"]["revokeInvitation"]["status"] == "REVOKED"
    assert await my_invitations(server, invitee) == []
    assert codes(await attempt(server, ACCEPT, invitee, id=to_member)) == ["VALIDATION_ERROR"]
    assert invitee.email not in roles(await workspace(server, owner))


async def test_inviting_again_renews_the_open_invitation(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    invitee = await factory.account()
    first = await invite(server, owner, invitee.email, "MEMBER")
    second = await invite(server, owner, invitee.email.upper(), "ADMIN")
    assert first == second
    [pending] = await my_invitations(server, invitee)
    assert pending["role"] == "ADMIN"


async def test_open_invitations_per_workspace_are_bounded(
    server: LiveServer, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invitations, "MAX_OPEN_INVITATIONS", 2)
    owner = await factory.account()
    await invite(server, owner, "one@example.com")
    await invite(server, owner, "two@example.com")
    body = await attempt(
        server, INVITE, owner, ws=owner.workspace_id, email="three@example.com", role="MEMBER"
    )
    assert codes(body) == ["VALIDATION_ERROR"]
    assert set(fields(body)) == {"email"}


async def test_accepting_keeps_the_role_of_someone_already_added_directly(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    invitee = await factory.account()
    invitation_id = await invite(server, owner, invitee.email, "MEMBER")
    # Meanwhile the operator adds them directly (flowql user create --workspace …).
    async with server.runtime.db.transaction() as session:
        ws = (await session.exec(select(Workspace).where(Workspace.id == owner.workspace_id))).one()
        user = (await session.exec(select(User).where(User.id == invitee.user_id))).one()
        await add_member(session, ws, user, Role.ADMIN)
    body = await server.gql(ACCEPT, {"id": invitation_id}, token=invitee.token)
    assert body["data"]["acceptInvitation"]["status"] == "ACCEPTED"
    assert roles(await workspace(server, owner))[invitee.email] == "ADMIN"


async def test_a_member_of_several_workspaces_stays_usable(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account(workspace="Team")
    user = await factory.account(workspace="Mine")
    await join(server, owner, user, "MEMBER")

    # Only a create that does not say where it goes is ambiguous, and it says so by field.
    body = await attempt(server, CREATE_WORKFLOW, user, name="where?")
    assert codes(body) == ["VALIDATION_ERROR"]
    assert set(fields(body)) == {"workspaceId"}
    for ws in (user.workspace_id, owner.workspace_id):
        made = await server.gql(
            CREATE_WORKFLOW, {"name": f"in {ws}", "ws": str(ws)}, token=user.token
        )
        assert made["data"]["createWorkflow"]["workspaceId"] == str(ws)
    listed = await server.gql(WORKFLOWS, token=user.token)
    assert {w["workspaceId"] for w in listed["data"]["workflows"]["nodes"]} == {
        str(user.workspace_id),
        str(owner.workspace_id),
    }
    # A key belongs to one workspace, so REST families without a workspace parameter work.
    key = await factory.api_key(user, privileges=["workflow:read", "workflow:write"])
    response = await server.client.post(
        "/v1/workflows",
        json={"name": "by key"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 201, response.text
