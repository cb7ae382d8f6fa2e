"""Trigger rows: the routing index of a workflow's trigger agents (paths, crons, forms)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.agents.base import Kind, Options
from flowql.agents.registry import get_type
from flowql.formats.huginn import schedule_cron
from flowql.models import Agent, Trigger, TriggerType, Workflow, WorkflowStatus, Workspace, utcnow


def fires(workflow: Workflow) -> bool:
    """Only a published workflow's triggers (schedules, /hooks, forms) start processes. A draft
    runs only when someone runs it by hand (executeWorkflow)."""
    return workflow.status == WorkflowStatus.PUBLISHED


def published() -> ColumnElement[bool]:
    """`fires` as a query condition on Workflow."""
    return col(Workflow.status) == WorkflowStatus.PUBLISHED


class TriggerMode(StrEnum):
    """How an HTTP trigger answers its caller."""

    # webhook: 202 at once, with the process id; the workflow runs on its own.
    ANSWERS_AT_ONCE = "ANSWERS_AT_ONCE"
    # http: the request is held open until a `respond` agent answers (or the timeout).
    WAITS_FOR_RESPOND = "WAITS_FOR_RESPOND"


def hook_url(base_url: str, workflow_id: uuid.UUID, path: str) -> str:
    return f"{base_url}/hooks/{workflow_id}/{quote(path.strip('/'), safe='/._~-')}"


def form_url(base_url: str, form_id: uuid.UUID | str) -> str:
    return f"{base_url}/forms/{form_id}"


def trigger_url(
    base_url: str, type: TriggerType, workflow_id: uuid.UUID, path: str | None
) -> str | None:
    """The full address that fires a trigger: its hook, or its form's public page."""
    if not path:
        return None
    if type in (TriggerType.WEBHOOK, TriggerType.HTTP):
        return hook_url(base_url, workflow_id, path)
    if type is TriggerType.FORM:
        return form_url(base_url, path)
    return None


def trigger_mode(type: TriggerType) -> TriggerMode | None:
    if type is TriggerType.WEBHOOK:
        return TriggerMode.ANSWERS_AT_ONCE
    if type is TriggerType.HTTP:
        return TriggerMode.WAITS_FOR_RESPOND
    return None


def next_fire_time(cron: str, timezone: str, after: datetime) -> datetime:
    """The first due time strictly after `after`, computed in the workspace's timezone."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    # A sixth field is seconds, first (agents.core.ScheduleOptions validates the same way).
    nxt: datetime = croniter(cron, after.astimezone(zone), second_at_beginning=True).get_next(
        datetime
    )
    return nxt


def _route(agent: Agent, options: Options) -> str | None:
    if agent.type == TriggerType.SCHEDULE:
        return str(getattr(options, "cron", "")) or None
    if agent.type == TriggerType.FORM:
        form_id = getattr(options, "form_id", None)
        return str(form_id) if form_id else None
    path = getattr(options, "path", None)
    return str(path).strip("/") if path else None


async def sync_trigger(session: AsyncSession, agent: Agent, options: Options) -> Trigger | None:
    """Create, update or remove the Trigger row that goes with a (trigger-type) agent."""
    existing = (await session.exec(select(Trigger).where(Trigger.agent_id == agent.id))).first()
    if get_type(agent.type).kind is not Kind.TRIGGER:
        # A Huginn-style schedule: the agent checks on its own (a process entering at it).
        cron = schedule_cron(agent.schedule)
        if cron is None:
            if existing is not None:
                await session.delete(existing)
            return None
        trigger = existing or Trigger(
            workspace_id=agent.workspace_id,
            workflow_id=agent.workflow_id,
            agent_id=agent.id,
            type=TriggerType.SCHEDULE,
        )
        trigger.type, trigger.name, trigger.path = TriggerType.SCHEDULE, agent.name, cron
        trigger.active = not agent.disabled
        trigger.settings = {"schedule": agent.schedule}
        workspace = (
            await session.exec(select(Workspace).where(Workspace.id == agent.workspace_id))
        ).one()
        trigger.next_run_at = next_fire_time(cron, workspace.cron_timezone, utcnow())
        session.add(trigger)
        return trigger
    trigger = existing or Trigger(
        workspace_id=agent.workspace_id,
        workflow_id=agent.workflow_id,
        agent_id=agent.id,
        type=TriggerType(agent.type),
    )
    trigger.type = TriggerType(agent.type)
    trigger.name = agent.name
    trigger.active = not agent.disabled
    trigger.path = _route(agent, options)
    trigger.outputs = list(getattr(options, "outputs", []) or [])
    trigger.settings = options.model_dump(exclude={"secret", "hmac_secret"})
    if trigger.type == TriggerType.SCHEDULE and trigger.path:
        workspace = (
            await session.exec(select(Workspace).where(Workspace.id == agent.workspace_id))
        ).one()
        trigger.next_run_at = next_fire_time(trigger.path, workspace.cron_timezone, utcnow())
    session.add(trigger)
    return trigger
