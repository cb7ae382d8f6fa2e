"""The inline dispatcher: processes run as asyncio tasks inside the server, with a concurrency
limit, plus the loop that wakes parked processes, fires schedules and sends webhooks.

On start it resumes every unfinished process: the database, not memory, says what is left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.engine import scenario_bridge
from flowql.engine.deliveries import deliver_due
from flowql.engine.run_state import ProcessRun
from flowql.engine.runner import Runner
from flowql.engine.scheduler import (
    delete_expired_messages,
    due_wakeups,
    fire_due_schedules,
    unfinished,
)
from flowql.models import Process
from flowql.services.netguard import guarded_client
from flowql.services.runtime import Runtime
from flowql.services.scenarios.runner import fire_due_timeouts

logger = logging.getLogger("flowql.dispatch")


class InlineDispatcher:
    def __init__(self, runtime: Runtime, concurrency: int | None = None) -> None:
        self.runtime = runtime
        self.semaphore = asyncio.Semaphore(concurrency or runtime.settings.max_concurrent_processes)
        self.tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.again: set[uuid.UUID] = set()
        self.http = guarded_client(lambda: runtime.settings.allow_private_networks)
        self.runner = Runner(runtime, self.http)
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        scenario_bridge.install(self.runtime)
        for process_id in await unfinished(self.runtime):
            await self.submit(process_id)
        self._loop_task = asyncio.create_task(self._loop(), name="flowql-scheduler")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in [self._loop_task, *self.tasks.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.http.aclose()

    async def defer(self, session: AsyncSession, process_id: uuid.UUID) -> None:
        return None  # nothing durable to queue: submit() after commit starts the task

    async def submit(self, process_id: uuid.UUID) -> None:
        if self._stopping:
            return
        if process_id in self.tasks:
            self.again.add(process_id)
            return
        self.tasks[process_id] = asyncio.create_task(
            self._run(process_id), name=f"process-{process_id}"
        )

    async def start_run(self, run: ProcessRun) -> Process | None:
        """Run a process built in memory (an http trigger's) as a task; returns it once its
        start has committed, or None when this dispatcher is stopping."""
        if self._stopping:
            return None
        process_id = run.process.id
        run.committed = asyncio.get_running_loop().create_future()
        self.tasks[process_id] = asyncio.create_task(
            self._run(process_id, run), name=f"process-{process_id}"
        )
        return await run.committed

    async def cancel(self, process_id: uuid.UUID) -> None:
        task = self.tasks.get(process_id)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _run(self, process_id: uuid.UUID, started: ProcessRun | None = None) -> None:
        try:
            while True:
                async with self.semaphore:
                    try:
                        if started is not None:
                            run, started = started, None
                            await self.runner.drive(run)
                        else:
                            await self.runner.run(process_id)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        logger.exception(
                            "runner failed for process %s; it will be resumed", process_id
                        )
                if process_id not in self.again:
                    return
                self.again.discard(process_id)
        finally:
            self.tasks.pop(process_id, None)
            if started is not None and started.committed and not started.committed.done():
                started.committed.cancel()  # stopped before it ran: its caller is told

    async def _loop(self) -> None:
        interval = self.runtime.settings.scheduler_interval
        last_expiry = 0.0
        while True:
            try:
                await self.tick()
                if time.monotonic() - last_expiry >= self.runtime.settings.message_expiry_interval:
                    await delete_expired_messages(self.runtime)
                    last_expiry = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("scheduler tick failed")
            await asyncio.sleep(interval)

    async def tick(self) -> None:
        for process_id in await due_wakeups(self.runtime):
            await self.submit(process_id)
        await fire_due_schedules(self.runtime)
        await fire_due_timeouts(self.runtime)
        await deliver_due(self.runtime, self.http)
