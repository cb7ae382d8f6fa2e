"""flowql's own agent types: triggers, outbound HTTP, and the local steps (transform, filter,
switch, delay, respond, message, scenario_action)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowql import jsonsafe
from flowql.agents.base import AgentRun, AgentType, Kind, Options, Outcome, StepFailed
from flowql.agents.templating import condition
from flowql.auth.privileges import require_for_process
from flowql.models import utcnow


class WebhookOptions(Options):
    path: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._~/-]+$")
    secret: str | None = Field(default=None, description="Shared secret (header X-Flowql-Secret)")
    hmac_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key (X-Flowql-Signature)"
    )
    outputs: list[str] = Field(default_factory=list)
    # Huginn's WebhookAgent options (engine/hooks.py honours them).
    verbs: str | list[str] | None = Field(
        default=None, description='Methods accepted, e.g. "post,put" (unset: any)'
    )
    payload_path: str | None = Field(default=None, description="The part of the request kept")
    response: str | None = Field(default=None, description="Body answered instead of 202 JSON")
    code: int | str | None = Field(default=None, description="Status answered (default 201)")
    response_headers: dict[str, str] | None = None
    expected_receive_period_in_days: int | float | str | None = None


class HttpTriggerOptions(Options):
    path: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._~/-]+$")
    timeout_seconds: float = Field(default=30, gt=0, le=300)
    outputs: list[str] = Field(default_factory=list)


class ScheduleOptions(Options):
    cron: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        # Five fields, or six with seconds FIRST (as Quartz, Spring and node-cron read them:
        # `*/5 * * * * *` is every five seconds); services.triggers.next_fire_time reads them
        # the same way. Seven (a year field) are refused.
        if not croniter.is_valid(value, second_at_beginning=True):
            raise ValueError("not a valid cron expression")
        fields = len(value.split())
        if not value.strip().startswith("@") and fields not in (5, 6):
            raise ValueError(
                "a cron expression has five fields (minute hour day-of-month month "
                f"day-of-week) or six with seconds first; got {fields}"
            )
        return value


class ManualOptions(Options):
    outputs: list[str] = Field(default_factory=list)


class FormTriggerOptions(Options):
    form_id: str | None = None


class HttpRequestOptions(Options):
    url: str = Field(min_length=1, max_length=4000)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    credential: str | None = Field(default=None, description="Name of a credential to inject")
    credential_header: str = "Authorization"
    credential_format: str = "Bearer {value}"
    timeout_seconds: float = Field(default=30, gt=0, le=300)


class TransformOptions(Options):
    payload: dict[str, Any] = Field(default_factory=dict)
    merge: bool = False


class FilterOptions(Options):
    condition: str = Field(min_length=1, description="Liquid expression, e.g. message.amount > 10")


class SwitchCase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    condition: str = Field(min_length=1)
    receiver: str = Field(min_length=1, description="Name of the receiving agent")


class SwitchOptions(Options):
    cases: list[SwitchCase] = Field(min_length=1)
    default: str | None = None


class DelayOptions(Options):
    seconds: float = Field(ge=0, le=366 * 24 * 3600)


class RespondOptions(Options):
    status: int = Field(default=200, ge=100, le=599)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None


class ScenarioActionOptions(Options):
    process_id: str = Field(min_length=1, description="The scenario process (a template)")
    action: str = Field(min_length=1)
    actor: str = Field(default="service:flowql", min_length=1)
    response: Any = None


class MessageOptions(Options):
    payload: dict[str, Any] | None = None


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
    options = SwitchOptions.model_validate(run.agent.options)
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
    options = HttpRequestOptions.model_validate(run.options())
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
    options = ScenarioActionOptions.model_validate(run.options())
    require_for_process(run.process.privileges, "process:run", "perform scenario actions")
    done = await run.scenario_action(
        options.process_id, options.action, options.actor, options.response
    )
    return Outcome(emit=[done], logs=[f"performed {options.action} on {options.process_id}"])


TYPES: tuple[AgentType, ...] = (
    AgentType(
        "webhook",
        Kind.TRIGGER,
        WebhookOptions,
        "Inbound HTTP at /hooks/{workflow}/{path}",
        trigger,
        local=True,
        secret_options=("secret", "hmac_secret"),
        emits="The request: JSON body fields (or form fields, or `body`) and query parameters.",
        example={"path": "orders", "secret": "change-me"},
    ),
    AgentType(
        "http",
        Kind.TRIGGER,
        HttpTriggerOptions,
        "Inbound HTTP held open for a respond",
        trigger,
        local=True,
        emits="The request, as a webhook does; a respond agent answers the waiting caller.",
        example={"path": "quote", "timeout_seconds": 10},
    ),
    AgentType(
        "schedule",
        Kind.TRIGGER,
        ScheduleOptions,
        "Cron in the workspace's timezone",
        trigger,
        local=True,
        emits="Its `payload` option, each time the cron fires (and when run by hand).",
        example={"cron": "0 9 * * 1-5", "payload": {"report": "daily"}},
    ),
    AgentType(
        "manual",
        Kind.TRIGGER,
        ManualOptions,
        "The executeWorkflow mutation",
        trigger,
        local=True,
        emits="The input given to executeWorkflow.",
        # The names given to the inputs WayScript's /run passes by position.
        example={"outputs": ["name", "email"]},
    ),
    AgentType(
        "form",
        Kind.TRIGGER,
        FormTriggerOptions,
        "A form submission",
        trigger,
        local=True,
        emits="The submitted fields, checked against the form.",
        # The id of the form (createForm) whose submissions start the workflow.
        example={"form_id": "0b7c5e2a-4f1d-4c8e-9a3b-6d2f1e0c9b8a"},
    ),
    AgentType(
        "http_request",
        Kind.ACTION,
        HttpRequestOptions,
        "Outbound HTTP call",
        http_request,
        emits="{status, headers, body} of the response (body parsed when JSON).",
        example={
            "url": "https://api.example.com/orders/{{ message.id }}",
            "method": "POST",
            "body": {"id": "{{ message.id }}", "total": "{{ message.total }}"},
        },
    ),
    AgentType(
        "transform",
        Kind.ACTION,
        TransformOptions,
        "Build a payload from templates",
        transform,
        local=True,
        emits="Its rendered `payload` (merged over the incoming message with `merge`).",
        example={"payload": {"email": "{{ message.email }}", "age": "{{ message.age }}"}},
    ),
    AgentType(
        "filter",
        Kind.ACTION,
        FilterOptions,
        "Pass or drop on a condition",
        filter_,
        local=True,
        emits="The incoming message, when the condition holds; nothing otherwise.",
        example={"condition": "message.amount > 10"},
    ),
    AgentType(
        "switch",
        Kind.ACTION,
        SwitchOptions,
        "Route to one of several receivers",
        switch,
        local=True,
        emits="The incoming message, to the receiver of the first case that holds.",
        example={
            "cases": [{"condition": 'message.kind == "refund"', "receiver": "refunds"}],
            "default": "orders",
        },
    ),
    AgentType(
        "delay",
        Kind.ACTION,
        DelayOptions,
        "A durable wait",
        delay,
        local=True,
        emits="The incoming message, after the wait.",
        example={"seconds": 60},
    ),
    AgentType(
        "respond",
        Kind.ACTION,
        RespondOptions,
        "The response of an http trigger",
        respond,
        local=True,
        emits="Nothing; the http trigger's caller gets {status, headers, body}.",
        example={"status": 200, "body": {"ok": True, "id": "{{ message.id }}"}},
    ),
    AgentType(
        "message",
        Kind.ACTION,
        MessageOptions,
        "Emit what it is given",
        message,
        local=True,
        emits="Its rendered `payload`, or the incoming message.",
        example={"payload": {"text": "Hello {{ message.name }}"}},
    ),
    AgentType(
        "scenario_action",
        Kind.ACTION,
        ScenarioActionOptions,
        "Perform an action on a scenario process as a service actor",
        scenario_action,
        emits="What the action did to the scenario process.",
        example={"process_id": "{{ message.process_id }}", "action": "approve"},
    ),
)
