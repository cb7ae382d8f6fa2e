"""Workflow export and import in Huginn's scenario format (what ActiveWorkflow's export follows):
{schema_version, name, description, guid, exported_at, agents: [{type, name, disabled, guid,
options, keep_events_for, propagate_immediately}], links: [{source, receiver}], control_links}.

flowql agent types map to Huginn class names and back (`http_request` <-> `Agents::HttpRequestAgent`).
Secret options are never exported; flowql-only settings travel under each agent's `flowql` key.
Huginn's `schedule`, `propagate_immediately`, `keep_events_for` (ActiveWorkflow's
`keep_messages_for`) and control links travel both ways.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.agents.registry import REGISTRY, secret_fields
from flowql.auth.principal import Principal
from flowql.auth.secrets_box import SecretBox
from flowql.errors import ValidationFailed
from flowql.formats.huginn import flowql_type, huginn_type
from flowql.models import Agent, AgentSource, User, Workflow, WorkflowStatus
from flowql.services.workflows import AgentSpec, create_workflow

SCHEMA_VERSION = 1


async def export_workflow(session: AsyncSession, workflow: Workflow) -> dict[str, Any]:
    agents = list(
        (
            await session.exec(
                select(Agent).where(Agent.workflow_id == workflow.id).order_by(col(Agent.number))
            )
        ).all()
    )
    index = {agent.id: i for i, agent in enumerate(agents)}
    links = (
        await session.exec(select(AgentSource).where(col(AgentSource.source_id).in_(list(index))))
    ).all()
    by_id = {str(agent_id): i for agent_id, i in index.items()}
    control_links = [
        {"controller": index[agent.id], "control_target": by_id[target]}
        for agent in agents
        for target in agent.control_target_ids
        if target in by_id
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "name": workflow.name or "No name provided",
        "description": workflow.description or "No description provided",
        "source_url": None,
        "guid": str(workflow.id),
        "tag_fg_color": None,
        "tag_bg_color": None,
        "icon": None,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "agents": [_agent_json(agent) for agent in agents],
        "links": sorted(
            (
                {"source": index[link.source_id], "receiver": index[link.receiver_id]}
                for link in links
                if link.receiver_id in index
            ),
            key=lambda link: (link["source"], link["receiver"]),
        ),
        "control_links": control_links,
    }


def _agent_json(agent: Agent) -> dict[str, Any]:
    options = {k: v for k, v in agent.options.items() if k not in secret_fields(agent.type)}
    if agent.type == "webhook" and isinstance(options.get("path"), str):
        # Huginn's WebhookAgent requires a `secret`: the last segment of its URL, which is the
        # webhook's (public) path here, never its shared secret. Imported back, it is dropped.
        options["secret"] = options["path"]
    if agent.type == "liquid_output":
        # Its secret (a data_output's secrets too) is never exported, but Huginn and flowql require one: a fresh random one,
        # to be replaced by whoever imports it (the page moves to a new address anyway).
        options["secret"] = secrets.token_urlsafe(16)
    if agent.type == "data_output":
        options["secrets"] = [secrets.token_urlsafe(16)]
    data: dict[str, Any] = {
        "type": huginn_type(agent.type),
        "name": agent.name,
        "disabled": agent.disabled,
        "guid": str(agent.id),
        "options": options,
    }
    if agent.schedule is not None:
        data["schedule"] = agent.schedule
    # Huginn reads `keep_events_for`, ActiveWorkflow `keep_messages_for` (seconds; 0: forever).
    data["keep_events_for"] = data["keep_messages_for"] = agent.keep_messages_for or 0
    data["propagate_immediately"] = agent.propagate_immediately
    data["flowql"] = {"max_retries": agent.max_retries, "timeout_seconds": agent.timeout_seconds}
    return data


def _index(value: Any, count: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("not an index")
    number = int(value)
    if not 0 <= number < count:
        raise ValueError("out of range")
    return number


_PATH = re.compile(r"^[A-Za-z0-9._~/-]+$")


def _huginn_webhook(options: dict[str, Any], name: str) -> dict[str, Any]:
    """Huginn's WebhookAgent is reached at a URL ending in its `secret`: imported, that secret
    is the webhook's path (/hooks/{workflow}/{secret}); its other options are flowql's too."""
    if "path" in options:
        if options.get("secret") == options["path"]:
            # flowql's own export: the `secret` Huginn needs is the path, not a shared secret.
            return {k: v for k, v in options.items() if k != "secret"}
        return options
    mapped = dict(options)
    secret = str(mapped.pop("secret", "") or "")
    if _PATH.match(secret):
        mapped["path"] = secret
    else:
        mapped["path"] = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "webhook"
    return mapped


def parse_export(data: Any) -> tuple[str, str, list[AgentSpec]]:
    """The name, description and agents of an export (Huginn's scenario or ActiveWorkflow's
    workflow format); VALIDATION_ERROR naming what is wrong. Agents of types flowql does not
    run fail the import as a whole, every one of them named by its original type and name."""
    if not isinstance(data, dict):
        raise ValidationFailed.one("definition", "must be a JSON object")
    if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise ValidationFailed.one(
            "definition.schema_version", "only schema_version 1 is supported"
        )
    agents = data.get("agents")
    if not isinstance(agents, list):
        raise ValidationFailed.one("definition.agents", "must be a list")
    specs: list[AgentSpec] = []
    unsupported: dict[str, str] = {}
    problems: dict[str, str] = {}
    for i, agent in enumerate(agents):
        if not isinstance(agent, dict) or not isinstance(agent.get("type"), str):
            problems[f"definition.agents.{i}.type"] = "must be an agent type name"
            continue
        name = str(agent.get("name") or f"Agent {i + 1}")
        type_name = flowql_type(agent["type"])
        if type_name not in REGISTRY:
            unsupported[f"definition.agents.{i}.type"] = (
                f"unsupported agent type {agent['type']} ({name!r})"
            )
        raw_extra = agent.get("flowql")
        extra: dict[str, Any] = raw_extra if isinstance(raw_extra, dict) else {}
        keep = agent.get("keep_events_for", agent.get("keep_messages_for")) or None
        schedule = agent.get("schedule")
        options = agent.get("options")
        if type_name == "webhook" and isinstance(options, dict):
            options = _huginn_webhook(options, name)
        try:
            specs.append(
                AgentSpec(
                    name=name,
                    type=type_name,
                    options=dict(options) if isinstance(options, dict) else {},
                    disabled=bool(agent.get("disabled", False)),
                    keep_messages_for=int(keep) if keep else None,
                    max_retries=int(extra.get("max_retries") or 0),
                    timeout_seconds=extra.get("timeout_seconds"),
                    schedule=str(schedule) if schedule not in (None, "") else None,
                    propagate_immediately=bool(agent.get("propagate_immediately", True)),
                )
            )
        except (TypeError, ValueError):
            problems[f"definition.agents.{i}"] = "keep_events_for and flowql settings are numbers"
    if unsupported:
        names = ", ".join(
            f"{a.get('type')} ({a.get('name')!r})"
            for a in agents
            if isinstance(a, dict)
            and isinstance(a.get("type"), str)
            and flowql_type(a["type"]) not in REGISTRY
        )
        raise ValidationFailed(
            {**unsupported, **problems},
            f"{len(unsupported)} agent(s) of types flowql does not run: {names}",
        )
    if problems:
        raise ValidationFailed(problems)
    for j, link in enumerate(data.get("links") or []):
        try:
            source = specs[_index(link["source"], len(specs))]
            receiver = specs[_index(link["receiver"], len(specs))]
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValidationFailed.one(
                f"definition.links.{j}", "must name two agents by index"
            ) from None
        receiver.sources.append(source.name)
    for j, link in enumerate(data.get("control_links") or []):
        try:
            controller = specs[_index(link["controller"], len(specs))]
            target = specs[_index(link["control_target"], len(specs))]
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValidationFailed.one(
                f"definition.control_links.{j}", "must name a controller and a target by index"
            ) from None
        controller.controls.append(target.name)
    return str(data.get("name") or "Imported workflow"), str(data.get("description") or ""), specs


async def import_workflow(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    workspace_id: uuid.UUID | None,
    data: Any,
    *,
    publish: bool = False,
) -> Workflow:
    """A draft by default, as every new workflow (its triggers and schedules do not fire);
    `publish` makes it live at once, as an import into Huginn is."""
    name, description, specs = parse_export(data)
    await _default_recipients(session, principal, specs)
    workflow = await create_workflow(
        session,
        principal,
        box,
        workspace_id=workspace_id,
        name=name,
        description=description,
        agents=specs,
    )
    if publish:
        workflow.status = WorkflowStatus.PUBLISHED
        workflow.last_deployed_at = workflow.updated_at
        session.add(workflow)
    return workflow


# Huginn's email agents mail the agent's owner; flowql's need recipients: the importing user.
MAILING_TYPES = ("email", "email_digest")


async def _default_recipients(
    session: AsyncSession, principal: Principal, specs: list[AgentSpec]
) -> None:
    wanting = [s for s in specs if s.type in MAILING_TYPES and not s.options.get("recipients")]
    if not wanting or principal.user_id is None:
        return
    user = (await session.exec(select(User).where(User.id == principal.user_id))).first()
    if user is None:
        return
    for spec in wanting:
        spec.options["recipients"] = user.email
