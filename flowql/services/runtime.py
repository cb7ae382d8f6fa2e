"""What a running flowql shares across requests: settings, database, secret box, bus, dispatcher."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from flowql.auth.secrets_box import SecretBox
from flowql.db import Database
from flowql.events.bus import Bus, MemoryBus
from flowql.settings import Settings

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession


class Dispatcher(Protocol):
    """Runs processes somewhere: asyncio tasks in this server, or procrastinate workers."""

    async def defer(self, session: AsyncSession, process_id: uuid.UUID) -> None:
        """Inside the transaction that makes the process runnable: queue it durably (a
        procrastinate job commits with the process row); in-memory dispatchers do nothing."""
        ...

    async def submit(self, process_id: uuid.UUID) -> None: ...

    async def cancel(self, process_id: uuid.UUID) -> None: ...


class NullDispatcher:
    """Used where nothing runs processes (CLI commands): they stay PENDING for a server to resume."""

    async def defer(self, session: AsyncSession, process_id: uuid.UUID) -> None:
        return None

    async def submit(self, process_id: uuid.UUID) -> None:
        return None

    async def cancel(self, process_id: uuid.UUID) -> None:
        return None


@dataclass
class Runtime:
    settings: Settings
    db: Database
    box: SecretBox
    bus: Bus = field(default_factory=MemoryBus)
    dispatcher: Dispatcher = field(default_factory=NullDispatcher)
    # Coroutines run after a scenario process entered a state (services/scenarios/hooks.py);
    # the engine registers the bridge that starts notified workflows.
    state_entered_hooks: list[Any] = field(default_factory=list)
