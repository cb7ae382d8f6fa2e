"""Triggers between worlds: code that reacts when a scenario process enters a state.

The engine registers coroutines in `runtime.state_entered_hooks` (for example: start the
flowql workflow named by a `notify` instruction's service). They run after the transaction that
entered the state has committed, in registration order; a failing hook is logged and does not
undo the transition (the history already holds it).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flowql.services.runtime import Runtime
from flowql.services.uow import UnitOfWork

logger = logging.getLogger("flowql.scenarios")


@dataclass(frozen=True)
class StateEntered:
    workspace_id: uuid.UUID
    process_id: uuid.UUID
    scenario_id: uuid.UUID
    state: str
    # The instantiated state (LetsFlow `current`): title, description, instructions,
    # actions (with the actors allowed now) and notify (instructions whose `if` held).
    current: dict[str, Any]
    # The whole process projection (LetsFlow process JSON), for building messages.
    process: dict[str, Any]
    ended: bool

    @property
    def notify(self) -> list[dict[str, Any]]:
        return list(self.current.get("notify") or [])


StateEnteredHook = Callable[[Runtime, StateEntered], Awaitable[None]]


def after_commit(uow: UnitOfWork, runtime: Runtime, entered: StateEntered) -> None:
    """Run the registered hooks once `uow` has committed."""

    async def run() -> None:
        hooks: list[StateEnteredHook] = list(runtime.state_entered_hooks)
        for hook in hooks:
            try:
                await hook(runtime, entered)
            except Exception:
                logger.exception(
                    "state-entered hook %r failed for process %s state %s",
                    hook,
                    entered.process_id,
                    entered.state,
                )

    uow.after_commit.append(run)
