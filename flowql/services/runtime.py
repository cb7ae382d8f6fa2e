"""What a running flowql shares across requests: settings, database, secret box, bus, dispatcher."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from flowql.auth.secrets_box import SecretBox
from flowql.db import Database
from flowql.events.bus import Bus, MemoryBus
from flowql.settings import Settings


class Dispatcher(Protocol):
    """Runs processes somewhere: asyncio tasks in this server, or procrastinate workers."""

    async def submit(self, process_id: uuid.UUID) -> None: ...

    async def cancel(self, process_id: uuid.UUID) -> None: ...


class NullDispatcher:
    """Used where nothing runs processes (CLI commands): they stay PENDING for a server to resume."""

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
