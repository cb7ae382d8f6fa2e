"""Time-driven work: due schedule triggers, parked processes to wake, expired messages.

Every claim is a conditional UPDATE, so several servers or workers can run this loop at once and
each due time still fires exactly once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlmodel import col, delete, select, update

from flowql.models import (
    Message,
    Process,
    ProcessStatus,
    Trigger,
    TriggerType,
    Workflow,
    Workspace,
    utcnow,
)
from flowql.services.processes import StartRequest, start_process
from flowql.services.runtime import Runtime
from flowql.services.triggers import fires, next_fire_time
from flowql.services.uow import unit_of_work

logger = logging.getLogger("flowql.scheduler")


async def fire_due_schedules(runtime: Runtime, now: datetime | None = None) -> int:
    """Fire each due schedule once: the latest missed time only, never twice for the same time."""
    now = now or utcnow()
    async with runtime.db.read() as session:
        due = (
            await session.exec(
                select(Trigger)
                .where(Trigger.type == TriggerType.SCHEDULE)
                .where(col(Trigger.active).is_(True))
                .where(col(Trigger.next_run_at) <= now)
            )
        ).all()
    fired = 0
    for trigger in due:
        fired += await _fire(runtime, trigger.id, now)
    return fired


async def _fire(runtime: Runtime, trigger_id: uuid.UUID, now: datetime) -> int:
    async with unit_of_work(runtime) as uow:
        session = uow.session
        trigger = (await session.exec(select(Trigger).where(Trigger.id == trigger_id))).first()
        if (
            trigger is None
            or trigger.next_run_at is None
            or trigger.next_run_at > now
            or not trigger.path
        ):
            return 0
        workspace = (
            await session.exec(select(Workspace).where(Workspace.id == trigger.workspace_id))
        ).one()
        # The latest due time at or before now (catch up once, not once per missed time).
        due_at = trigger.next_run_at
        following = next_fire_time(trigger.path, workspace.cron_timezone, due_at)
        while following <= now:
            due_at, following = (
                following,
                next_fire_time(trigger.path, workspace.cron_timezone, following),
            )
        workflow = (
            await session.exec(select(Workflow).where(Workflow.id == trigger.workflow_id))
        ).one()
        # A draft's schedule moves on without firing (publishing it fires no backlog).
        fired = {"last_fired_at": due_at} if fires(workflow) else {}
        claimed = await session.exec(
            update(Trigger)
            .where(col(Trigger.id) == trigger.id)
            .where(col(Trigger.next_run_at) == trigger.next_run_at)
            .values(next_run_at=following, **fired)
        )
        if claimed.rowcount != 1 or not fired:
            return 0
        payload = dict(trigger.settings.get("payload") or {})
        await start_process(
            uow,
            runtime,
            StartRequest(
                workflow=workflow,
                input={**payload, "scheduled_at": due_at.isoformat()},
                trigger=trigger,
                idempotency_key=f"schedule:{trigger.id}:{due_at.isoformat()}",
                event_meta={"scheduled_at": due_at.isoformat()},
            ),
        )
    return 1


async def due_wakeups(runtime: Runtime, now: datetime | None = None) -> list[uuid.UUID]:
    """Parked processes whose wait is over, and PENDING ones nobody runs (e.g. after a crash)."""
    now = now or utcnow()
    async with runtime.db.read() as session:
        rows = (
            await session.exec(
                select(Process.id)
                .where(Process.status == ProcessStatus.WAITING)
                .where(col(Process.workflow_id).is_not(None))
                .where(col(Process.wake_at) <= now)
            )
        ).all()
    return list(rows)


async def unfinished(runtime: Runtime) -> list[uuid.UUID]:
    """Every workflow process a crash may have interrupted, oldest first."""
    async with runtime.db.read() as session:
        rows = (
            await session.exec(
                select(Process.id)
                .where(col(Process.workflow_id).is_not(None))
                .where(col(Process.status).in_([ProcessStatus.PENDING, ProcessStatus.RUNNING]))
                .order_by(col(Process.number))
            )
        ).all()
    return list(rows)


async def delete_expired_messages(runtime: Runtime, now: datetime | None = None) -> int:
    now = now or utcnow()
    async with runtime.db.transaction() as session:
        result = await session.exec(
            delete(Message)
            .where(col(Message.expires_at).is_not(None))
            .where(col(Message.expires_at) <= now)
        )
        return int(result.rowcount or 0)
