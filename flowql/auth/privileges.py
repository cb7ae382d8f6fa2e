"""Privileges, the roles that grant them, and what a caller may do in which workspace."""

from __future__ import annotations

from collections.abc import Collection

from flowql.errors import Forbidden
from flowql.models.workspaces import Role

RESOURCES = (
    "workflow",
    "process",
    "scenario",
    "integration",
    "credential",
    "form",
    "webhook",
    "apikey",
    "member",
    "workspace",
)

ALL_PRIVILEGES: frozenset[str] = frozenset(
    {f"{resource}:{verb}" for resource in RESOURCES for verb in ("read", "write")}
    | {"process:run", "audit:read"}
)

_MEMBER = frozenset(
    {f"{r}:read" for r in RESOURCES}
    | {"workflow:write", "process:run", "process:write", "scenario:write", "form:write"}
)
_ADMIN = ALL_PRIVILEGES - {"member:write", "workspace:write"}

# The most a process's execution token may do, on its own process and workflow only: read them,
# answer its http trigger (`process:write`) and read what WayScript hands a running script
# (its workspace, its integrations). Never keys, members, credentials, runs or edits.
EXECUTION_CEILING = frozenset(
    {"process:read", "process:write", "workflow:read", "workspace:read", "integration:read"}
)

ROLE_PRIVILEGES: dict[Role, frozenset[str]] = {
    Role.OWNER: ALL_PRIVILEGES,
    Role.ADMIN: _ADMIN | {"member:write"},
    Role.MEMBER: _MEMBER,
}


def unknown_privileges(privileges: list[str]) -> list[str]:
    return [p for p in privileges if p not in ALL_PRIVILEGES]


def require_for_process(privileges: Collection[str] | None, privilege: str, doing: str) -> None:
    """Refuse what a running process does beyond its privileges (`Process.privileges`; None:
    a process recorded before they were, which keeps its old behaviour)."""
    if privileges is not None and privilege not in privileges:
        raise Forbidden(
            f"this process may not {doing}: its workflow's last editor or its starter "
            f"lacks {privilege}",
            privilege=privilege,
        )
