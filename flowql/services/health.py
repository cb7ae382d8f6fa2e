"""What the console's Health and workflow views read: workers, queue depth, scheduled triggers,
failed webhook deliveries, and a workflow's ended processes per hour.

Health is an operator's view of one workspace: it asks `audit:read` there (owners and admins),
the privilege that already guards the workspace's operational record. Workers are this flowql
instance's (ids and heartbeats only); everything else is the workspace's own rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.auth.principal import Principal
from flowql.errors import NotFound, ValidationFailed
from flowql.models import (
    DeliveryStatus,
    Process,
    ProcessStatus,
    Trigger,
    TriggerType,
    WebhookDelivery,
    Workflow,
    utcnow,
)
from flowql.services.common import confinement
from flowql.settings import Dispatcher, Settings

HEALTH_PRIVILEGE = "audit:read"
MAX_ROWS = 50
MAX_HOURS = 24 * 7


@dataclass
class WorkerInfo:
    id: str
    name: str
    last_heartbeat_at: datetime | None


@dataclass
class ScheduledTrigger:
    trigger: Trigger
    workflow_name: str


@dataclass
class Health:
    checked_at: datetime
    dispatcher: str
    queue_depth: int
    running: int
    waiting: int
    workers: list[WorkerInfo] = field(default_factory=list)
    scheduled: list[ScheduledTrigger] = field(default_factory=list)
    failed_deliveries: list[WebhookDelivery] = field(default_factory=list)


@dataclass
class HourCount:
    hour: datetime
    completed: int
    failed: int


def require_health(principal: Principal, workspace_id: uuid.UUID) -> None:
    """NOT_FOUND for a workspace the caller is not in; FORBIDDEN without `audit:read`."""
    principal.ensure_authenticated()
    principal.require(workspace_id, HEALTH_PRIVILEGE, "Workspace")


async def _workers(
    session: AsyncSession, settings: Settings, inline_running: bool
) -> list[WorkerInfo]:
    if settings.dispatcher is Dispatcher.PROCRASTINATE:
        rows = await session.execute(
            text("SELECT id, last_heartbeat FROM procrastinate_workers ORDER BY id")
        )
        return [WorkerInfo(str(r[0]), f"procrastinate worker {r[0]}", r[1]) for r in rows.all()]
    if inline_running:
        return [WorkerInfo("inline", "inline dispatcher (in this server)", utcnow())]
    return []


async def _count(session: AsyncSession, workspace_id: uuid.UUID, status: ProcessStatus) -> int:
    stmt = select(func.count()).where(
        col(Process.workspace_id) == workspace_id, col(Process.status) == status
    )
    return int((await session.exec(stmt)).one())


async def health(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    workspace_id: uuid.UUID,
    inline_running: bool,
) -> Health:
    require_health(principal, workspace_id)
    scheduled = await session.exec(
        select(Trigger, Workflow.name)
        .join(Workflow, col(Workflow.id) == col(Trigger.workflow_id))
        .where(
            col(Trigger.workspace_id) == workspace_id,
            col(Trigger.type) == TriggerType.SCHEDULE,
            col(Trigger.active).is_(True),
            col(Trigger.archived_at).is_(None),
        )
        .order_by(col(Trigger.next_run_at), col(Trigger.number))
        .limit(MAX_ROWS)
    )
    deliveries = await session.exec(
        select(WebhookDelivery)
        .where(
            col(WebhookDelivery.workspace_id) == workspace_id,
            col(WebhookDelivery.status).in_([DeliveryStatus.FAILED, DeliveryStatus.DEAD]),
        )
        .order_by(col(WebhookDelivery.number).desc())
        .limit(MAX_ROWS)
    )
    return Health(
        checked_at=utcnow(),
        dispatcher=settings.dispatcher.value,
        queue_depth=await _count(session, workspace_id, ProcessStatus.PENDING),
        running=await _count(session, workspace_id, ProcessStatus.RUNNING),
        waiting=await _count(session, workspace_id, ProcessStatus.WAITING),
        workers=await _workers(session, settings, inline_running),
        scheduled=[ScheduledTrigger(t, name) for t, name in scheduled.all()],
        failed_deliveries=list(deliveries.all()),
    )


def _hour(value: datetime) -> datetime:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def workflow_activity(
    session: AsyncSession, principal: Principal, workflow_id: uuid.UUID, hours: int
) -> list[HourCount]:
    """Processes of the workflow that ended (COMPLETED, FAILED) in each of the last `hours`
    hours, oldest first, empty hours included (UTC, whole hours)."""
    if not 1 <= hours <= MAX_HOURS:
        raise ValidationFailed({"hours": f"must be between 1 and {MAX_HOURS}"})
    principal.ensure_authenticated()
    workflow = (
        await session.exec(
            select(Workflow).where(
                col(Workflow.id) == workflow_id, confinement(principal, Workflow)
            )
        )
    ).first()
    if workflow is None or workflow.workspace_id not in principal.grants:
        raise NotFound("Workflow")
    principal.require(workflow.workspace_id, "process:read", "Workflow")
    last = _hour(utcnow())
    first = last - timedelta(hours=hours - 1)
    ended = await session.exec(
        select(Process.completed_at, Process.status).where(
            col(Process.workflow_id) == workflow_id,
            col(Process.status).in_([ProcessStatus.COMPLETED, ProcessStatus.FAILED]),
            col(Process.completed_at) >= first,
            confinement(principal, Process),
        )
    )
    buckets = {
        first + timedelta(hours=i): HourCount(first + timedelta(hours=i), 0, 0)
        for i in range(hours)
    }
    for completed_at, status in ended.all():
        bucket = buckets.get(_hour(completed_at)) if completed_at else None
        if bucket is None:
            continue
        if status == ProcessStatus.COMPLETED:
            bucket.completed += 1
        else:
            bucket.failed += 1
    return list(buckets.values())
