"""Workflow export and import in Huginn's scenario format (what ActiveWorkflow's export follows):
{schema_version, name, description, guid, exported_at, agents: [{type, name, disabled, guid,
options, keep_events_for, propagate_immediately}], links: [{source, receiver}], control_links}.

flowql agent types map to Huginn class names and back (`http_request` <-> `Agents::HttpRequestAgent`).
Secret options are never exported; flowql-only settings travel under each agent's `flowql` key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.agents.registry import secret_fields
from flowql.auth.principal import Principal
from flowql.auth.secrets_box import SecretBox
from flowql.errors import ValidationFailed
from flowql.formats.huginn import flowql_type, huginn_type
from flowql.models import Agent, AgentSource, Workflow
from flowql.services.workflows import AgentSpec, create_workflow

SCHEMA_VERSION = 1


async def export_workflow(session: AsyncSession, workflow: Workflow) -> dict[str, Any]:
    agents = list((await session.exec(select(Agent).where(Agent.workflow_id == workflow.id))).all())
    agents.sort(key=lambda a: str(a.id))
    index = {agent.id: i for i, agent in enumerate(agents)}
    links = (
        await session.exec(select(AgentSource).where(col(AgentSource.source_id).in_(list(index))))
    ).all()
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
        "control_links": [],
    }


def _agent_json(agent: Agent) -> dict[str, Any]:
    options = {k: v for k, v in agent.options.items() if k not in secret_fields(agent.type)}
    return {
        "type": huginn_type(agent.type),
        "name": agent.name,
        "disabled": agent.disabled,
        "guid": str(agent.id),
        "options": options,
        "keep_events_for": agent.keep_messages_for or 0,
        "propagate_immediately": True,
        "flowql": {"max_retries": agent.max_retries, "timeout_seconds": agent.timeout_seconds},
    }


def parse_export(data: Any) -> tuple[str, str, list[AgentSpec]]:
    """The name, description and agents of an export; VALIDATION_ERROR naming what is wrong."""
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
    for i, agent in enumerate(agents):
        if not isinstance(agent, dict) or not isinstance(agent.get("type"), str):
            raise ValidationFailed.one(f"definition.agents.{i}.type", "must be an agent type name")
        raw_extra = agent.get("flowql")
        extra: dict[str, Any] = raw_extra if isinstance(raw_extra, dict) else {}
        keep = agent.get("keep_events_for") or None
        specs.append(
            AgentSpec(
                name=str(agent.get("name") or f"Agent {i + 1}"),
                type=flowql_type(agent["type"]),
                options=dict(agent.get("options") or {}),
                disabled=bool(agent.get("disabled", False)),
                keep_messages_for=int(keep) if keep else None,
                max_retries=int(extra.get("max_retries") or 0),
                timeout_seconds=extra.get("timeout_seconds"),
            )
        )
    for j, link in enumerate(data.get("links") or []):
        try:
            source, receiver = specs[int(link["source"])], specs[int(link["receiver"])]
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValidationFailed.one(
                f"definition.links.{j}", "must name two agents by index"
            ) from None
        receiver.sources.append(source.name)
    if data.get("control_links"):
        raise ValidationFailed.one(
            "definition.control_links", "control links are not supported by flowql"
        )
    return str(data.get("name") or "Imported workflow"), str(data.get("description") or ""), specs


async def import_workflow(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    workspace_id: uuid.UUID | None,
    data: Any,
) -> Workflow:
    name, description, specs = parse_export(data)
    return await create_workflow(
        session,
        principal,
        box,
        workspace_id=workspace_id,
        name=name,
        description=description,
        agents=specs,
    )
