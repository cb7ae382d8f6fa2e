"""What a process may do on behalf of people.

A process acts for two people: whoever last edited its workflow (they chose what it does) and
whoever started it (they chose to run it now). It holds no more than both: the editor's
privileges when they edited, still held today, intersected with the starter's. A trigger with
nobody behind it (a webhook, a schedule) adds no limit of its own. The result is stored on the
process when it starts, and every credential derived from the process (its execution token)
starts from it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.auth.principal import Principal
from flowql.auth.privileges import ALL_PRIVILEGES, ROLE_PRIVILEGES
from flowql.models import Membership, Role, User, Workflow, WorkspaceRow


def editor_privileges(principal: Principal, workspace_id: uuid.UUID) -> list[str]:
    return sorted(principal.grants.get(workspace_id, frozenset()))


async def record_edit(session: AsyncSession, principal: Principal, row: WorkspaceRow) -> None:
    """`row` (a workflow, or one of its agents or triggers) is about to change: its workflow
    remembers who changed it and what they could do then."""
    held = editor_privileges(principal, row.workspace_id)
    if isinstance(row, Workflow):
        row.last_editor_id = principal.user_id
        row.editor_privileges = held
        session.add(row)
        return
    workflow_id = getattr(row, "workflow_id", None)
    if isinstance(workflow_id, uuid.UUID):
        await session.exec(
            update(Workflow)
            .where(col(Workflow.id) == workflow_id)
            .values(last_editor_id=principal.user_id, editor_privileges=held)
        )


def _roles_statement(workspace_id: uuid.UUID, users: set[uuid.UUID]) -> Any:
    return (
        select(Membership.user_id, Membership.role)
        .join(User, col(User.id) == col(Membership.user_id))
        .where(col(Membership.workspace_id) == workspace_id)
        .where(col(Membership.user_id).in_(users))
        .where(col(User.is_active).is_(True))
    )


def _held(roles: dict[uuid.UUID, Role], user_id: uuid.UUID | None) -> frozenset[str]:
    """A named person's privileges today (none once they left); nobody named: no limit."""
    if user_id is None:
        return ALL_PRIVILEGES
    role = roles.get(user_id)
    return ROLE_PRIVILEGES[role] if role is not None else frozenset()


def _people(workflow: Workflow, starter_id: uuid.UUID | None) -> set[uuid.UUID]:
    return {u for u in (workflow.last_editor_id, starter_id) if u is not None}


def _privileges(
    workflow: Workflow, starter_id: uuid.UUID | None, rows: Iterable[tuple[uuid.UUID, str]]
) -> list[str]:
    roles = {user_id: Role(role) for user_id, role in rows}
    edited = (
        ALL_PRIVILEGES if workflow.editor_privileges is None else set(workflow.editor_privileges)
    )
    editor = edited & _held(roles, workflow.last_editor_id)
    return sorted(editor & _held(roles, starter_id))


async def process_privileges(
    session: AsyncSession, workflow: Workflow, starter_id: uuid.UUID | None
) -> list[str]:
    """The privileges a process of `workflow` started by `starter_id` runs with (one query;
    it does not flush, so a process just added can take the result in its INSERT)."""
    people = _people(workflow, starter_id)
    rows: list[Any] = []
    if people:
        with session.no_autoflush:
            statement = _roles_statement(workflow.workspace_id, people)
            rows = list((await session.exec(statement)).all())
    return _privileges(workflow, starter_id, rows)


def process_privileges_sync(
    session: Session, workflow: Workflow, starter_id: uuid.UUID | None
) -> list[str]:
    """`process_privileges` for the engine's one-hop lookups (a synchronous session)."""
    people = _people(workflow, starter_id)
    rows = session.execute(_roles_statement(workflow.workspace_id, people)).all() if people else []
    return _privileges(workflow, starter_id, [(u, r) for u, r in rows])
