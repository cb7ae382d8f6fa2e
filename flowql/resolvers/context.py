"""The per-request context: the caller, the shared runtime, and this request's dataloaders."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowql.auth.principal import Principal
from flowql.auth.secrets_box import SecretBox
from flowql.db import Database
from flowql.resolvers.loaders import Loaders
from flowql.services.runtime import Runtime
from flowql.settings import Settings


@dataclass
class Context:
    runtime: Runtime
    principal: Principal
    request: Any = None
    response: Any = None
    # WebSocket connections: the connection_init payload (Strawberry sets it).
    connection_params: dict[str, Any] | None = None
    # What the transport does when a feed of this connection drops its subscriber (given the
    # feed's task); set by flowql.transport for WebSockets, None elsewhere.
    on_drop: Callable[[asyncio.Task[Any] | None], None] | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.runtime.db)

    @property
    def db(self) -> Database:
        return self.runtime.db

    @property
    def box(self) -> SecretBox:
        return self.runtime.box

    @property
    def settings(self) -> Settings:
        return self.runtime.settings
