"""What every agent type is made of: its options model, its handler, and what a handler gets and
returns. A leaf room: it imports models, errors, auth and settings, nothing above them.

A handler gets an `AgentRun` (the incoming message, the agent's options rendered over it, the
agent's memory, its secret options decrypted, the engine's settings, and the few capabilities the
engine lends it) and returns an `Outcome`; the engine persists the outcome (messages, logs,
memory) in one write set.

Templates in options see one context, Huginn's and flowql's at once: the message's keys at the
top level (`{{ title }}`) and flowql's names (`message`, `process`, `workflow`, `vars`), which
win over a message key of the same name (`message_context`, `AgentRun.template_context`).
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
from flowql.settings import Settings

# What the API shows for a stored secret option (services/workflows.REDACTED); sent back in an
# update, it keeps the stored value, so option validators accept it where a secret goes.
REDACTED = "********"

# flowql's own names in a template context: they win over a message key of the same name.
CONTEXT_NAMES = ("message", "process", "workflow", "vars")


def message_context(message: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """A template context as Huginn's agents interpolate and flowql's too: the message's keys at
    the top level (`{{ title }}`), then flowql's own variables (`own`: `message`, `process`,
    `workflow`, `vars`) over them. Keys starting with NUL are the engine's, never a message's."""
    context = {
        key: value
        for key, value in message.items()
        if isinstance(key, str) and not key.startswith("\x00")
    }
    context.update(own)
    return context


async def _no_resolver(host: str, port: int) -> str:
    raise StepFailed(f"{host}:{port}: this run has no resolver for outbound connections")


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
    # The agent's secret options (its type's `secret_options`), decrypted for this run only;
    # `options()` renders them in place of the sealed values `agent.options` holds.
    secrets: dict[str, Any] = field(default_factory=dict)
    # The engine's settings (SMTP server, files folder...).
    settings: Settings = field(default_factory=Settings)
    # (host, port) -> the one address to connect to, checked as `check_url` checks a URL's host:
    # connecting to it (not to the name again) closes DNS rebinding for non-HTTP connections.
    resolve_host: Callable[[str, int], Awaitable[str]] = _no_resolver

    def template_context(self, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """The context options render over: `context` (the incoming message's keys at the top
        level and flowql's names, see `message_context`), or the same with `data` in place of
        the message (a result a handler renders per item)."""
        if data is None:
            return dict(self.context)
        own = {
            key: value
            for key, value in self.context.items()
            if key in CONTEXT_NAMES or key.startswith("\x00") or key not in self.payload
        }
        own["message"] = data
        return message_context(data, own)

    def options(self, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """The agent's options rendered over `template_context(data)`."""
        source = {**self.agent.options, **self.secrets} if self.secrets else self.agent.options
        rendered: dict[str, Any] = render(source, self.template_context(data))
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
