"""Agents that act on the workflow rather than on messages: Huginn's CommanderAgent (`commander`:
runs, enables, disables or configures the agents it controls through its control links) and
DataOutputAgent (`data_output`: keeps the messages it receives and serves them as an RSS or JSON
feed at /feeds/{agent id}/{secret}.xml|.json, see flowql/triggers/feeds.py).
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from flowql.agents.base import REDACTED, AgentRun, AgentType, Kind, Options, Outcome, StepFailed
from flowql.agents.templating import TemplateError, render
from flowql.auth.privileges import require_for_process

# -- commander ---------------------------------------------------------------------------------

ACTIONS = ("run", "enable", "disable", "configure")


class CommanderOptions(Options):
    action: str = Field(description="run, enable, disable or configure (may be a template)")
    configure_options: dict[str, Any] = Field(
        default_factory=dict, description="Merged into each target's options by `configure`"
    )
    expected_receive_period_in_days: int | float | str | None = None

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        if value not in ACTIONS and "{" not in value:
            raise ValueError(f"must be one of {', '.join(ACTIONS)} (or a template)")
        return value


async def commander(run: AgentRun) -> Outcome:
    options = run.options()
    action = str(options.get("action", "")).strip()
    if action not in ACTIONS:
        raise StepFailed(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    if run.control is None:
        raise StepFailed("this engine lends commanders no control")
    privilege = "process:run" if action == "run" else "workflow:write"
    require_for_process(run.process.privileges, privilege, f"{action} other agents")
    configure = options.get("configure_options") or {}
    done = await run.control(action, configure if isinstance(configure, dict) else {})
    return Outcome(logs=done or [f"{action}: no agents to control"])


# -- data_output -------------------------------------------------------------------------------

DEFAULT_ITEMS = 40
NAMESPACES = {
    "ns_media": ("media", "http://search.yahoo.com/mrss/"),
    "ns_itunes": ("itunes", "http://www.itunes.com/dtds/podcast-1.0.dtd"),
}


class DataOutputOptions(Options):
    secrets: list[str] | str = Field(
        description="The feed is at /feeds/{id}/{secret}: a list of them (encrypted at rest, "
        'shown as "********", which sent back keeps them)'
    )
    expected_receive_period_in_days: int | float | str | None = None
    template: dict[str, Any] = Field(
        default_factory=dict,
        description="title, description, link, icon and `item` (templates over each message)",
    )
    events_to_show: int = Field(default=DEFAULT_ITEMS, ge=1, le=1000)
    ttl: int | str | None = None
    ns_media: bool | str | None = None
    ns_itunes: bool | str | None = None
    rss_content_type: str | None = None
    response_headers: dict[str, str] | None = None
    events_order: Any = None
    push_hubs: Any = None

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, str):
            if value != REDACTED:
                raise ValueError("secrets must be a list")
            return value
        if not value:
            raise ValueError("secrets must have at least one secret")
        for secret in value:
            if not secret or "/" in secret or "." in secret:
                raise ValueError("secrets are non-empty and have no '/' or '.'")
        return value


async def data_output(run: AgentRun) -> Outcome:
    """Keeps the newest `events_to_show` messages (in its memory) for the feed."""
    if run.mode == "check":
        return Outcome()
    limit = int(run.agent.options.get("events_to_show") or DEFAULT_ITEMS)
    held = run.memory.get("messages")
    kept = [{"payload": dict(run.payload), "at": datetime.now(UTC).isoformat()}]
    kept.extend(held if isinstance(held, list) else [])
    run.memory["messages"] = kept[:limit]
    return Outcome(logs=[f"feed holds {len(run.memory['messages'])} message(s)"])


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def _render(value: Any, payload: dict[str, Any], extra: dict[str, Any]) -> Any:
    try:
        return render(value, {**payload, **extra, "message": payload})
    except TemplateError as exc:
        return f"(template error: {exc})"


def feed(options: dict[str, Any], memory: dict[str, Any], url: str) -> dict[str, Any]:
    """The feed as Huginn's JSON output has it: channel fields and one item per message."""
    held = memory.get("messages")
    messages = [m for m in (held if isinstance(held, list) else []) if isinstance(m, dict)]
    template = options.get("template") if isinstance(options.get("template"), dict) else {}
    assert isinstance(template, dict)
    payloads = [dict(m.get("payload") or {}) for m in messages]
    channel_context = {"events": payloads, "messages": payloads}
    item_template = template.get("item") if isinstance(template.get("item"), dict) else None
    items = []
    for message, payload in zip(messages, payloads, strict=True):
        item = _render(item_template, payload, {}) if item_template else dict(payload)
        if not isinstance(item, dict):
            item = {"value": item}
        item.setdefault("pubDate", _rfc822(message.get("at")))
        items.append(item)
    return {
        "title": str(_render(template.get("title", "Feed"), {}, channel_context)),
        "description": str(_render(template.get("description", ""), {}, channel_context)),
        "link": str(_render(template.get("link", url), {}, channel_context)),
        "icon": _render(template.get("icon"), {}, channel_context),
        "pubDate": items[0]["pubDate"] if items else _rfc822(None),
        "items": items,
    }


def _rfc822(at: Any) -> str:
    try:
        when = datetime.fromisoformat(str(at)) if at else datetime.now(UTC)
    except ValueError:
        when = datetime.now(UTC)
    return format_datetime(when if when.tzinfo else when.replace(tzinfo=UTC))


def _element(parent: ET.Element, name: str, value: Any) -> None:
    if isinstance(value, list):
        for item in value:
            _element(parent, name, item)
        return
    child = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, attr in (value.get("_attributes") or {}).items():
            child.set(str(key), str(attr))
        contents = value.get("_contents")
        if contents is not None:
            child.text = str(contents)
        for key, inner in value.items():
            if key not in ("_attributes", "_contents"):
                _element(child, str(key), inner)
    elif value is not None:
        child.text = str(value)


def rss(options: dict[str, Any], data: dict[str, Any], url: str) -> bytes:
    """The feed as RSS 2.0, Huginn's namespaces (media, itunes) declared when asked for."""
    root = ET.Element("rss", {"version": "2.0", "xmlns:atom": "http://www.w3.org/2005/Atom"})
    for option, (prefix, uri) in NAMESPACES.items():
        if _truthy(options.get(option)):
            root.set(f"xmlns:{prefix}", uri)
    channel = ET.SubElement(root, "channel")
    ET.SubElement(channel, "atom:link", {"href": url, "rel": "self", "type": "application/rss+xml"})
    if data.get("icon"):
        ET.SubElement(channel, "atom:icon").text = str(data["icon"])
    for key in ("title", "description", "link"):
        ET.SubElement(channel, key).text = str(data[key])
    ET.SubElement(channel, "lastBuildDate").text = _rfc822(None)
    ET.SubElement(channel, "pubDate").text = str(data["pubDate"])
    if options.get("ttl") not in (None, ""):
        ET.SubElement(channel, "ttl").text = str(options["ttl"])
    for item in data["items"]:
        element = ET.SubElement(channel, "item")
        for key, value in item.items():
            _element(element, str(key), value)
        if "guid" not in item:
            guid = ET.SubElement(element, "guid", {"isPermaLink": "false"})
            guid.text = hashlib.sha256(
                json.dumps(item, sort_keys=True, default=str).encode()
            ).hexdigest()
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8" ?>\n' + body).encode()


FeedFormat = Literal["json", "xml"]

TYPES: tuple[AgentType, ...] = (
    AgentType(
        "commander",
        Kind.ACTION,
        CommanderOptions,
        "Run, enable, disable or configure the agents it controls",
        commander,
        emits="Nothing: it runs, enables, disables or configures the agents it controls",
        example={"action": "run"},
    ),
    AgentType(
        "data_output",
        Kind.ACTION,
        DataOutputOptions,
        "Serve the messages it receives as an RSS or JSON feed",
        data_output,
        local=True,
        secret_options=("secrets",),
        emits="Nothing: it serves what it receives as a feed at /feeds/{id}/{secret}.xml or .json",
        example={
            "secrets": ["a-secret-key"],
            "expected_receive_period_in_days": 2,
            "template": {
                "title": "XKCD comics as a feed",
                "description": "This is a feed of recent XKCD comics, generated by Huginn",
                "item": {
                    "title": "{{title}}",
                    "description": "Secret hovertext: {{hovertext}}",
                    "link": "{{url}}",
                },
            },
            "ns_media": "true",
        },
    ),
)
