"""Who may act as which actor of a scenario process, and what an API key's scopes allow.

- A user acts as the actors whose `id` or `userId` is the user's id, and as an unassigned actor
  whose scenario `role` names a group of the workspace the user belongs to.
- An API key with process scopes (LetsFlow: `[{scenario, actors?, actions?}]`) may run only the
  scenarios its scopes name, act only as the scoped actors (`service:NAME` included: that is how
  a service authenticates) and perform only the scoped actions. A key without scopes acts as the
  user who created it.
- Code (a SYSTEM principal, e.g. a workflow agent) names the actor it acts as, services too.

As-Actor (the `actor` argument) is required when the caller could be several actors for the
action, and refused when the caller may not act as that actor.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.auth.principal import Principal, PrincipalKind
from flowql.errors import Forbidden, ValidationFailed
from flowql.models import Group, GroupMember
from flowql.services.scenarios.expressions import apply_fn
from flowql.services.scenarios.state import actor_keys, is_service, matches


def system_principal(workspace_id: uuid.UUID) -> Principal:
    """The principal code uses to perform scenario actions (as a named actor or service)."""
    return Principal(
        kind=PrincipalKind.SYSTEM,
        grants={workspace_id: frozenset({"process:read", "process:run", "scenario:read"})},
    )


def _scopes(principal: Principal, scenario_id: uuid.UUID) -> list[dict[str, Any]] | None:
    """None when the caller is not scope-limited; else the scopes naming this scenario."""
    if principal.kind is not PrincipalKind.API_KEY or not principal.process_scopes:
        return None
    return [
        scope
        for scope in principal.process_scopes
        if scope.get("scenario") in (None, "*", str(scenario_id))
    ]


def check_scope_start(principal: Principal, scenario_id: uuid.UUID) -> None:
    scopes = _scopes(principal, scenario_id)
    if scopes is not None and not scopes:
        raise Forbidden("the API key's process scopes do not include this scenario")


def check_scope_action(
    principal: Principal, scenario_id: uuid.UUID, action: str, actor: str
) -> None:
    scopes = _scopes(principal, scenario_id)
    if scopes is None:
        return
    if not scopes:
        raise Forbidden("the API key's process scopes do not include this scenario")
    for scope in scopes:
        # An empty or absent list does not restrict (LetsFlow: `actors?`, `actions?`).
        actors, actions = scope.get("actors") or None, scope.get("actions") or None
        if actions is not None and action not in actions:
            continue
        if actors is not None and not any(matches(a, actor) for a in actors):
            continue
        return
    raise Forbidden(
        f"the API key's process scopes do not allow action {action!r} as actor {actor!r}"
    )


async def group_names(
    session: AsyncSession, principal: Principal, workspace_id: uuid.UUID
) -> set[str]:
    if principal.user_id is None:
        return set()
    stmt = (
        select(Group.name)
        .join(GroupMember, col(GroupMember.group_id) == col(Group.id))
        .where(col(GroupMember.user_id) == principal.user_id)
        .where(col(Group.workspace_id) == workspace_id)
    )
    return set((await session.exec(stmt)).all())


def _user_actors(view: dict[str, Any], user_id: uuid.UUID, groups: set[str]) -> list[str]:
    mine = []
    for key, record in view["actors"].items():
        if not isinstance(record, dict):
            continue
        assigned = [record.get("id"), record.get("userId")]
        if str(user_id) in assigned:
            mine.append(key)
        elif not any(assigned) and record.get("role"):
            roles = record["role"] if isinstance(record["role"], list) else [record["role"]]
            if groups.intersection(roles):
                mine.append(key)
    return mine


def candidate_actors(
    principal: Principal, view: dict[str, Any], scenario_id: uuid.UUID, groups: set[str]
) -> list[str]:
    """The actors (and services) of the process the caller may act as."""
    if principal.kind is PrincipalKind.SYSTEM:
        return list(view["actors"])
    scopes = _scopes(principal, scenario_id)
    if scopes:
        found: list[str] = []
        for scope in scopes:
            named = scope.get("actors") or None
            keys = actor_keys(view, named) if named is not None else list(view["actors"])
            found.extend(k for k in keys if k not in found)
        return found
    if principal.user_id is None:
        return []
    return _user_actors(view, principal.user_id, groups)


def could_perform(view: dict[str, Any], action: str, key: str) -> bool:
    """Whether `key` is among the actors the action and a transition of this state name."""
    definition = view["scenario"]["actions"].get(action) or {}
    patterns = apply_fn(definition.get("actor", []), view)
    if key not in actor_keys(view, patterns if isinstance(patterns, list) else [patterns]):
        return False
    state = view["scenario"]["states"][view["current"]["key"]]
    return any(
        t.get("on") == action and any(matches(p, key, by=True) for p in apply_fn(t["by"], view))
        for t in state.get("transitions", [])
    )


def resolve_actor(
    principal: Principal,
    view: dict[str, Any],
    scenario_id: uuid.UUID,
    action: str,
    requested: str | None,
    groups: set[str],
) -> str:
    candidates = candidate_actors(principal, view, scenario_id, groups)
    if requested is not None:
        allowed = requested in candidates or (
            principal.kind is PrincipalKind.SYSTEM and is_service(requested)
        )
        if not allowed:
            raise Forbidden(f"you may not act as actor {requested!r} in this process")
        return requested
    if not candidates:
        raise Forbidden("you are not an actor of this process")
    able = [key for key in candidates if could_perform(view, action, key)]
    if len(able) == 1:
        return able[0]
    if not able and len(candidates) == 1:
        return candidates[0]  # performed and recorded as skipped, with the reason
    options = ", ".join(able or candidates)
    raise ValidationFailed(
        {"actor": f"As-Actor required: you could act as {options}"},
        f"As-Actor required: you could act as {options}",
    )


def event_actor(principal: Principal, view: dict[str, Any], key: str) -> dict[str, Any]:
    """Who performed an action, as recorded in the event: the actor key and the caller."""
    actor: dict[str, Any] = {"key": key}
    record = view["actors"].get(key)
    if isinstance(record, dict) and record.get("id") is not None:
        actor["id"] = record["id"]
    if principal.user_id is not None:
        actor["userId"] = str(principal.user_id)
    if principal.api_key_id is not None:
        actor["apiKeyId"] = str(principal.api_key_id)
    return actor
