"""Trigger rows: the routing index of a workflow's trigger agents (paths, crons, forms)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.agents.base import Kind, Options
from flowql.agents.registry import get_type
from flowql.models import Agent, Trigger, TriggerType, Workflow, WorkflowStatus, Workspace, utcnow


def fires(workflow: Workflow) -> bool:
    """Only a published workflow's triggers (schedules, /hooks, forms) start processes. A draft
    runs only when someone runs it by hand (executeWorkflow)."""
    return workflow.status == WorkflowStatus.PUBLISHED


def published() -> ColumnElement[bool]:
    """`fires` as a query condition on Workflow."""
    return col(Workflow.status) == WorkflowStatus.PUBLISHED


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
        if existing is not None:
            await session.delete(existing)
        return None
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
