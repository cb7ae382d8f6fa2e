"""Groups inside a workspace: who may manage them, who may join, the system-managed one."""

from __future__ import annotations

from flowql.models import Role
from tests.api.test_members import (
    ADD_TO_GROUP,
    CREATE_GROUP,
    DELETE_GROUP,
    REMOVE_FROM_GROUP,
    attempt,
    codes,
    fields,
    workspace,
)
from tests.conftest import Factory, LiveServer


async def test_another_workspaces_group_is_not_found(server: LiveServer, factory: Factory) -> None:
    alice = await factory.account()
    bob = await factory.account()
    everyone = (await workspace(server, alice))["groups"][0]["id"]
    added = await attempt(server, ADD_TO_GROUP, bob, group=everyone, user=bob.user_id)
    assert codes(added) == ["NOT_FOUND"]
    deleted = await attempt(server, DELETE_GROUP, bob, id=everyone)
    assert codes(deleted) == ["NOT_FOUND"]


async def test_group_membership_flow(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    created = await attempt(server, CREATE_GROUP, owner, ws=owner.workspace_id, name="Ops")
    group = created["data"]["createGroup"]
    assert (group["name"], group["systemManaged"], group["members"]) == ("Ops", False, [])

    added = await attempt(server, ADD_TO_GROUP, owner, group=group["id"], user=member.user_id)
    assert added["data"]["addGroupMember"]["members"] == [{"email": member.email}]
    removed = await attempt(
        server, REMOVE_FROM_GROUP, owner, group=group["id"], user=member.user_id
    )
    assert removed["data"]["removeGroupMember"]["members"] == []
    deleted = await attempt(server, DELETE_GROUP, owner, id=group["id"])
    assert deleted["data"]["deleteGroup"]["name"] == "Ops"
    assert [g["name"] for g in (await workspace(server, owner))["groups"]] == ["Everyone"]


async def test_only_workspace_members_can_join_a_group(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    outsider = await factory.account()
    group = await attempt(server, CREATE_GROUP, owner, ws=owner.workspace_id, name="Ops")
    group_id = group["data"]["createGroup"]["id"]
    body = await attempt(server, ADD_TO_GROUP, owner, group=group_id, user=outsider.user_id)
    assert codes(body) == ["VALIDATION_ERROR"]
    assert set(fields(body)) == {"userId"}


async def test_system_managed_group_cannot_be_deleted_or_edited(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    everyone = next(g for g in (await workspace(server, owner))["groups"] if g["systemManaged"])

    deleted = await attempt(server, DELETE_GROUP, owner, id=everyone["id"])
    assert codes(deleted) == ["VALIDATION_ERROR"]
    removed = await attempt(
        server, REMOVE_FROM_GROUP, owner, group=everyone["id"], user=member.user_id
    )
    assert codes(removed) == ["VALIDATION_ERROR"]
    groups = (await workspace(server, owner))["groups"]
    assert [(g["name"], len(g["members"])) for g in groups] == [("Everyone", 2)]


async def test_group_names_are_unique_per_workspace(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    await attempt(server, CREATE_GROUP, owner, ws=owner.workspace_id, name="Ops")
    again = await attempt(server, CREATE_GROUP, owner, ws=owner.workspace_id, name="Ops")
    assert codes(again) == ["VALIDATION_ERROR"]
    empty = await attempt(server, CREATE_GROUP, owner, ws=owner.workspace_id, name="  ")
    assert codes(empty) == ["VALIDATION_ERROR"]
    assert len((await workspace(server, owner))["groups"]) == 2


async def test_member_cannot_manage_groups(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    body = await attempt(server, CREATE_GROUP, member, ws=owner.workspace_id, name="Mine")
    assert codes(body) == ["FORBIDDEN"]
