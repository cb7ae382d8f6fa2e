"""`flowql worker`: procrastinate workers running processes (FLOWQL_DISPATCHER=procrastinate).

A WorkerService is one procrastinate worker (one row in procrastinate_workers, `concurrency`
jobs at once) plus a maintenance loop every `scheduler_interval`: wake parked processes, send
due webhook deliveries, fire due scenario timeouts, delete expired messages, hand the jobs of
dead workers to the living and resume processes nobody runs. Every piece of that loop claims its rows with conditional
UPDATEs (or an advisory lock), so any number of workers run it side by side.

Dead workers: each worker refreshes its heartbeat every `worker_heartbeat_interval`; the jobs of
a worker silent for `worker_stalled_timeout` (kill -9, lost machine) go back to the queue and run
again elsewhere. The runner resumes from the last finished step: a finished step never runs
again; a step that was running when its worker died does (at-least-once).

`flowql serve` with this dispatcher runs one WorkerService in the server unless --no-worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterable

from procrastinate.worker import Worker
from sqlalchemy import text

from flowql.engine import scenario_bridge
from flowql.engine.deliveries import deliver_due
from flowql.engine.queue import (
    ProcrastinateDispatcher,
    make_app,
    queue_ready,
    register_tasks,
    resume_orphans,
    wake_due,
)
from flowql.engine.runner import Runner
from flowql.engine.scheduler import delete_expired_messages
from flowql.events.postgres import PostgresBus
from flowql.services.netguard import guarded_client
from flowql.services.runtime import Runtime
from flowql.services.scenarios.runner import fire_due_timeouts
from flowql.settings import Dispatcher

logger = logging.getLogger("flowql.worker")

SHUTDOWN_GRACE = 20.0  # seconds running jobs get to finish on SIGTERM before they are requeued
ORPHAN_SWEEP_SECONDS = 30.0
CHECK_TIMEOUT = 3.0


class WorkerService:
    def __init__(
        self,
        runtime: Runtime,
        concurrency: int,
        queues: Iterable[str] | None = None,
        name: str | None = None,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.dispatcher = ProcrastinateDispatcher(runtime)
        runtime.dispatcher = self.dispatcher  # schedules fired here queue their processes
        scenario_bridge.install(runtime)  # scenario states entered here start notified workflows
        self.http = guarded_client(lambda: runtime.settings.allow_private_networks)
        self.runner = Runner(runtime, self.http)
        self.app = make_app(settings, pool_size=min(10, 2 + concurrency // 2))
        register_tasks(self.app, runtime, self.runner)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.worker = Worker(
            app=self.app,
            queues=list(queues) if queues else None,
            name=self.name,
            concurrency=concurrency,
            install_signal_handlers=False,
            delete_jobs="successful",
            fetch_job_polling_interval=min(5.0, max(0.1, settings.scheduler_interval)),
            update_heartbeat_interval=settings.worker_heartbeat_interval,
            stalled_worker_timeout=settings.worker_stalled_timeout,
            shutdown_graceful_timeout=SHUTDOWN_GRACE,
        )
        self._worker_task: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def worker_id(self) -> int | None:
        return self.worker.worker_id

    @property
    def running(self) -> bool:
        task = self._worker_task
        return task is not None and not task.done() and self.worker.worker_id is not None

    async def start(self) -> None:
        await self.app.open_async()
        self._worker_task = asyncio.create_task(
            self.worker.run(),  # type: ignore[no-untyped-call]
            name="procrastinate-worker",
        )
        self._loop_task = asyncio.create_task(self._maintain(), name="flowql-worker-maintenance")
        for _ in range(200):  # until registered (worker_id), so readiness means something
            if self.worker.worker_id is not None or self._worker_task.done():
                break
            await asyncio.sleep(0.05)

    async def wait(self) -> None:
        """Until the procrastinate worker stops on its own (e.g. its heartbeat failed)."""
        if self._worker_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(self._worker_task)

    async def stop(self) -> None:
        self.worker.stop()  # type: ignore[no-untyped-call]
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._worker_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._worker_task, SHUTDOWN_GRACE + 10)
        await self.app.close_async()
        await self.http.aclose()

    async def _maintain(self) -> None:
        settings = self.runtime.settings
        last_stalled = last_expiry = last_orphans = time.monotonic()
        while True:
            try:
                await wake_due(self.runtime)
                await fire_due_timeouts(self.runtime)
                await deliver_due(self.runtime, self.http)
                now = time.monotonic()
                if now - last_stalled >= settings.worker_heartbeat_interval:
                    last_stalled = now
                    await self.requeue_stalled()
                if now - last_expiry >= settings.message_expiry_interval:
                    last_expiry = now
                    await delete_expired_messages(self.runtime)
                if now - last_orphans >= ORPHAN_SWEEP_SECONDS:
                    last_orphans = now
                    await resume_orphans(self.runtime)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("worker maintenance failed; retrying")
            await asyncio.sleep(settings.scheduler_interval)

    async def requeue_stalled(self) -> int:
        """Jobs left 'doing' by workers whose heartbeat stopped go back to 'todo'."""
        manager = self.app.job_manager
        timeout = self.runtime.settings.worker_stalled_timeout
        requeued = 0
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=timeout):
            try:
                await manager.retry_job(job)
            except Exception:  # another worker requeued it first
                logger.debug("stalled job %s already requeued", job.id)
                continue
            requeued += 1
            logger.warning(
                "requeued job %s (%s) of stalled worker %s", job.id, job.task_name, job.worker_id
            )
        await manager.prune_stalled_workers(timeout)
        return requeued


# -- readiness ------------------------------------------------------------------------------------


async def readiness(runtime: Runtime, service: WorkerService | None = None) -> dict[str, str]:
    """Each check "ok" or what is wrong: database, bus (when this process listens), queue (with
    the procrastinate dispatcher), worker (when this process runs one)."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), runtime.db.read() as session:
            conn = await session.connection()
            await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
            if runtime.settings.dispatcher is Dispatcher.PROCRASTINATE:
                ready = await queue_ready(session)
                checks["queue"] = "ok" if ready else "procrastinate schema missing (db upgrade)"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        if runtime.settings.dispatcher is Dispatcher.PROCRASTINATE:
            checks["queue"] = "unreachable"
    bus = runtime.bus
    if isinstance(bus, PostgresBus) and bus.listening:
        checks["bus"] = "ok" if bus.connected else "LISTEN connection down"
    if service is not None:
        checks["worker"] = "ok" if service.running else "not running"
    return checks
