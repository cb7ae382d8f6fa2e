"""The console's operational reads: `health` (workers, queue depth, scheduled triggers, failed
webhook deliveries of a workspace) and `workflowActivity` (ended processes per hour)."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from flowql.resolvers import health as resolve
from flowql.schema.base import Info
from flowql.schema.webhooks import WebhookDelivery


@strawberry.type(description="A worker that runs processes: its id and last heartbeat only.")
class Worker:
    id: str
    name: str
    last_heartbeat_at: datetime | None


@strawberry.type(description="An active schedule trigger and when it runs next.")
class ScheduledTrigger:
    id: uuid.UUID
    name: str
    workflow_id: uuid.UUID
    workflow_name: str
    cron: str | None = strawberry.field(description="The schedule the trigger runs on.")
    next_run_at: datetime | None
    last_fired_at: datetime | None


@strawberry.type(description="A workspace's operational state, read now.")
class Health:
    checked_at: datetime
    dispatcher: str = strawberry.field(description="`inline` or `procrastinate`.")
    queue_depth: int = strawberry.field(description="The workspace's PENDING processes.")
    running: int
    waiting: int
    workers: list[Worker] = strawberry.field(description="This flowql instance's workers.")
    scheduled_triggers: list[ScheduledTrigger] = strawberry.field(
        description="Active schedule triggers, the next to run first (at most 50)."
    )
    failed_deliveries: list[WebhookDelivery] = strawberry.field(
        description="Outgoing webhook deliveries that FAILED or are DEAD, newest first (at most 50)."
    )


@strawberry.type(description="Processes of a workflow that ended in one hour (UTC).")
class HourActivity:
    hour: datetime
    completed: int
    failed: int


@strawberry.type
class Query:
    @strawberry.field(
        description="Workers, queue depth, scheduled triggers and failed webhook deliveries of a "
        "workspace. Needs `audit:read` there (owners and admins): FORBIDDEN otherwise."
    )
    async def health(self, info: Info, workspace_id: uuid.UUID) -> Health:
        found = await resolve.health(info.context, workspace_id)
        return Health(
            checked_at=found.checked_at,
            dispatcher=found.dispatcher,
            queue_depth=found.queue_depth,
            running=found.running,
            waiting=found.waiting,
            workers=[
                Worker(id=w.id, name=w.name, last_heartbeat_at=w.last_heartbeat_at)
                for w in found.workers
            ],
            scheduled_triggers=[
                ScheduledTrigger(
                    id=s.trigger.id,
                    name=s.trigger.name,
                    workflow_id=s.trigger.workflow_id,
                    workflow_name=s.workflow_name,
                    cron=s.trigger.path,
                    next_run_at=s.trigger.next_run_at,
                    last_fired_at=s.trigger.last_fired_at,
                )
                for s in found.scheduled
            ],
            failed_deliveries=WebhookDelivery.from_rows(found.failed_deliveries),
        )

    @strawberry.field(
        description="A workflow's processes that ended (COMPLETED, FAILED) per hour over the "
        "last `hours` hours (1 to 168), oldest first, empty hours included. Needs "
        "`process:read`."
    )
    async def workflow_activity(
        self, info: Info, workflow_id: uuid.UUID, hours: int = 24
    ) -> list[HourActivity]:
        counts = await resolve.workflow_activity(info.context, workflow_id, hours)
        return [HourActivity(hour=c.hour, completed=c.completed, failed=c.failed) for c in counts]
