"""The procrastinate dispatcher (FLOWQL_DISPATCHER=procrastinate, PostgreSQL only).

A process becomes a procrastinate job in the transaction that makes it runnable: `defer` runs
procrastinate's own defer function (`procrastinate_defer_jobs_v1`) on the unit of work's
connection, so the job commits or rolls back with the process row. Every job of a process
carries `lock=<process id>`: procrastinate never runs two jobs with one lock at once, so a
process runs in one worker at a time. Workers (`flowql worker`, see worker.py) run the same
Runner as the inline dispatcher.

Schedules are a procrastinate periodic task firing every second (`fire_due_schedules` claims
each due time with a conditional UPDATE, and procrastinate defers each periodic tick once
however many workers run). Parked processes are woken by claiming `wake_at` and deferring a job
in one transaction; processes no job will ever run (e.g. started before the switch from the
inline dispatcher) are found by a sweep and given one.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, LiteralString

import procrastinate
import psycopg
from procrastinate.job_context import JobContext
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision
from psycopg import sql
from sqlalchemy import text
from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.db import upgrade
from flowql.engine.runner import Runner
from flowql.engine.scheduler import due_wakeups, fire_due_schedules
from flowql.models import Process, ProcessStatus, utcnow
from flowql.services.runtime import Runtime
from flowql.settings import Settings, libpq_database_url

logger = logging.getLogger("flowql.queue")

RUN_TASK = "flowql.run_process"
SCHEDULES_TASK = "flowql.fire_schedules"
RETENTION_TASK = "flowql.remove_old_jobs"
PROCESS_QUEUE = "processes"
PERIODIC_QUEUE = "periodic"
QUEUES = (PROCESS_QUEUE, PERIODIC_QUEUE)
SCHEDULES_CRON = "* * * * * *"  # every second (croniter's sixth field is seconds)
RETENTION_CRON = "17 3 * * *"
RETENTION_HOURS = 7 * 24  # failed, cancelled and aborted jobs are kept a week
MAX_RUN_ATTEMPTS = 20
ORPHAN_AGE = timedelta(seconds=60)
ORPHAN_BATCH = 200
# pg_advisory_lock key held while migrating, so replicas starting together migrate once.
MIGRATION_LOCK = 0x666C6F77716C  # "flowql"

DEFER = text(
    """
    SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(
        CAST(:queue AS varchar), CAST(:task AS varchar), CAST(:priority AS integer),
        CAST(:lock AS text), CAST(:queueing_lock AS text), CAST(:args AS jsonb),
        CAST(:scheduled_at AS timestamptz)
    )]::procrastinate_job_to_defer_v1[])) AS id
    """
)
CANCEL = text(
    "SELECT procrastinate_cancel_job_v1(id, true, false) FROM procrastinate_jobs "
    "WHERE lock = :lock AND status IN ('todo', 'doing')"
)
ORPHANS = text(
    """
    SELECT p.id FROM processes AS p
    WHERE p.workflow_id IS NOT NULL
      AND (p.status IN ('PENDING', 'RUNNING') OR (p.status = 'WAITING' AND p.wake_at IS NULL))
      AND p.last_activity_at < :cutoff
      AND NOT EXISTS (
        SELECT 1 FROM procrastinate_jobs AS j
        WHERE j.lock = CAST(p.id AS text) AND j.status IN ('todo', 'doing')
      )
    ORDER BY p.number LIMIT :limit
    """
)


def conninfo(settings: Settings) -> str:
    return libpq_database_url(settings.resolved_database_url())


# -- schema ---------------------------------------------------------------------------------------


def prepare_database(settings: Settings) -> None:
    """`flowql db upgrade`: flowql's migrations, then (PostgreSQL only) procrastinate's schema.

    Idempotent, and safe when several replicas start at once: on PostgreSQL the whole upgrade
    runs under an advisory lock.
    """
    if not settings.is_postgres:
        upgrade(settings)
        return
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            upgrade(settings)
            apply_procrastinate_schema(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def _version(name: str) -> tuple[int, ...]:
    """(3, 10, 0) from "3.10.0" or from a migration file name "03.10.00_01_pre_….sql"."""
    return tuple(int(part) for part in re.findall(r"\d+", name.split("_")[0])[:3])


def _script(path: Path) -> LiteralString:
    # procrastinate's own SQL files, run as they ship (no parameters, so no % escaping).
    return path.read_text()


def apply_procrastinate_schema(conn: psycopg.Connection[Any]) -> None:
    """Install procrastinate's schema once; after a procrastinate upgrade, apply its migrations
    newer than the version recorded on `procrastinate_jobs` (a table comment)."""
    installed = importlib.metadata.version("procrastinate")
    root = Path(procrastinate.__file__).parent / "sql"
    exists_ = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
    with conn.transaction():
        if not (exists_ and exists_[0]):
            conn.execute(_script(root / "schema.sql"))
            logger.info("procrastinate %s schema installed", installed)
        else:
            row = conn.execute(
                "SELECT obj_description('procrastinate_jobs'::regclass, 'pg_class')"
            ).fetchone()
            recorded = str(row[0]).removeprefix("procrastinate ") if row and row[0] else None
            if recorded == installed:
                return
            if recorded is None:  # installed by other means: assume it matches this version
                recorded = installed
            for path in sorted((root / "migrations").glob("*.sql")):
                if _version(recorded) < _version(path.name) <= _version(installed):
                    conn.execute(_script(path))
                    logger.info("procrastinate migration %s applied", path.name)
        conn.execute(
            sql.SQL("COMMENT ON TABLE procrastinate_jobs IS {}").format(
                sql.Literal(f"procrastinate {installed}")
            )
        )


async def queue_ready(session: AsyncSession) -> bool:
    conn = await session.connection()
    return bool((await conn.execute(text("SELECT to_regclass('procrastinate_jobs')"))).scalar())


# -- the dispatcher (API side: defers only) -------------------------------------------------------


async def defer_run(
    session: AsyncSession, process_id: uuid.UUID, queueing_lock: str | None = None
) -> int:
    conn = await session.connection()
    result = await conn.execute(
        DEFER,
        {
            "queue": PROCESS_QUEUE,
            "task": RUN_TASK,
            "priority": 0,
            "lock": str(process_id),
            "queueing_lock": queueing_lock,
            "args": json.dumps({"process_id": str(process_id)}),
            "scheduled_at": None,
        },
    )
    return int(result.scalar_one())


class ProcrastinateDispatcher:
    """Queues processes as procrastinate jobs; workers run them. Nothing runs in this process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def defer(self, session: AsyncSession, process_id: uuid.UUID) -> None:
        await defer_run(session, process_id)

    async def submit(self, process_id: uuid.UUID) -> None:
        return None  # the job committed with the process; its insert notified the workers

    async def cancel(self, process_id: uuid.UUID) -> None:
        """Drop queued jobs of the process and abort a running one (its worker cancels the task;
        the runner would discard its work anyway, the process being CANCELLED)."""
        async with self.runtime.db.transaction() as session:
            conn = await session.connection()
            await conn.execute(CANCEL, {"lock": str(process_id)})


async def wake_due(runtime: Runtime) -> int:
    """Parked processes whose time has come: claim `wake_at` and defer a job, in one transaction,
    so however many workers look, each wake-up queues one job."""
    now = utcnow()
    woken = 0
    for process_id in await due_wakeups(runtime, now):
        async with runtime.db.transaction() as session:
            claimed = await session.exec(
                update(Process)
                .where(col(Process.id) == process_id)
                .where(col(Process.status) == ProcessStatus.WAITING)
                .where(col(Process.wake_at) <= now)
                .values(wake_at=None)
            )
            if claimed.rowcount == 1:
                await defer_run(session, process_id)
                woken += 1
    return woken


async def resume_orphans(runtime: Runtime) -> int:
    """Processes idle for a while that no job will run get one: PENDING or RUNNING ones, and
    WAITING ones already woken (`wake_at` cleared by wake_due), whose job failed for good or
    that were started under another dispatcher. One sweeper at a time."""
    async with runtime.db.transaction() as session:
        conn = await session.connection()
        sweeping = await conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK + 1}
        )
        if not sweeping.scalar():
            return 0
        orphans = (
            (await conn.execute(ORPHANS, {"cutoff": utcnow() - ORPHAN_AGE, "limit": ORPHAN_BATCH}))
            .scalars()
            .all()
        )
        for process_id in orphans:
            await defer_run(session, process_id)
        if orphans:
            logger.warning("resumed %d processes that had no job", len(orphans))
        return len(orphans)


# -- the procrastinate app (worker side) ----------------------------------------------------------


class RunRetry(BaseRetryStrategy):
    """A runner that raised (database gone, a bug) is retried with backoff; a job cancelled by a
    worker shutting down goes straight back to the queue (a job whose process was cancelled has
    `abort_requested`, and procrastinate fails it instead of retrying)."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, asyncio.CancelledError):
            return RetryDecision(retry_in={"seconds": 0})
        if job.attempts >= MAX_RUN_ATTEMPTS:
            logger.error("process job %s failed %d times; giving up", job.id, job.attempts)
            return None
        return RetryDecision(retry_in={"seconds": min(60, 2**job.attempts)})


def make_app(settings: Settings, pool_size: int) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(settings),
        min_size=1,
        max_size=max(2, pool_size),
        kwargs={"application_name": "flowql-worker"},
    )
    return procrastinate.App(connector=connector, periodic_defaults={"max_delay": 60})


def register_tasks(app: procrastinate.App, runtime: Runtime, runner: Runner) -> None:
    @app.task(name=RUN_TASK, queue=PROCESS_QUEUE, pass_context=True, retry=RunRetry())
    async def run_process(context: JobContext, process_id: str) -> None:
        await runner.run(uuid.UUID(process_id))
        logger.info(
            "worker %s ran process %s (job %s)", context.worker_name, process_id, context.job.id
        )

    @app.periodic(cron=SCHEDULES_CRON, periodic_id="schedules")
    @app.task(name=SCHEDULES_TASK, queue=PERIODIC_QUEUE, queueing_lock=SCHEDULES_TASK)
    async def fire_schedules(timestamp: int) -> None:
        await fire_due_schedules(runtime)

    @app.periodic(cron=RETENTION_CRON, periodic_id="retention")
    @app.task(name=RETENTION_TASK, queue=PERIODIC_QUEUE, queueing_lock=RETENTION_TASK)
    async def remove_old_jobs(timestamp: int) -> None:
        await app.job_manager.delete_old_jobs(
            nb_hours=RETENTION_HOURS,
            include_failed=True,
            include_cancelled=True,
            include_aborted=True,
        )
