"""Waiting for a process to reach a condition: bus events wake the waiter, a slow poll backs them
up (another server may run the process and its events may not reach this one's bus)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

from sqlmodel import select

from flowql.events.bus import BusEvent
from flowql.models import TERMINAL_STATUSES, Process
from flowql.services.runtime import Runtime

POLL_SECONDS = 1.0


def ended(process: Process) -> bool:
    return process.status in TERMINAL_STATUSES


def responded(process: Process) -> bool:
    return process.response is not None or process.status in TERMINAL_STATUSES


async def wait_for_process(
    runtime: Runtime,
    process_id: uuid.UUID,
    done: Callable[[Process], bool] = ended,
    timeout: float = 30.0,
) -> Process:
    """The process once `done(process)` holds, or as it is when `timeout` runs out."""
    key = str(process_id)

    def accept(event: BusEvent) -> bool:
        return event.topic == "process.updated" and event.data.get("process_id") == key

    deadline = time.monotonic() + timeout
    async with runtime.bus.subscribe(accept, maxsize=100) as subscription:
        while True:
            async with runtime.db.read() as session:
                process = (
                    await session.exec(select(Process).where(Process.id == process_id))
                ).one()
            remaining = deadline - time.monotonic()
            if done(process) or remaining <= 0:
                return process
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    subscription.queue.get(), timeout=min(POLL_SECONDS, remaining)
                )
