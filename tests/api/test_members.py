"""Workspace administration: workspaces, members and roles, and tenant isolation."""

from __future__ import annotations

from typing import Any

from flowql.models import Role
from tests.conftest import Account, Factory, LiveServer

WORKSPACE = """
query ($id: UUID!) {
  workspace(id: $id) {
    id name plan cronTimezone ownerId viewerRole
    members { userId role user { email } }
    groups { id name systemManaged members { email } }
  }
}"""
CREATE_WORKSPACE = """
mutation ($name: String!, $plan: Plan, $tz: String) {
  createWorkspace(name: $name, plan: $plan, cronTimezone: $tz) {
    id name plan cronTimezone ownerId viewerRole viewerPrivileges
    members { userId role }
    groups { name systemManaged members { email } }
  }
}"""
UPDATE_WORKSPACE = """
mutation ($id: UUID!, $input: UpdateWorkspaceInput!) {
  updateWorkspace(id: $id, input: $input) { name plan cronTimezone }
}"""
INVITE = """
mutation ($ws: UUID!, $email: String!, $role: Role!) {
  inviteMember(workspaceId: $ws, email: $email, role: $role) {
    id workspaceId email role status expiresAt
  }
}"""
ACCEPT = """
mutation ($id: UUID!) {
  acceptInvitation(id: $id) { id status workspace { id name viewerRole } }
}"""
UPDATE_ROLE = """
mutation ($ws: UUID!, $user: UUID!, $role: Role!) {
  updateMemberRole(workspaceId: $ws, userId: $user, role: $role) { userId role }
}"""
REMOVE_MEMBER = """
mutation ($ws: UUID!, $user: UUID!) {
  removeMember(workspaceId: $ws, userId: $user) { userId role }
}"""
CREATE_GROUP = """
mutation ($ws: UUID!, $name: String!) {
  createGroup(workspaceId: $ws, name: $name) { id name systemManaged members { email } }
}"""
ADD_TO_GROUP = """
mutation ($group: UUID!, $user: UUID!) {
  addGroupMember(groupId: $group, userId: $user) { id members { email } }
}"""
REMOVE_FROM_GROUP = """
mutation ($group: UUID!, $user: UUID!) {
  removeGroupMember(groupId: $group, userId: $user) { id members { email } }
}"""
DELETE_GROUP = "mutation ($id: UUID!) { deleteGroup(id: $id) { id name } }"


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


def fields(body: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = body["errors"][0]["extensions"]["fields"]
    return found


async def workspace(server: LiveServer, account: Account) -> dict[str, Any]:
    body = await server.gql(WORKSPACE, {"id": str(account.workspace_id)}, token=account.token)
    found: dict[str, Any] = body["data"]["workspace"]
    return found


def roles(ws: dict[str, Any]) -> dict[str, str]:
    return {m["user"]["email"]: m["role"] for m in ws["members"]}


async def join(server: LiveServer, inviter: Account, invitee: Account, role: str) -> None:
    """`invitee` joins `inviter`'s workspace the only way there is: invited, then accepting."""
    invited = await server.gql(
        INVITE,
        {"ws": str(inviter.workspace_id), "email": invitee.email, "role": role},
        token=inviter.token,
    )
    invitation_id = invited["data"]["inviteMember"]["id"]
    await server.gql(ACCEPT, {"id": invitation_id}, token=invitee.token)


async def attempt(
    server: LiveServer, query: str, account: Account, **variables: Any
) -> dict[str, Any]:
    variables = {k: str(v) if not isinstance(v, str) else v for k, v in variables.items()}
    return await server.gql(query, variables, token=account.token, expect_errors=True)


# -- workspaces --------------------------------------------------------------------------------


async def test_creator_of_a_workspace_becomes_its_owner(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    body = await server.gql(
        CREATE_WORKSPACE,
        {"name": "  Second  ", "tz": "Europe/Amsterdam"},
        token=account.token,
    )
    created = body["data"]["createWorkspace"]
    assert created["name"] == "Second"
    assert created["plan"] == "UNLIMITED"  # plans are an instance admin's (tests/api/test_plans.py)
    assert created["cronTimezone"] == "Europe/Amsterdam"
    assert created["ownerId"] == str(account.user_id)
    assert created["viewerRole"] == "OWNER"
    assert "workspace:write" in created["viewerPrivileges"]
    assert created["members"] == [{"userId": str(account.user_id), "role": "OWNER"}]
    assert created["groups"] == [
        {"name": "Everyone", "systemManaged": True, "members": [{"email": account.email}]}
    ]
    viewer = await server.gql("{ viewer { workspaces { name } } }", token=account.token)
    names = [w["name"] for w in viewer["data"]["viewer"]["workspaces"]]
    assert "Second" in names and len(names) == 2


async def test_creating_a_workspace_with_a_bad_timezone_writes_nothing(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    body = await attempt(server, CREATE_WORKSPACE, account, name="Nope", tz="Mars/Olympus")
    assert codes(body) == ["VALIDATION_ERROR"]
    assert set(fields(body)) == {"cronTimezone"}
    viewer = await server.gql("{ viewer { workspaces { name } } }", token=account.token)
    assert len(viewer["data"]["viewer"]["workspaces"]) == 1


async def test_api_keys_cannot_create_workspaces(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    token = await factory.api_key(account)
    body = await server.gql(CREATE_WORKSPACE, {"name": "by key"}, token=token, expect_errors=True)
    assert codes(body) == ["FORBIDDEN"]


async def test_owner_updates_workspace_settings(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    body = await server.gql(
        UPDATE_WORKSPACE,
        {"id": str(owner.workspace_id), "input": {"name": "Renamed", "cronTimezone": "Asia/Tokyo"}},
        token=owner.token,
    )
    assert body["data"]["updateWorkspace"] == {
        "name": "Renamed",
        "plan": "UNLIMITED",
        "cronTimezone": "Asia/Tokyo",
    }


async def test_invalid_timezone_is_refused_and_nothing_changes(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account(workspace="Original")
    body = await server.gql(
        UPDATE_WORKSPACE,
        {"id": str(owner.workspace_id), "input": {"name": "Changed", "cronTimezone": "Nowhere/X"}},
        token=owner.token,
        expect_errors=True,
    )
    assert codes(body) == ["VALIDATION_ERROR"]
    assert set(fields(body)) == {"cronTimezone"}
    ws = await workspace(server, owner)
    assert (ws["name"], ws["cronTimezone"]) == ("Original", "UTC")


async def test_admin_cannot_update_workspace_settings(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account(workspace="Original")
    admin = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    body = await server.gql(
        UPDATE_WORKSPACE,
        {"id": str(owner.workspace_id), "input": {"plan": "BUSINESS"}},
        token=admin.token,
        expect_errors=True,
    )
    assert codes(body) == ["FORBIDDEN"]
    assert (await workspace(server, owner))["plan"] == "UNLIMITED"


# -- members -----------------------------------------------------------------------------------


async def test_an_invited_user_who_accepts_becomes_a_member_and_sees_the_workspace(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account(workspace="Team")
    newcomer = await factory.account(workspace="Newcomer's own")
    invited = await server.gql(
        INVITE,
        {"ws": str(owner.workspace_id), "email": newcomer.email.upper(), "role": "MEMBER"},
        token=owner.token,
    )
    invitation = invited["data"]["inviteMember"]
    assert (invitation["email"], invitation["status"]) == (newcomer.email, "PENDING")
    assert roles(await workspace(server, owner)) == {owner.email: "OWNER"}

    accepted = await server.gql(ACCEPT, {"id": invitation["id"]}, token=newcomer.token)
    assert accepted["data"]["acceptInvitation"] == {
        "id": invitation["id"],
        "status": "ACCEPTED",
        "workspace": {"id": str(owner.workspace_id), "name": "Team", "viewerRole": "MEMBER"},
    }
    ws = await workspace(server, owner)
    assert roles(ws) == {owner.email: "OWNER", newcomer.email: "MEMBER"}
    everyone = next(g for g in ws["groups"] if g["systemManaged"])
    assert {m["email"] for m in everyone["members"]} == {owner.email, newcomer.email}

    viewer = await server.gql("{ viewer { workspaces { name viewerRole } } }", token=newcomer.token)
    assert {"name": "Team", "viewerRole": "MEMBER"} in viewer["data"]["viewer"]["workspaces"]


async def test_inviting_a_member_is_a_conflict(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    body = await attempt(
        server, INVITE, owner, ws=owner.workspace_id, email=member.email, role="ADMIN"
    )
    assert codes(body) == ["CONFLICT"]
    assert roles(await workspace(server, owner))[member.email] == "MEMBER"


async def test_member_cannot_manage_members(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    outsider = await factory.account()
    invited = await attempt(
        server, INVITE, member, ws=owner.workspace_id, email=outsider.email, role="MEMBER"
    )
    assert codes(invited) == ["FORBIDDEN"]
    promoted = await attempt(
        server, UPDATE_ROLE, member, ws=owner.workspace_id, user=member.user_id, role="ADMIN"
    )
    assert codes(promoted) == ["FORBIDDEN"]
    assert roles(await workspace(server, owner)) == {owner.email: "OWNER", member.email: "MEMBER"}


async def test_admin_manages_members_but_not_owners(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    admin = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    outsider = await factory.account()
    ws = owner.workspace_id

    await join(server, admin, outsider, "MEMBER")
    promoted = await attempt(server, UPDATE_ROLE, admin, ws=ws, user=outsider.user_id, role="ADMIN")
    assert promoted["data"]["updateMemberRole"]["role"] == "ADMIN"

    to_owner = await attempt(server, UPDATE_ROLE, admin, ws=ws, user=outsider.user_id, role="OWNER")
    assert codes(to_owner) == ["FORBIDDEN"]
    self_owner = await attempt(server, UPDATE_ROLE, admin, ws=ws, user=admin.user_id, role="OWNER")
    assert codes(self_owner) == ["FORBIDDEN"]
    demote = await attempt(server, UPDATE_ROLE, admin, ws=ws, user=owner.user_id, role="MEMBER")
    assert codes(demote) == ["FORBIDDEN"]
    remove = await attempt(server, REMOVE_MEMBER, admin, ws=ws, user=owner.user_id)
    assert codes(remove) == ["FORBIDDEN"]

    assert roles(await workspace(server, owner)) == {
        owner.email: "OWNER",
        admin.email: "ADMIN",
        outsider.email: "ADMIN",
    }


async def test_admin_cannot_add_an_owner(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    admin = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    outsider = await factory.account()
    body = await attempt(
        server, INVITE, admin, ws=owner.workspace_id, email=outsider.email, role="OWNER"
    )
    assert codes(body) == ["FORBIDDEN"]
    assert len((await workspace(server, owner))["members"]) == 2


async def test_last_owner_cannot_be_demoted_or_removed(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    ws = owner.workspace_id
    demote = await attempt(server, UPDATE_ROLE, owner, ws=ws, user=owner.user_id, role="ADMIN")
    assert codes(demote) == ["VALIDATION_ERROR"]
    assert set(fields(demote)) == {"role"}
    leave = await attempt(server, REMOVE_MEMBER, owner, ws=ws, user=owner.user_id)
    assert codes(leave) == ["VALIDATION_ERROR"]
    assert set(fields(leave)) == {"userId"}
    assert roles(await workspace(server, owner)) == {owner.email: "OWNER"}


async def test_an_owner_may_step_down_while_another_owner_remains(
    server: LiveServer, factory: Factory
) -> None:
    first = await factory.account()
    second = await factory.account(join=first.workspace_id, role=Role.OWNER)
    ws = first.workspace_id
    body = await attempt(server, UPDATE_ROLE, first, ws=ws, user=first.user_id, role="ADMIN")
    assert body["data"]["updateMemberRole"]["role"] == "ADMIN"
    current = await workspace(server, second)
    assert current["ownerId"] == str(second.user_id)
    # Now `second` is the last owner and cannot step down either.
    again = await attempt(server, UPDATE_ROLE, second, ws=ws, user=second.user_id, role="ADMIN")
    assert codes(again) == ["VALIDATION_ERROR"]


async def test_removed_member_loses_access_group_places_and_keys(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    key = await factory.api_key(member, privileges=["workflow:read"])
    group = await attempt(server, CREATE_GROUP, owner, ws=owner.workspace_id, name="Ops")
    group_id = group["data"]["createGroup"]["id"]
    await attempt(server, ADD_TO_GROUP, owner, group=group_id, user=member.user_id)

    removed = await attempt(
        server, REMOVE_MEMBER, owner, ws=owner.workspace_id, user=member.user_id
    )
    assert removed["data"]["removeMember"] == {"userId": str(member.user_id), "role": "MEMBER"}

    ws = await workspace(server, owner)
    assert roles(ws) == {owner.email: "OWNER"}
    assert all(member.email not in str(g["members"]) for g in ws["groups"])
    lookup = await attempt(server, WORKSPACE, member, id=owner.workspace_id)
    assert codes(lookup) == ["NOT_FOUND"]
    response = await server.client.post(
        "/graphql",
        json={"query": "{ viewer { kind } }"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 401
    keys = await server.gql(
        "{ apiKeys(filter: {includeRevoked: true}) { nodes { revokedAt } } }", token=owner.token
    )
    assert keys["data"]["apiKeys"]["nodes"][0]["revokedAt"] is not None


async def test_member_may_leave_a_workspace(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    body = await attempt(server, REMOVE_MEMBER, member, ws=owner.workspace_id, user=member.user_id)
    assert body["data"]["removeMember"]["userId"] == str(member.user_id)
    assert roles(await workspace(server, owner)) == {owner.email: "OWNER"}


async def test_changing_an_unknown_member_is_not_found(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    stranger = await factory.account()
    body = await attempt(
        server, UPDATE_ROLE, owner, ws=owner.workspace_id, user=stranger.user_id, role="ADMIN"
    )
    assert codes(body) == ["NOT_FOUND"]


# -- tenant isolation --------------------------------------------------------------------------


async def test_user_of_another_workspace_cannot_touch_its_members(
    server: LiveServer, factory: Factory
) -> None:
    alice = await factory.account(workspace="A")
    member = await factory.account(join=alice.workspace_id, role=Role.MEMBER)
    bob = await factory.account(workspace="B")
    ws = alice.workspace_id

    invite = await attempt(server, INVITE, bob, ws=ws, email=bob.email, role="OWNER")
    assert codes(invite) == ["NOT_FOUND"]
    promote = await attempt(server, UPDATE_ROLE, bob, ws=ws, user=member.user_id, role="ADMIN")
    assert codes(promote) == ["NOT_FOUND"]
    remove = await attempt(server, REMOVE_MEMBER, bob, ws=ws, user=member.user_id)
    assert codes(remove) == ["NOT_FOUND"]
    read = await attempt(server, WORKSPACE, bob, id=ws)
    assert codes(read) == ["NOT_FOUND"]
    rename = await server.gql(
        UPDATE_WORKSPACE,
        {"id": str(ws), "input": {"name": "pwned"}},
        token=bob.token,
        expect_errors=True,
    )
    assert codes(rename) == ["NOT_FOUND"]
    group = await attempt(server, CREATE_GROUP, bob, ws=ws, name="intruders")
    assert codes(group) == ["NOT_FOUND"]

    current = await workspace(server, alice)
    assert current["name"] == "A"
    assert roles(current) == {alice.email: "OWNER", member.email: "MEMBER"}
    assert [g["name"] for g in current["groups"]] == ["Everyone"]
