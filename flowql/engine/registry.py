"""The agent types flowql knows, each with a typed options schema checked when an agent is saved.

Options may hold Liquid templates (`{{ message.email }}`); they are rendered over the incoming
message when the agent runs, so the schema checks shape here, not rendered values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flowql.engine.templating import check_syntax
from flowql.errors import ValidationFailed


class Kind(StrEnum):
    TRIGGER = "trigger"
    ACTION = "action"


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookOptions(Options):
    path: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._~/-]+$")
    secret: str | None = Field(default=None, description="Shared secret (header X-Flowql-Secret)")
    hmac_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key (X-Flowql-Signature)"
    )
    outputs: list[str] = Field(default_factory=list)


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

        if not croniter.is_valid(value):
            raise ValueError("not a valid cron expression")
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


@dataclass(frozen=True)
class AgentType:
    name: str
    kind: Kind
    options: type[Options]
    description: str


REGISTRY: dict[str, AgentType] = {
    t.name: t
    for t in (
        AgentType(
            "webhook", Kind.TRIGGER, WebhookOptions, "Inbound HTTP at /hooks/{workflow}/{path}"
        ),
        AgentType("http", Kind.TRIGGER, HttpTriggerOptions, "Inbound HTTP held open for a respond"),
        AgentType("schedule", Kind.TRIGGER, ScheduleOptions, "Cron in the workspace's timezone"),
        AgentType("manual", Kind.TRIGGER, ManualOptions, "The executeWorkflow mutation"),
        AgentType("form", Kind.TRIGGER, FormTriggerOptions, "A form submission"),
        AgentType("http_request", Kind.ACTION, HttpRequestOptions, "Outbound HTTP call"),
        AgentType("transform", Kind.ACTION, TransformOptions, "Build a payload from templates"),
        AgentType("filter", Kind.ACTION, FilterOptions, "Pass or drop on a condition"),
        AgentType("switch", Kind.ACTION, SwitchOptions, "Route to one of several receivers"),
        AgentType("delay", Kind.ACTION, DelayOptions, "A durable wait"),
        AgentType("respond", Kind.ACTION, RespondOptions, "The response of an http trigger"),
        AgentType("message", Kind.ACTION, MessageOptions, "Emit what it is given"),
        AgentType(
            "scenario_action",
            Kind.ACTION,
            ScenarioActionOptions,
            "Perform an action on a scenario process as a service actor",
        ),
    )
}


SECRET_OPTIONS: dict[str, tuple[str, ...]] = {"webhook": ("secret", "hmac_secret")}


def secret_fields(type_name: str) -> tuple[str, ...]:
    """Options whose values are secrets: encrypted at rest and never returned."""
    return SECRET_OPTIONS.get(type_name, ())


def get_type(name: str, field: str = "type") -> AgentType:
    agent_type = REGISTRY.get(name)
    if agent_type is None:
        raise ValidationFailed.one(
            field, f"unknown agent type {name!r}; known: {', '.join(REGISTRY)}"
        )
    return agent_type


def validate_options(type_name: str, options: dict[str, Any], field: str = "options") -> Options:
    agent_type = get_type(type_name)
    try:
        parsed = agent_type.options.model_validate(options)
    except ValidationError as exc:
        fields = {
            ".".join([field, *(str(p) for p in err["loc"])]): err["msg"] for err in exc.errors()
        }
        raise ValidationFailed(fields) from None
    problems = check_syntax(options, field)
    if type_name in ("filter",) and "condition" in options:
        problems.update(
            check_syntax(
                "{% if " + str(options["condition"]) + " %}{% endif %}", f"{field}.condition"
            )
        )
    if problems:
        raise ValidationFailed(problems)
    return parsed
