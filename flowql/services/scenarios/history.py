"""A process's history in the database (ProcessEvent rows) and as LetsFlow events.

Rows keep what the hash covers: instantiate events keep the start instructions (`actors`,
`vars`) in `response`; the process id and the scenario id come from the Process row. So every
hash can be recomputed from the rows alone, and an edited row breaks the chain.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.errors import Conflict
from flowql.models import Process, ProcessEvent, Scenario
from flowql.services.scenarios.process import (
    ReplayError,
    event_hash,
    event_kind,
    iso,
    parse_iso,
    replay,
)


def event_json(row: ProcessEvent, process: Process) -> dict[str, Any]:
    """The LetsFlow event a row records (with its stored hash)."""
    timestamp = iso(row.created_at)
    if row.type == "instantiate":
        start = row.response if isinstance(row.response, dict) else {}
        event: dict[str, Any] = {
            "id": str(process.id),
            "timestamp": timestamp,
            "scenario": str(process.scenario_id),
            "actors": start.get("actors") or {},
            "vars": start.get("vars") or {},
        }
    elif row.type == "timeout":
        event = {"previous": row.previous_hash, "timestamp": timestamp}
    else:
        event = {
            "previous": row.previous_hash,
            "timestamp": timestamp,
            "action": row.action,
            "actor": row.actor,
            "response": row.response,
            "skipped": row.skipped,
        }
        if row.skipped:
            event["errors"] = list(row.errors)
    return {**event, "hash": row.hash}


def event_row(event: dict[str, Any], process: Process) -> ProcessEvent:
    kind = event_kind(event)
    return ProcessEvent(
        workspace_id=process.workspace_id,
        process_id=process.id,
        type=kind,
        action=event.get("action"),
        actor=event.get("actor"),
        response=(
            {"actors": event["actors"], "vars": event["vars"]}
            if kind == "instantiate"
            else event.get("response")
        ),
        skipped=bool(event.get("skipped")),
        errors=list(event.get("errors") or []),
        previous_hash=event.get("previous", ""),
        hash=event["hash"],
        created_at=parse_iso(event["timestamp"]),
    )


async def event_rows(session: AsyncSession, process_id: uuid.UUID) -> list[ProcessEvent]:
    stmt = (
        select(ProcessEvent)
        .where(ProcessEvent.process_id == process_id)
        .order_by(col(ProcessEvent.number))
    )
    return list((await session.exec(stmt)).all())


def project(scenario: Scenario, process: Process, rows: list[ProcessEvent]) -> dict[str, Any]:
    """The process (LetsFlow process JSON) its events project to; CONFLICT when they do not
    replay (an altered history: `verifyProcess` says where)."""
    try:
        return replay(scenario.definition, [event_json(row, process) for row in rows])
    except ReplayError as exc:
        raise Conflict(f"the process's history does not replay: {exc}") from None


async def load_view(session: AsyncSession, process: Process, scenario: Scenario) -> dict[str, Any]:
    return project(scenario, process, await event_rows(session, process.id))


@dataclass(frozen=True)
class Verification:
    valid: bool
    events: int
    broken_at: int | None = None  # index of the first event that does not verify
    event_id: uuid.UUID | None = None
    reason: str | None = None


def verify(scenario: Scenario, process: Process, rows: list[ProcessEvent]) -> Verification:
    """Check the hash chain event by event, then that the process row matches its replay."""
    previous = ""
    for index, row in enumerate(rows):
        if (row.type == "instantiate") != (index == 0):
            return _broken(rows, index, "the first event, and only it, instantiates the process")
        if row.previous_hash != previous:
            return _broken(rows, index, "does not link to the hash of the event before it")
        if event_hash(event_json(row, process)) != row.hash:
            return _broken(rows, index, "its content does not match its hash")
        previous = row.hash
    if not rows:
        return Verification(False, 0, None, None, "the process has no history")
    try:
        view = replay(scenario.definition, [event_json(row, process) for row in rows])
    except ReplayError as exc:
        return Verification(False, len(rows), None, None, str(exc))
    stored = (process.state, process.actors, process.vars, process.result)
    projected = (view["current"]["key"], view["actors"], view["vars"], view["result"])
    if stored != projected:
        return Verification(
            False, len(rows), None, None, "the process's state does not match its history"
        )
    return Verification(True, len(rows))


def _broken(rows: list[ProcessEvent], index: int, reason: str) -> Verification:
    return Verification(False, len(rows), index, rows[index].id, f"event {index}: {reason}")
