"""A unit of work: one transaction, and the bus events it produced, published after commit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.events.bus import BusEvent
from flowql.services.runtime import Runtime


@dataclass
class UnitOfWork:
    session: AsyncSession
    events: list[BusEvent] = field(default_factory=list)
    after_commit: list[Any] = field(default_factory=list)

    def publish(self, topic: str, workspace_id: uuid.UUID, **data: Any) -> None:
        self.events.append(BusEvent(topic=topic, workspace_id=workspace_id, data=data))


@asynccontextmanager
async def unit_of_work(runtime: Runtime) -> AsyncIterator[UnitOfWork]:
    async with runtime.db.transaction() as session:
        uow = UnitOfWork(session)
        yield uow
    if uow.events:
        await runtime.bus.publish(uow.events)
    for callback in uow.after_commit:
        await callback()
