"""Scenario definitions: stored immutably, identified by the hash of their normalised JSON."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal
from flowql.errors import ValidationFailed
from flowql.models import AuditAction, Scenario
from flowql.services import audit
from flowql.services.common import apply_common_filters, escape_like, get_visible, visible
from flowql.services.scenarios.expressions import canonical_json
from flowql.services.scenarios.loader import LoadError, dump_yaml, parse_yaml
from flowql.services.scenarios.normalize import normalize
from flowql.services.scenarios.validate import check


@dataclass
class ScenarioFilter:
    workspace_id: uuid.UUID | None = None
    name: str | None = None
    search: str | None = None
    disabled: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def scenario_id(workspace_id: uuid.UUID, normalized: dict[str, Any]) -> uuid.UUID:
    """sha256 of the workspace and the canonical JSON of the normalised scenario, as a UUID
    (version 8, RFC 9562): the same definition stored twice in a workspace has one id."""
    digest = bytearray(
        hashlib.sha256(f"{workspace_id}\n{canonical_json(normalized)}".encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x80
    digest[8] = (digest[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(digest))


def parse_definition(definition: Any | None, yaml_text: str | None) -> tuple[Any, str]:
    """Exactly one of `definition` (JSON) and `yaml`; returns the data and its field name."""
    if (definition is None) == (yaml_text is None):
        raise ValidationFailed(
            {"definition": "give exactly one of definition (JSON) and yaml"},
            "give exactly one of definition and yaml",
        )
    if yaml_text is not None:
        try:
            data = parse_yaml(yaml_text)
            canonical_json(data)  # !!binary, !!set and !!timestamp construct values JSON lacks
        except LoadError as exc:
            raise ValidationFailed.one("yaml", str(exc)) from None
        except TypeError:
            raise ValidationFailed.one("yaml", "only JSON values: no binary, set or date") from None
        return data, "yaml"
    return definition, "definition"


async def store_scenario(
    session: AsyncSession,
    principal: Principal,
    *,
    workspace_id: uuid.UUID | None = None,
    definition: Any | None = None,
    yaml_text: str | None = None,
) -> Scenario:
    """Validate and store a scenario; storing the same definition again returns the same row."""
    workspace_id = workspace_id or principal.default_workspace("scenario:write")
    principal.require(workspace_id, "scenario:write", "Workspace")
    data, field = parse_definition(definition, yaml_text)
    normalized = check(data, prefix=field).scenario
    for key, limit in (("name", 200), ("title", 500), ("description", 10000)):
        if len(str(normalized.get(key) or "")) > limit:
            raise ValidationFailed.one(f"{field}.{key}", f"must be at most {limit} characters")
    ident = scenario_id(workspace_id, normalized)
    existing = await _by_id(session, ident)
    if existing is not None:
        return existing
    row = Scenario(
        id=ident,
        workspace_id=workspace_id,
        name=normalized.get("name") or "",
        title=normalized.get("title") or "",
        description=normalized.get("description") or "",
        definition=normalized,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        # Stored concurrently by someone else: the same definition, so the same row.
        stored = await _by_id(session, ident)
        if stored is None:
            raise
        return stored
    audit.record(session, principal, AuditAction.CREATE, row, name=row.name)
    return row


async def _by_id(session: AsyncSession, ident: uuid.UUID) -> Scenario | None:
    return (await session.exec(select(Scenario).where(Scenario.id == ident))).first()


async def get_scenario(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    privilege: str = "scenario:read",
) -> Scenario:
    return await get_visible(session, principal, Scenario, ident, privilege, "Scenario")


async def disable_scenario(
    session: AsyncSession, principal: Principal, ident: uuid.UUID | int
) -> Scenario:
    """Stops new processes of the scenario; running ones go on."""
    scenario = await get_scenario(session, principal, ident, "scenario:write")
    if not scenario.disabled:
        scenario.disabled = True
        session.add(scenario)
        await session.flush()
        audit.record(session, principal, AuditAction.UPDATE, scenario, fields=["disabled"])
    return scenario


def list_statement(principal: Principal, filters: ScenarioFilter) -> SelectOfScalar[Scenario]:
    stmt = visible(principal, Scenario, "scenario:read", filters.workspace_id)
    if filters.name is not None:
        stmt = stmt.where(col(Scenario.name) == filters.name)
    if filters.disabled is not None:
        stmt = stmt.where(col(Scenario.disabled) == filters.disabled)
    if filters.search:
        pattern = f"%{escape_like(filters.search)}%"
        stmt = stmt.where(
            or_(
                col(Scenario.name).ilike(pattern, escape="\\"),
                col(Scenario.title).ilike(pattern, escape="\\"),
            )
        )
    return apply_common_filters(
        stmt, Scenario, created_after=filters.created_after, created_before=filters.created_before
    )


def scenario_yaml(definition: dict[str, Any]) -> str:
    """A stored (normalised) definition as YAML; storing it again yields the same id."""
    return dump_yaml(definition)


def scenario_notices(definition: dict[str, Any]) -> dict[str, str]:
    """What flowql keeps but does not act on (sub-schema names, prediction stubs), by path."""
    return normalize(definition).problems.notices
