"""Huginn / ActiveWorkflow naming: agent class names and export file names."""

from __future__ import annotations

import re


def huginn_type(flowql_type: str) -> str:
    """`http_request` -> `Agents::HttpRequestAgent`."""
    return "Agents::" + "".join(part.capitalize() for part in flowql_type.split("_")) + "Agent"


def flowql_type(huginn: str) -> str:
    """`Agents::HttpRequestAgent` -> `http_request` (a bare flowql type passes through)."""
    name = huginn.removeprefix("Agents::")
    if name == huginn and not name.endswith("Agent"):
        return huginn
    name = name.removesuffix("Agent")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def export_filename(name: str) -> str:
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9_-]", "-", name.lower())).strip("-")
    return (slug or "exported-agents") + ".json"
