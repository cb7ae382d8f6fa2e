"""Workflows and their agent graphs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.agents.registry import REGISTRY, option_problems, secret_fields, validate_options
from flowql.auth.principal import Principal
from flowql.auth.secrets_box import SecretBox
from flowql.errors import ValidationFailed
from flowql.formats.huginn import schedule_cron
from flowql.models import Agent, AgentSource, AuditAction, Workflow, WorkflowStatus, utcnow
from flowql.services import audit
from flowql.services.common import (
    apply_common_filters,
    check_length,
    get_visible,
    require_name,
    visible,
)
from flowql.services.delegation import editor_privileges
from flowql.services.triggers import sync_trigger


@dataclass
class AgentSpec:
    """An agent as given by a caller; `sources` name other agents of the same workflow."""

    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    disabled: bool = False
    keep_messages_for: int | None = None
    max_retries: int = 0
    timeout_seconds: float | None = None
    # Huginn's: when it checks on its own ("every_1h", "7am", "never"), its propagation flag,
    # and the agents it controls (names of the same workflow; replace_graph only).
    schedule: str | None = None
    propagate_immediately: bool = True
    controls: list[str] = field(default_factory=list)


@dataclass
class WorkflowFilter:
    workspace_id: uuid.UUID | None = None
    status: WorkflowStatus | None = None
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def list_statement(principal: Principal, filters: WorkflowFilter) -> SelectOfScalar[Workflow]:
    stmt = visible(principal, Workflow, "workflow:read", filters.workspace_id)
    if filters.status is not None:
        stmt = stmt.where(col(Workflow.status) == filters.status)
    return apply_common_filters(
        stmt,
        Workflow,
        search=filters.search,
        created_after=filters.created_after,
        created_before=filters.created_before,
    )


async def get_workflow(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    privilege: str = "workflow:read",
) -> Workflow:
    return await get_visible(session, principal, Workflow, ident, privilege, "Workflow")


def _check_workflow_fields(description: str | None, variables: dict[str, Any] | None) -> None:
    check_length(description, "description", 5000)
    if variables is not None and not isinstance(variables, dict):
        raise ValidationFailed.one("variables", "must be an object")


async def create_workflow(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    *,
    workspace_id: uuid.UUID | None,
    name: str,
    description: str = "",
    status: WorkflowStatus = WorkflowStatus.DRAFT,
    variables: dict[str, Any] | None = None,
    agents: list[AgentSpec] | None = None,
) -> Workflow:
    workspace_id = workspace_id or principal.default_workspace("workflow:write")
    principal.require(workspace_id, "workflow:write", "Workspace")
    _check_workflow_fields(description, variables)
    workflow = Workflow(
        workspace_id=workspace_id,
        name=require_name(name),
        description=description or "",
        status=status,
        variables=variables or {},
        manager_id=principal.user_id,
        updated_at=utcnow(),
        last_editor_id=principal.user_id,
        editor_privileges=editor_privileges(principal, workspace_id),
    )
    session.add(workflow)
    await session.flush()
    if agents:
        await replace_graph(session, box, workflow, agents)
    audit.record(session, principal, AuditAction.CREATE, workflow, name=workflow.name)
    return workflow


async def update_workflow(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    ident: uuid.UUID | int,
    *,
    name: str | None = None,
    description: str | None = None,
    status: WorkflowStatus | None = None,
    variables: dict[str, Any] | None = None,
    agents: list[AgentSpec] | None = None,
) -> Workflow:
    workflow = await get_workflow(session, principal, ident, "workflow:write")
    _check_workflow_fields(description, variables)
    if name is not None:
        workflow.name = require_name(name)
    if description is not None:
        workflow.description = description
    if status is not None:
        if status == WorkflowStatus.PUBLISHED and workflow.status != status:
            workflow.last_deployed_at = utcnow()
        workflow.status = status
    if variables is not None:
        workflow.variables = variables
    workflow.updated_at = utcnow()
    session.add(workflow)
    if agents is not None:
        await replace_graph(session, box, workflow, agents)
    await session.flush()
    fields = audit.given(name=name, description=description, status=status, variables=variables, agents=agents)  # fmt: skip
    audit.record(session, principal, AuditAction.UPDATE, workflow, fields=fields)
    return workflow


async def delete_workflow(
    session: AsyncSession, principal: Principal, ident: uuid.UUID | int
) -> Workflow:
    workflow = await get_workflow(session, principal, ident, "workflow:write")
    await session.delete(workflow)
    await session.flush()
    audit.record(session, principal, AuditAction.DELETE, workflow, name=workflow.name)
    return workflow


# -- agents ------------------------------------------------------------------------------------


async def get_agent(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    privilege: str = "workflow:read",
) -> Agent:
    return await get_visible(session, principal, Agent, ident, privilege, "Agent")


async def _agents_of(session: AsyncSession, workflow_id: uuid.UUID) -> list[Agent]:
    stmt = select(Agent).where(Agent.workflow_id == workflow_id).order_by(col(Agent.number))
    return list((await session.exec(stmt)).all())


def _check_agent_numbers(prefix: str, spec: AgentSpec) -> None:
    if spec.keep_messages_for is not None and spec.keep_messages_for < 0:
        raise ValidationFailed.one(f"{prefix}keepMessagesFor", "must not be negative")
    if spec.max_retries < 0 or spec.max_retries > 20:
        raise ValidationFailed.one(f"{prefix}maxRetries", "must be between 0 and 20")
    if spec.timeout_seconds is not None and not 0 < spec.timeout_seconds <= 3600:
        raise ValidationFailed.one(f"{prefix}timeoutSeconds", "must be in (0, 3600]")


REDACTED = "********"
ENCRYPTED_PREFIX = "enc:"
ENCRYPTED_JSON_PREFIX = "encjson:"


def seal_secret_options(
    box: SecretBox, type_name: str, options: dict[str, Any], previous: dict[str, Any]
) -> dict[str, Any]:
    """Secret options (a webhook's shared secret) are stored encrypted; the placeholder keeps the old one."""
    sealed = dict(options)
    for name in secret_fields(type_name):
        value = sealed.get(name)
        if value is None:
            continue
        if value == REDACTED:
            if previous.get(name) is None:
                raise ValidationFailed.one(f"options.{name}", "no stored secret to keep")
            sealed[name] = previous[name]
        elif isinstance(value, str):
            if not value.startswith((ENCRYPTED_PREFIX, ENCRYPTED_JSON_PREFIX)):
                sealed[name] = ENCRYPTED_PREFIX + box.encrypt(value)
        else:  # a list or object (basic_auth ["user", "password"]): sealed as JSON
            sealed[name] = ENCRYPTED_JSON_PREFIX + box.encrypt_json(value)
    return sealed


def unseal_secret_options(
    box: SecretBox, type_name: str, options: dict[str, Any]
) -> dict[str, Any]:
    """The agent's secret options decrypted, for a running step only (ValueError when a key
    cannot decrypt one); values stored before sealing are returned as they are."""
    opened: dict[str, Any] = {}
    for name in secret_fields(type_name):
        value = options.get(name)
        if isinstance(value, str) and value.startswith(ENCRYPTED_JSON_PREFIX):
            opened[name] = box.decrypt_json(value[len(ENCRYPTED_JSON_PREFIX) :])
        elif isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX):
            opened[name] = box.decrypt(value[len(ENCRYPTED_PREFIX) :])
        elif value is not None:
            opened[name] = value
    return opened


def unseal_secret_option(box: SecretBox, options: dict[str, Any], name: str) -> str | None:
    """The plain value of a secret option `seal_secret_options` stored (None when unset)."""
    value = options.get(name)
    if not value:
        return None
    text = str(value)
    if text.startswith(ENCRYPTED_PREFIX):
        return box.decrypt(text[len(ENCRYPTED_PREFIX) :])
    return text


def redact_options(type_name: str, options: dict[str, Any]) -> dict[str, Any]:
    shown = dict(options)
    for name in secret_fields(type_name):
        if shown.get(name) is not None:
            shown[name] = REDACTED
    return shown


def _apply_spec(agent: Agent, spec: AgentSpec, prefix: str, box: SecretBox) -> Any:
    agent.name = require_name(spec.name, f"{prefix}name")
    try:
        options = validate_options(spec.type, spec.options, f"{prefix}options")
    except ValidationFailed as exc:
        if "type" in exc.fields:
            raise ValidationFailed.one(f"{prefix}type", exc.fields["type"]) from None
        raise
    _check_agent_numbers(prefix, spec)
    try:
        schedule_cron(spec.schedule)
    except ValueError as exc:
        raise ValidationFailed.one(f"{prefix}schedule", str(exc)) from None
    agent.schedule = spec.schedule or None
    agent.propagate_immediately = spec.propagate_immediately
    agent.options = seal_secret_options(
        box, spec.type, spec.options, agent.options if agent.type == spec.type else {}
    )
    agent.type = spec.type
    agent.disabled = spec.disabled
    agent.keep_messages_for = spec.keep_messages_for
    agent.max_retries = spec.max_retries
    agent.timeout_seconds = spec.timeout_seconds
    agent.updated_at = utcnow()
    return options


async def _set_sources(
    session: AsyncSession, agent: Agent, source_ids: list[uuid.UUID], field_name: str
) -> None:
    if agent.id in source_ids:
        raise ValidationFailed.one(field_name, "an agent cannot be its own source")
    if source_ids:
        found = (await session.exec(select(Agent).where(col(Agent.id).in_(source_ids)))).all()
        same_workflow = {a.id for a in found if a.workflow_id == agent.workflow_id}
        missing = [str(s) for s in source_ids if s not in same_workflow]
        if missing:
            raise ValidationFailed.one(
                field_name, f"not agents of the same workflow: {', '.join(missing)}"
            )
    await session.exec(delete(AgentSource).where(col(AgentSource.receiver_id) == agent.id))
    for source_id in dict.fromkeys(source_ids):
        session.add(AgentSource(receiver_id=agent.id, source_id=source_id))


async def create_agent(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    workflow_ident: uuid.UUID | int,
    spec: AgentSpec,
    source_ids: list[uuid.UUID] | None = None,
) -> Agent:
    workflow = await get_workflow(session, principal, workflow_ident, "workflow:write")
    await _check_unique_name(session, workflow.id, spec.name, None)
    agent = Agent(workspace_id=workflow.workspace_id, workflow_id=workflow.id, name="", type="")
    options = _apply_spec(agent, spec, "", box)
    session.add(agent)
    await session.flush()
    await _set_sources(session, agent, source_ids or [], "sourceIds")
    await sync_trigger(session, agent, options)
    workflow.updated_at = utcnow()
    session.add(workflow)
    await session.flush()
    audit.record(session, principal, AuditAction.CREATE, agent, name=agent.name, type=agent.type)
    return agent


async def update_agent(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    ident: uuid.UUID | int,
    *,
    name: str | None = None,
    type: str | None = None,
    options: dict[str, Any] | None = None,
    disabled: bool | None = None,
    keep_messages_for: int | None = None,
    max_retries: int | None = None,
    timeout_seconds: float | None = None,
    source_ids: list[uuid.UUID] | None = None,
    schedule: str | None = None,
    propagate_immediately: bool | None = None,
) -> Agent:
    agent = await get_agent(session, principal, ident, "workflow:write")
    spec = AgentSpec(
        name=agent.name if name is None else name,
        type=agent.type if type is None else type,
        options=agent.options if options is None else options,
        disabled=agent.disabled if disabled is None else disabled,
        keep_messages_for=agent.keep_messages_for
        if keep_messages_for is None
        else keep_messages_for,
        max_retries=agent.max_retries if max_retries is None else max_retries,
        timeout_seconds=agent.timeout_seconds if timeout_seconds is None else timeout_seconds,
        schedule=agent.schedule
        if schedule is None
        else (None if schedule == "never" else schedule),
        propagate_immediately=agent.propagate_immediately
        if propagate_immediately is None
        else propagate_immediately,
    )
    if name is not None:
        await _check_unique_name(session, agent.workflow_id, name, agent.id)
    parsed = _apply_spec(agent, spec, "", box)
    session.add(agent)
    if source_ids is not None:
        await _set_sources(session, agent, source_ids, "sourceIds")
    await sync_trigger(session, agent, parsed)
    await session.flush()
    fields = audit.given(name=name, type=type, options=options, disabled=disabled, keep_messages_for=keep_messages_for, max_retries=max_retries, timeout_seconds=timeout_seconds, source_ids=source_ids, schedule=schedule, propagate_immediately=propagate_immediately)  # fmt: skip
    audit.record(session, principal, AuditAction.UPDATE, agent, fields=fields)
    return agent


async def delete_agent(
    session: AsyncSession, principal: Principal, ident: uuid.UUID | int
) -> Agent:
    agent = await get_agent(session, principal, ident, "workflow:write")
    await session.delete(agent)
    await session.flush()
    audit.record(session, principal, AuditAction.DELETE, agent, name=agent.name)
    return agent


async def _check_unique_name(
    session: AsyncSession, workflow_id: uuid.UUID, name: str, agent_id: uuid.UUID | None
) -> None:
    stmt = select(Agent).where(Agent.workflow_id == workflow_id).where(Agent.name == name.strip())
    clash = (await session.exec(stmt)).first()
    if clash is not None and clash.id != agent_id:
        raise ValidationFailed.one("name", "an agent with this name exists in the workflow")


def graph_problems(specs: list[AgentSpec]) -> dict[str, str]:
    """Everything wrong with a workflow's agents, by path (`agents.2.options.url`), at once."""
    problems: dict[str, str] = {}
    names = [(s.name or "").strip() for s in specs]
    duplicates = {n for n in names if n and names.count(n) > 1}
    if duplicates:
        problems["agents"] = f"duplicate agent names: {', '.join(sorted(duplicates))}"
    for index, spec in enumerate(specs):
        prefix = f"agents.{index}."
        try:
            require_name(spec.name, f"{prefix}name")
        except ValidationFailed as exc:
            problems.update(exc.fields)
        try:
            _check_agent_numbers(prefix, spec)
        except ValidationFailed as exc:
            problems.update(exc.fields)
        if spec.type not in REGISTRY:
            problems[f"{prefix}type"] = (
                f"unknown agent type {spec.type!r}; known: {', '.join(REGISTRY)}"
            )
        else:
            problems.update(option_problems(spec.type, spec.options, f"{prefix}options"))
        unknown = [s for s in spec.sources if s.strip() not in names]
        if unknown:
            problems[f"{prefix}sources"] = f"unknown agents: {', '.join(unknown)}"
    return problems


async def replace_graph(
    session: AsyncSession, box: SecretBox, workflow: Workflow, specs: list[AgentSpec]
) -> None:
    """Make the workflow's agents exactly `specs`, matched by name: update, create, delete.
    Every problem of every agent is reported at once (VALIDATION_ERROR, one path each)."""
    problems = graph_problems(specs)
    if problems:
        raise ValidationFailed(problems)
    current = {a.name: a for a in await _agents_of(session, workflow.id)}
    by_name: dict[str, Agent] = {}
    parsed: dict[str, Any] = {}
    for index, spec in enumerate(specs):
        agent = current.pop(spec.name.strip(), None) or Agent(
            workspace_id=workflow.workspace_id, workflow_id=workflow.id, name="", type=""
        )
        parsed[spec.name.strip()] = _apply_spec(agent, spec, f"agents.{index}.", box)
        session.add(agent)
        by_name[agent.name] = agent
    for stale in current.values():
        await session.delete(stale)
    await session.flush()
    for index, spec in enumerate(specs):
        unknown = [s for s in spec.sources if s not in by_name]
        if unknown:
            raise ValidationFailed.one(
                f"agents.{index}.sources", f"unknown agents: {', '.join(unknown)}"
            )
        agent = by_name[spec.name.strip()]
        await _set_sources(
            session, agent, [by_name[s].id for s in spec.sources], f"agents.{index}.sources"
        )
        unknown = [s for s in spec.controls if s not in by_name]
        if unknown:
            raise ValidationFailed.one(
                f"agents.{index}.controls", f"unknown agents: {', '.join(unknown)}"
            )
        agent.control_target_ids = [str(by_name[s].id) for s in dict.fromkeys(spec.controls)]
        await sync_trigger(session, agent, parsed[agent.name])
    await session.flush()
