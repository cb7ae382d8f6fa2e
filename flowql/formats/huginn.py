"""Huginn / ActiveWorkflow naming: agent class names, schedules and export file names.

A Huginn agent class `Agents::HttpStatusAgent` is flowql's `http_status` and back; a few
ActiveWorkflow/Huginn names differ from the rule and are listed in `_TO_FLOWQL`.
"""

from __future__ import annotations

import re

# Huginn class name (without `Agents::`) -> flowql type, where the rule below does not give it.
_TO_FLOWQL: dict[str, str] = {}
_TO_HUGINN: dict[str, str] = {v: k for k, v in _TO_FLOWQL.items()}


def huginn_type(flowql_type: str) -> str:
    """`http_request` -> `Agents::HttpRequestAgent`."""
    special = _TO_HUGINN.get(flowql_type)
    if special is not None:
        return "Agents::" + special
    return "Agents::" + "".join(part.capitalize() for part in flowql_type.split("_")) + "Agent"


def flowql_type(huginn: str) -> str:
    """`Agents::HttpRequestAgent` -> `http_request` (a bare flowql type passes through)."""
    name = huginn.removeprefix("Agents::")
    if name == huginn and not name.endswith("Agent"):
        return huginn
    special = _TO_FLOWQL.get(name)
    if special is not None:
        return special
    name = name.removesuffix("Agent")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def export_filename(name: str) -> str:
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9_-]", "-", name.lower())).strip("-")
    return (slug or "exported-agents") + ".json"


# -- schedules ---------------------------------------------------------------------------------

# Huginn's `every_N<unit>` schedules as cron (Huginn's own list; the day ones run at midnight).
_EVERY: dict[str, str] = {
    "every_1m": "* * * * *",
    "every_2m": "*/2 * * * *",
    "every_5m": "*/5 * * * *",
    "every_10m": "*/10 * * * *",
    "every_30m": "*/30 * * * *",
    "every_1h": "0 * * * *",
    "every_2h": "0 */2 * * *",
    "every_5h": "0 */5 * * *",
    "every_12h": "0 */12 * * *",
    "every_1d": "0 0 * * *",
    "every_2d": "0 0 */2 * *",
    "every_7d": "0 0 * * 0",
}
_CLOCK = re.compile(r"^(?:(\d{1,2})(am|pm)|(\d{1,2})h)$")


def schedule_cron(schedule: str | None) -> str | None:
    """The cron expression of a Huginn/ActiveWorkflow schedule; None for no schedule ("never").

    Huginn: every_1m .. every_7d, midnight, noon, 1am .. 11pm; ActiveWorkflow also writes the
    hour of the day as `0h` .. `23h`. Raises ValueError for anything else.
    """
    if schedule is None or schedule.strip() in ("", "never"):
        return None
    value = schedule.strip().lower()
    if value in _EVERY:
        return _EVERY[value]
    if value == "midnight":
        return "0 0 * * *"
    if value == "noon":
        return "0 12 * * *"
    match = _CLOCK.match(value)
    if match is not None:
        if match.group(3) is not None:
            hour = int(match.group(3))
            if hour <= 23:
                return f"0 {hour} * * *"
        else:
            hour = int(match.group(1))
            if 1 <= hour <= 12:
                hour = hour % 12 + (12 if match.group(2) == "pm" else 0)
                return f"0 {hour} * * *"
    known = ", ".join([*_EVERY, "midnight", "noon", "1am..11pm", "0h..23h", "never"])
    raise ValueError(f"unknown schedule {schedule!r}; known: {known}")
