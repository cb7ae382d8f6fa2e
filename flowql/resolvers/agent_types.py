"""The catalog of agent types (`agentTypes`): what each does, its options as JSON Schema with
their defaults, an example that validates, and what it emits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from flowql.agents.base import AgentType, Kind
from flowql.agents.registry import REGISTRY
from flowql.resolvers.context import Context

# Examples and emits for the agent types that declare none (flowql's own, in agents/core.py).
_EXAMPLES: dict[str, dict[str, Any]] = {
    "webhook": {"path": "orders", "secret": "change-me"},
    "http": {"path": "quote", "timeout_seconds": 10},
    "schedule": {"cron": "0 9 * * 1-5", "payload": {"report": "daily"}},
    "manual": {},
    "form": {},
    "http_request": {
        "url": "https://api.example.com/orders/{{ message.id }}",
        "method": "POST",
        "body": {"id": "{{ message.id }}", "total": "{{ message.total }}"},
    },
    "transform": {"payload": {"email": "{{ message.email }}", "age": "{{ message.age }}"}},
    "filter": {"condition": "message.amount > 10"},
    "switch": {
        "cases": [{"condition": 'message.kind == "refund"', "receiver": "refunds"}],
        "default": "orders",
    },
    "delay": {"seconds": 60},
    "respond": {"status": 200, "body": {"ok": True, "id": "{{ message.id }}"}},
    "message": {"payload": {"text": "Hello {{ message.name }}"}},
    "scenario_action": {"process_id": "{{ message.process_id }}", "action": "approve"},
}
_EMITS: dict[str, str] = {
    "webhook": "The request: JSON body fields (or form fields, or `body`) and query parameters.",
    "http": "The request, as a webhook does; a respond agent answers the waiting caller.",
    "schedule": "Its `payload` option, each time the cron fires (and when run by hand).",
    "manual": "The input given to executeWorkflow.",
    "form": "The submitted fields, checked against the form.",
    "http_request": "{status, headers, body} of the response (body parsed when JSON).",
    "transform": "Its rendered `payload` (merged over the incoming message with `merge`).",
    "filter": "The incoming message, when the condition holds; nothing otherwise.",
    "switch": "The incoming message, to the receiver of the first case that holds.",
    "delay": "The incoming message, after the wait.",
    "respond": "Nothing; the http trigger's caller gets {status, headers, body}.",
    "message": "Its rendered `payload`, or the incoming message.",
    "scenario_action": "What the action did to the scenario process.",
}


@dataclass
class AgentTypeInfo:
    name: str
    kind: str
    description: str
    is_trigger: bool
    options_schema: dict[str, Any]
    defaults: dict[str, Any]
    example: dict[str, Any]
    emits: str
    secret_options: list[str]


def _defaults(agent_type: AgentType) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, info in agent_type.options.model_fields.items():
        if info.is_required():
            continue
        value = info.get_default(call_default_factory=True)
        found[name] = TypeAdapter(Any).dump_python(value, mode="json")
    return found


def describe(agent_type: AgentType) -> AgentTypeInfo:
    return AgentTypeInfo(
        name=agent_type.name,
        kind=agent_type.kind.value,
        description=agent_type.description,
        is_trigger=agent_type.kind is Kind.TRIGGER,
        options_schema=agent_type.options.model_json_schema(),
        defaults=_defaults(agent_type),
        example=dict(agent_type.example or _EXAMPLES.get(agent_type.name, {})),
        emits=agent_type.emits or _EMITS.get(agent_type.name, ""),
        secret_options=list(agent_type.secret_options),
    )


def agent_types(ctx: Context, trigger: bool | None = None) -> list[AgentTypeInfo]:
    ctx.principal.ensure_authenticated()
    return [
        describe(t)
        for t in sorted(REGISTRY.values(), key=lambda t: (t.kind is not Kind.TRIGGER, t.name))
        if trigger is None or (t.kind is Kind.TRIGGER) == trigger
    ]


def agent_type(ctx: Context, name: str) -> AgentTypeInfo | None:
    ctx.principal.ensure_authenticated()
    found = REGISTRY.get(name)
    return describe(found) if found is not None else None
