"""What each agent type does when it runs. A handler gets the incoming message and the agent's
rendered options and returns an Outcome; the runner persists it in one transaction."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from flowql import jsonsafe
from flowql.engine import registry
from flowql.engine.templating import condition, render
from flowql.models import Agent, Process, utcnow
from flowql.services.delegation import require_for_process


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

    def options(self) -> dict[str, Any]:
        rendered: dict[str, Any] = render(self.agent.options, self.context)
        return rendered


Handler = Callable[[AgentRun], Awaitable[Outcome]]


async def trigger(run: AgentRun) -> Outcome:
    """A trigger agent emits what fired it (its declared outputs name positional values)."""
    return Outcome(emit=[dict(run.payload)])


async def message(run: AgentRun) -> Outcome:
    payload = run.options().get("payload")
    return Outcome(emit=[payload if isinstance(payload, dict) else dict(run.payload)])


async def transform(run: AgentRun) -> Outcome:
    options = run.options()
    built = options.get("payload") or {}
    payload = {**run.payload, **built} if options.get("merge") else built
    return Outcome(emit=[payload])


async def filter_(run: AgentRun) -> Outcome:
    if condition(str(run.agent.options["condition"]), run.context):
        return Outcome(emit=[dict(run.payload)])
    return Outcome(logs=["condition false: message dropped"])


async def switch(run: AgentRun) -> Outcome:
    options = registry.SwitchOptions.model_validate(run.agent.options)
    for case in options.cases:
        if condition(case.condition, run.context):
            return Outcome(
                emit=[dict(run.payload)],
                route_to=case.receiver,
                logs=[f"routed to {case.receiver}"],
            )
    if options.default:
        return Outcome(
            emit=[dict(run.payload)],
            route_to=options.default,
            logs=[f"no case matched: routed to default {options.default}"],
        )
    return Outcome(logs=["no case matched: message dropped"])


async def delay(run: AgentRun) -> Outcome:
    seconds = float(run.agent.options.get("seconds", 0))
    return Outcome(wait_until=utcnow() + timedelta(seconds=seconds), logs=[f"waiting {seconds:g}s"])


async def respond(run: AgentRun) -> Outcome:
    options = run.options()
    body = options.get("body")
    if body is None:
        body = dict(run.payload)
    response = {
        "status": int(options.get("status", 200)),
        "headers": {str(k): str(v) for k, v in (options.get("headers") or {}).items()},
        "body": body,
    }
    return Outcome(response=response, logs=[f"responded {response['status']}"])


async def http_request(run: AgentRun) -> Outcome:
    options = registry.HttpRequestOptions.model_validate(run.options())
    await run.check_url(options.url)
    headers = dict(options.headers)
    if options.credential:
        require_for_process(run.process.privileges, "credential:read", "use credentials")
        value = await run.resolve_credential(options.credential)
        headers[options.credential_header] = options.credential_format.replace("{value}", value)
    kwargs: dict[str, Any] = {"headers": headers, "timeout": options.timeout_seconds}
    if options.body is not None and options.method not in ("GET", "HEAD"):
        if isinstance(options.body, dict | list):
            kwargs["json"] = options.body
        else:
            kwargs["content"] = str(options.body)
    try:
        response = await run.http().request(options.method, options.url, **kwargs)
    except httpx.HTTPError as exc:
        raise StepFailed(
            f"{options.method} {options.url} failed: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        body: Any = jsonsafe.loads(response.content, max_bytes=None)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text
    if response.status_code >= 400:
        raise StepFailed(f"{options.method} {options.url} answered {response.status_code}")
    return Outcome(
        emit=[{"status": response.status_code, "headers": dict(response.headers), "body": body}],
        logs=[f"{options.method} {options.url} -> {response.status_code}"],
    )


async def scenario_action(run: AgentRun) -> Outcome:
    options = registry.ScenarioActionOptions.model_validate(run.options())
    require_for_process(run.process.privileges, "process:run", "perform scenario actions")
    done = await run.scenario_action(
        options.process_id, options.action, options.actor, options.response
    )
    return Outcome(emit=[done], logs=[f"performed {options.action} on {options.process_id}"])


HANDLERS: dict[str, Handler] = {
    "webhook": trigger,
    "http": trigger,
    "schedule": trigger,
    "manual": trigger,
    "form": trigger,
    "message": message,
    "transform": transform,
    "filter": filter_,
    "switch": switch,
    "delay": delay,
    "respond": respond,
    "http_request": http_request,
    "scenario_action": scenario_action,
}

assert set(HANDLERS) == set(registry.REGISTRY), "every registered agent type needs a handler"
