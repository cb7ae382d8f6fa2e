"""Who is calling, and what they may do in which workspace."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flowql.errors import Forbidden, NotFound, Unauthorized, ValidationFailed


class PrincipalKind(StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"
    API_KEY = "api_key"
    EXECUTION = "execution"
    SYSTEM = "system"


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    # workspace id -> privileges held there. A workspace not in here does not exist for the caller.
    grants: dict[uuid.UUID, frozenset[str]] = field(default_factory=dict)
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    process_id: uuid.UUID | None = None
    # An execution token sees its own process and workflow only (services/common.py).
    workflow_id: uuid.UUID | None = None
    # LetsFlow-style process scopes of an API key: [{"scenario", "actors", "actions"}].
    process_scopes: tuple[dict[str, Any], ...] = ()
    roles: dict[uuid.UUID, str] = field(default_factory=dict)
    # The plan that sets the caller's rate limits (the best among its workspaces).
    plan: str = "free"

    @property
    def is_authenticated(self) -> bool:
        return self.kind is not PrincipalKind.ANONYMOUS

    @property
    def is_scope_limited(self) -> bool:
        """An API key with LetsFlow process scopes: it sees only its scenarios' processes."""
        return self.kind is PrincipalKind.API_KEY and bool(self.process_scopes)

    @property
    def workspace_ids(self) -> list[uuid.UUID]:
        return list(self.grants)

    def ensure_authenticated(self) -> None:
        if not self.is_authenticated:
            raise Unauthorized("authentication required")

    def can(self, workspace_id: uuid.UUID, privilege: str) -> bool:
        return privilege in self.grants.get(workspace_id, frozenset())

    def workspaces_with(self, privilege: str) -> list[uuid.UUID]:
        self.ensure_authenticated()
        return [ws for ws, privs in self.grants.items() if privilege in privs]

    def require(self, workspace_id: uuid.UUID, privilege: str, kind: str = "Object") -> None:
        """Unknown workspace: NOT_FOUND (nothing leaks); lacking the privilege: FORBIDDEN."""
        self.ensure_authenticated()
        if workspace_id not in self.grants:
            raise NotFound(kind)
        if privilege not in self.grants[workspace_id]:
            raise Forbidden(f"missing privilege {privilege}", privilege=privilege)

    def default_workspace(self, privilege: str) -> uuid.UUID:
        """The workspace a create without an explicit workspace goes to: the only one allowed."""
        allowed = self.workspaces_with(privilege)
        if len(allowed) == 1:
            return allowed[0]
        if not allowed:
            raise Forbidden(f"missing privilege {privilege}", privilege=privilege)
        raise ValidationFailed.one("workspaceId", "required: you belong to several workspaces")


ANONYMOUS = Principal(kind=PrincipalKind.ANONYMOUS)
