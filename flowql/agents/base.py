"""What every agent type is made of: its options model, its handler, and what a handler gets and
returns. A leaf room: it imports models, errors and auth, nothing above them.

A handler gets an `AgentRun` (the incoming message, the agent's options rendered over it, the
agent's memory, and the few capabilities the engine lends it) and returns an `Outcome`; the engine
persists the outcome (messages, logs, memory) in one write set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from flowql.agents.templating import render
from flowql.models import Agent, Process


class Kind(StrEnum):
    TRIGGER = "trigger"
    ACTION = "action"


class Options(BaseModel):
    # A `{{ expression }}` option renders to the expression's type (agents/templating.py): a
    # number given to a text option is taken as its text.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class StepFailed(Exception):
    """The agent could not do its work; the runner retries or fails the process."""


@dataclass
class Outcome:
    emit: list[dict[str, Any]] = field(default_factory=list)
    # Switch: only this receiver (by name) gets the messages.
    route_to: str | None = None
    # Respond: what the http trigger's caller receives.
    response: dict[str, Any] | None = None
    # Delay: park the step until then; it then passes its message on.
    wait_until: datetime | None = None
    logs: list[str] = field(default_factory=list)


@dataclass
class AgentRun:
    agent: Agent
    process: Process
    payload: dict[str, Any]
    context: dict[str, Any]
    resolve_credential: Callable[[str], Awaitable[str]]
    http: Callable[[], httpx.AsyncClient]
    check_url: Callable[[str], Awaitable[None]]
    # (process id, action, actor, response) -> what happened, for `scenario_action`.
    scenario_action: Callable[[str, str, str, Any], Awaitable[dict[str, Any]]]
    # "receive": a message arrived (payload); "check": the agent's own schedule fired (no message).
    mode: Literal["receive", "check"] = "receive"
    # The agent's memory across runs (Huginn's `memory`): a handler may change it in place; the
    # engine saves it with the step's outcome.
    memory: dict[str, Any] = field(default_factory=dict)
    # (action, options) -> what was done, on the agents this one controls (its control links):
    # "run", "enable", "disable" or "configure"; None where the engine lends no control.
    control: Callable[[str, dict[str, Any]], Awaitable[list[str]]] | None = None

    def options(self) -> dict[str, Any]:
        rendered: dict[str, Any] = render(self.agent.options, self.context)
        return rendered


Handler = Callable[[AgentRun], Awaitable[Outcome]]


@dataclass(frozen=True)
class AgentType:
    name: str
    kind: Kind
    options: type[Options]
    description: str
    handler: Handler
    # Only computes (no I/O, no waiting on others): runs back to back with its neighbours, no
    # commit in between.
    local: bool = False
    # Options whose values are secrets: encrypted at rest and never returned.
    secret_options: tuple[str, ...] = ()
    # What it emits, in a sentence, for the catalog.
    emits: str = ""
    # Options that make a working agent of this type, for the catalog (`agentTypes`).
    example: dict[str, Any] = field(default_factory=dict)
