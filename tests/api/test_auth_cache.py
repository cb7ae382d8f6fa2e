"""Authentication costs one statement for a credential not seen in the last few seconds and none
for one that was (flowql.auth.cache), and every change that takes a credential's rights away
still takes effect on the very next request: a deactivated user, a changed role, a removed
member, a revoked API key, a revoked login. Over real HTTP, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, text
from sqlmodel import col, select, update

from flowql.auth.cache import PrincipalCache
from flowql.auth.principal import Principal, PrincipalKind
from flowql.db import PlanClock, changes_cached_reads
from flowql.models import Membership, RefreshToken, Role, User
from flowql.models.base import utcnow
from tests.api.test_dataloaders import describe, run_counted, server  # noqa: F401 (fixture)
from tests.conftest import Account, Factory, LiveServer

# Answered from the principal alone: every statement it costs is authentication's.
WHO = "{ __typename }"
WORKFLOWS = "{ workflows(first: 5) { nodes { id } } }"
# Admins may make API keys, members may not.
CREATE_KEY = 'mutation { createApiKey(input: {name: "k"}) { token } }'


async def statements(
    server: LiveServer,  # noqa: F811
    token: str,
    query: str = WHO,
) -> tuple[Any, list[str]]:
    return await run_counted(server, query, {}, token)


async def ask(
    server: LiveServer,  # noqa: F811
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str,
) -> dict[str, Any]:
    return await server.gql(query, variables, token=token, expect_errors=True)


def code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


async def test_a_user_token_costs_one_statement_then_none(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    account = await factory.account()
    body, first = await statements(server, account.token)
    assert body["data"] == {"__typename": "Query"}
    assert len(first) == 1, describe(first)
    body, again = await statements(server, account.token)
    assert body["data"] == {"__typename": "Query"}
    assert again == [], describe(again)


async def test_an_api_key_costs_one_read_and_one_use_record_then_none(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    account = await factory.account()
    token = await factory.api_key(account)
    body, first = await statements(server, token)
    assert code(body) is None, body
    reads = [s for s in first if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 1 and len(first) == 2, describe(first)  # + UPDATE last_used_at
    body, again = await statements(server, token)
    assert code(body) is None and again == [], describe(again)


async def test_a_jwt_is_verified_every_request_even_when_cached(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    account = await factory.account()
    assert code(await ask(server, WHO, token=account.token)) is None
    header, payload, signature = account.token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    assert code(await ask(server, WHO, token=forged)) == "UNAUTHORIZED"
    assert code(await ask(server, WHO, token=account.token)) is None


async def cached(server: LiveServer, token: str) -> None:  # noqa: F811
    """Authenticate once, and prove the principal is now answered without the database."""
    body, _ = await statements(server, token)
    assert code(body) is None, body
    body, again = await statements(server, token)
    assert code(body) is None and again == [], describe(again)


async def test_a_deactivated_user_is_refused_at_once(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    account = await factory.account()
    key = await factory.api_key(account)
    await cached(server, account.token)
    await cached(server, key)
    async with server.runtime.db.transaction() as session:
        user = (await session.exec(select(User).where(User.id == account.user_id))).one()
        user.is_active = False
        session.add(user)
    assert code(await ask(server, WHO, token=account.token)) == "UNAUTHORIZED"
    assert code(await ask(server, WHO, token=key)) == "UNAUTHORIZED"


async def test_a_changed_role_applies_at_once(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    await cached(server, member.token)
    created = await ask(server, CREATE_KEY, token=member.token)
    assert code(created) is None, created
    changed = await ask(
        server,
        "mutation ($ws: UUID!, $u: UUID!) "
        "{ updateMemberRole(workspaceId: $ws, userId: $u, role: MEMBER) { role } }",
        {"ws": str(owner.workspace_id), "u": str(member.user_id)},
        token=owner.token,
    )
    assert code(changed) is None, changed
    assert code(await ask(server, CREATE_KEY, token=member.token)) == "FORBIDDEN"


async def test_a_role_changed_by_plain_sql_applies_at_once(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    """Writes are watched at the SQL level: a raw statement ends cached principals too."""
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    await cached(server, member.token)
    columns = Membership.__table__.c  # type: ignore[attr-defined]
    statement = text("UPDATE memberships SET role = :role WHERE user_id = :u").bindparams(
        bindparam("role", Role.MEMBER, type_=columns.role.type),
        bindparam("u", member.user_id, type_=columns.user_id.type),
    )
    async with server.runtime.db.engine.begin() as conn:
        await conn.execute(statement)
    assert code(await ask(server, CREATE_KEY, token=member.token)) == "FORBIDDEN"


async def test_a_removed_member_and_its_key_are_refused_at_once(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    owner = await factory.account()
    member = await factory.account(join=owner.workspace_id, role=Role.ADMIN)
    key = await factory.api_key(member, privileges=["workflow:read"])
    await cached(server, key)
    async with server.runtime.db.transaction() as session:
        await session.exec(
            update(Membership)
            .where(col(Membership.user_id) == member.user_id)
            .values(role=Role.MEMBER)
        )
    await cached(server, key)  # still a member: the key works with the narrower role
    removed = await ask(
        server,
        "mutation ($ws: UUID!, $u: UUID!) { removeMember(workspaceId: $ws, userId: $u) { role } }",
        {"ws": str(owner.workspace_id), "u": str(member.user_id)},
        token=owner.token,
    )
    assert code(removed) is None, removed
    assert code(await ask(server, WORKFLOWS, token=key)) == "UNAUTHORIZED"


async def test_a_revoked_api_key_is_refused_at_once(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    account = await factory.account()
    created = await ask(
        server,
        'mutation { createApiKey(input: {name: "k"}) { token apiKey { id } } }',
        token=account.token,
    )
    token = created["data"]["createApiKey"]["token"]
    key_id = created["data"]["createApiKey"]["apiKey"]["id"]
    await cached(server, token)
    revoked = await ask(
        server,
        "mutation ($id: UUID!) { revokeApiKey(id: $id) { revokedAt } }",
        {"id": key_id},
        token=account.token,
    )
    assert code(revoked) is None, revoked
    assert code(await ask(server, WHO, token=token)) == "UNAUTHORIZED"


async def test_a_revoked_login_is_refused_at_once(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    account = await factory.account()
    await cached(server, account.token)
    async with server.runtime.db.transaction() as session:
        await session.exec(
            update(RefreshToken)
            .where(col(RefreshToken.user_id) == account.user_id)
            .values(revoked_at=utcnow())
        )
    body = await ask(server, WHO, token=account.token)
    assert code(body) == "UNAUTHORIZED" and "revoked" in body["errors"][0]["message"]


async def test_a_new_workspace_is_seen_by_the_next_request(
    server: LiveServer,  # noqa: F811
    factory: Factory,
) -> None:
    account: Account = await factory.account()
    await cached(server, account.token)
    made = await ask(
        server, 'mutation { createWorkspace(name: "second") { id } }', token=account.token
    )
    assert code(made) is None, made
    workspace_id = made["data"]["createWorkspace"]["id"]
    body = await ask(
        server,
        "query ($id: UUID!) { workspace(id: $id) { id } }",
        {"id": workspace_id},
        token=account.token,
    )
    assert body["data"]["workspace"] == {"id": workspace_id}, body


# -- the cache on its own ---------------------------------------------------------------------

PRINCIPAL = Principal(kind=PrincipalKind.USER)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_end_after_the_ttl() -> None:
    """What another process changed is seen within the TTL."""
    clock = Clock()
    generations = PlanClock()
    cache = PrincipalCache(generations, ttl=5.0, clock=clock)
    cache.put("t", PRINCIPAL, generations.generation)
    clock.now += 4.9
    assert cache.get("t") is PRINCIPAL
    clock.now += 0.2
    assert cache.get("t") is None


def test_entries_end_with_the_credential() -> None:
    wall = Clock()
    generations = PlanClock()
    cache = PrincipalCache(generations, ttl=5.0, wall=wall)
    cache.put("t", PRINCIPAL, generations.generation, not_after=wall.now + 1)
    assert cache.get("t") is PRINCIPAL
    wall.now += 1
    assert cache.get("t") is None


def test_a_read_that_overlapped_a_change_is_not_kept() -> None:
    generations = PlanClock()
    cache = PrincipalCache(generations)
    before = generations.generation
    generations.tick()  # a change committed while the principal was being read
    cache.put("t", PRINCIPAL, before)
    assert cache.get("t") is None
    cache.put("t", PRINCIPAL, generations.generation)
    assert cache.get("t") is PRINCIPAL
    generations.tick()
    assert cache.get("t") is None


@pytest.mark.parametrize(
    ("statement", "changes"),
    [
        ("UPDATE users SET is_active=? WHERE users.id = ?", True),
        ('UPDATE "memberships" SET role=%(role)s WHERE memberships.id = %(id)s', True),
        ("UPDATE api_keys SET revoked_at=?, name=? WHERE api_keys.number = ?", True),
        ("UPDATE api_keys SET last_used_at=? WHERE api_keys.number = ?", False),
        ("UPDATE api_keys SET last_used_at=%(last_used_at)s WHERE api_keys.number = %(n)s", False),
        ("UPDATE refresh_tokens SET rotated_at=? WHERE refresh_tokens.number = ?", False),
        ("UPDATE refresh_tokens SET revoked_at=? WHERE refresh_tokens.family_id = ?", True),
        ("UPDATE users SET last_login=? WHERE users.id = ?", False),
        ("UPDATE workspaces SET plan=? WHERE workspaces.id = ?", True),
        ("DELETE FROM memberships WHERE memberships.id = ?", True),
        ("DELETE FROM processes WHERE processes.id = ?", True),
        ("INSERT INTO memberships (id, user_id) VALUES (?, ?)", True),
        ("INSERT INTO refresh_tokens (id) VALUES (?)", False),
        ("INSERT INTO processes (id) VALUES (?)", False),
        ("UPDATE processes SET status=? WHERE processes.id = ?", False),
        ("SELECT users.id FROM users", False),
        ("DROP TABLE users", True),
        # What the engine's plans and definitions are read from (engine/plans.py).
        ("UPDATE workflows SET status=? WHERE workflows.id = ?", True),
        ("INSERT INTO agents (id, name) VALUES (?, ?)", True),
        ('DELETE FROM "triggers" WHERE triggers.id = %(id)s', True),
        ("INSERT INTO webhook_subscriptions (id) VALUES (?)", True),
        ("INSERT INTO process_steps (id) VALUES (?)", False),
        ("INSERT INTO users (id, email) VALUES (?, ?)", False),
    ],
)
def test_which_writes_end_cached_reads(statement: str, changes: bool) -> None:
    assert changes_cached_reads(statement) is changes
