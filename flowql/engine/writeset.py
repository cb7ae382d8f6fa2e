"""A write set: everything a run changed since its last commit, as rows built in memory and
written in one transaction with a few statements (one multi-row INSERT per table), whatever the
number of steps, messages and log lines.

It runs as a function of a synchronous connection (`Database.write`): on SQLite the writer
thread runs many processes' write sets in one transaction, so a whole batch is one hop.

Guards keep a stale runner from writing: the process must still have the status the run last
wrote (a cancelled process has not), and every step the run changes must still have the status
and attempt it last saw (a second runner handed the same process has moved it on). A failed
guard raises `Lost` and the write set rolls back whole.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Executable, Table, bindparam, insert, or_, select, update
from sqlmodel import SQLModel

from flowql.db import HOT, PlanClock
from flowql.models import (
    Agent,
    Message,
    Process,
    ProcessLog,
    ProcessStatus,
    ProcessStep,
    StepStatus,
    Trigger,
    WebhookDelivery,
    Workflow,
)
from flowql.services import outbox
from flowql.services.processes import new_row

__all__ = ["new_row"]


class Lost(Exception):
    """The process was cancelled, or another runner moved it on: this run's work is discarded."""


class MemoryConflict(Lost):
    """Another run saved an agent's memory since this run read it: this run's work is discarded
    and the process runs again from what was committed (its steps see the new memory)."""


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


PROCESSES = _table(Process)
STEPS = _table(ProcessStep)
MESSAGES = _table(Message)
# Parents before children (foreign keys are checked per statement).
CHILD_TABLES = (MESSAGES, STEPS, _table(ProcessLog))
STEP_FIELDS = (
    "status",
    "attempt",
    "started_at",
    "finished_at",
    "next_attempt_at",
    "error",
    "output_message_ids",
)
PROCESS_FIELDS = (
    "status",
    "error",
    "response",
    "started_at",
    "completed_at",
    "last_activity_at",
    "wake_at",
)
# Statements are built once: building one per commit costs more than running it.
STEP_UPDATE = (
    update(STEPS)
    .where(STEPS.c.id == bindparam("_id"))
    .where(STEPS.c.status == bindparam("_status"))
    .where(STEPS.c.attempt == bindparam("_attempt"))
    .values({key: bindparam(key) for key in STEP_FIELDS})
)
# Last-run times move at most once a second: under load, concurrent runs of one workflow would
# otherwise queue on its row lock (PostgreSQL) until each commits.
WORKFLOWS, TRIGGERS = _table(Workflow), _table(Trigger)
WORKFLOW_RAN = (
    update(WORKFLOWS)
    .where(WORKFLOWS.c.id == bindparam("_id"))
    .where(or_(WORKFLOWS.c.last_run_at.is_(None), WORKFLOWS.c.last_run_at < bindparam("_before")))
    .values(last_run_at=bindparam("at"))
    .execution_options(**{HOT: True})  # nothing a hook plan holds (db.PlanClock)
)
TRIGGER_FIRED = (
    update(TRIGGERS)
    .where(TRIGGERS.c.id == bindparam("_id"))
    .where(or_(TRIGGERS.c.last_fired_at.is_(None), TRIGGERS.c.last_fired_at < bindparam("_before")))
    .values(last_fired_at=bindparam("at"))
    .execution_options(**{HOT: True})
)
LAST_RUN_RESOLUTION = timedelta(seconds=1)
# An agent's memory is written only where its version is still the one the run read: two runs
# of one agent never overwrite each other's memory (the loser runs again, see MemoryConflict).
AGENTS = _table(Agent)
MEMORY_SAVED = (
    update(AGENTS)
    .where(AGENTS.c.id == bindparam("_id"))
    .where(AGENTS.c.memory_version == bindparam("_version"))
    .values(memory=bindparam("memory"), memory_version=bindparam("version"))
)
_INSERTS: dict[Table, Executable] = {}
_PROCESS_UPDATES: dict[tuple[str, ...], Executable] = {}


def _insert(table: Table) -> Executable:
    statement = _INSERTS.get(table)
    if statement is None:
        statement = _INSERTS[table] = insert(table)
    return statement


def _process_update(keys: tuple[str, ...]) -> Executable:
    statement = _PROCESS_UPDATES.get(keys)
    if statement is None:
        statement = _PROCESS_UPDATES[keys] = (
            update(PROCESSES)
            .where(PROCESSES.c.id == bindparam("_id"))
            .where(PROCESSES.c.status == bindparam("_status"))
            .values({key: bindparam(key) for key in keys})
        )
    return statement


@dataclass(frozen=True)
class _Prepared:
    """A statement compiled once for SQLite's driver: its SQL, the order of its parameters and
    each one's bind processor (the conversions SQLAlchemy would apply: UUIDs, times, JSON)."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    # What the statement log and db.PlanClock's listener see (its execution options).
    context: SimpleNamespace


_PREPARED: dict[tuple[int, tuple[str, ...] | None], tuple[Executable, _Prepared]] = {}


def _prepare(conn: Connection, statement: Executable, keys: tuple[str, ...] | None) -> _Prepared:
    found = _PREPARED.get((id(statement), keys))
    if found is not None and found[0] is statement:
        return found[1]
    compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=conn.dialect, column_keys=list(keys) if keys is not None else None
    )
    names = tuple(compiled.positiontup or ())
    processors = compiled._bind_processors
    prepared = _Prepared(
        sql=compiled.string,
        names=names,
        processors=tuple(processors.get(name) for name in names),
        context=SimpleNamespace(execution_options=statement.get_execution_options()),
    )
    _PREPARED[(id(statement), keys)] = (statement, prepared)
    return prepared


def execute(
    conn: Connection,
    statement: Executable,
    rows: list[dict[str, Any]],
    keys: tuple[str, ...] | None = None,
) -> tuple[int, int | None]:
    """Run `statement` for `rows` (an INSERT of the columns `keys`, or any statement of bound
    parameters); returns (rows changed, the last inserted row's number).

    On SQLite's own driver (the writer thread) the statement goes to the driver as compiled once,
    its parameters converted by the processors SQLAlchemy would use: per request, the cost of
    Core's execution (cache keys, parameter construction, result objects) was most of the write
    set's. Elsewhere (PostgreSQL, aiosqlite) it runs through Core. Either way the engine's
    statement listeners see it (the statement log, db.PlanClock)."""
    if conn.dialect.driver != "pysqlite":
        result = conn.execute(statement, rows if len(rows) > 1 else rows[0])
        key = result.inserted_primary_key if result.context.isinsert and len(rows) == 1 else None
        return result.rowcount, int(key[0]) if key and key[0] is not None else None
    prepared = _prepare(conn, statement, keys)
    params = [
        tuple(
            [
                value if process is None else process(value)
                for process, value in zip(
                    prepared.processors, map(row.__getitem__, prepared.names), strict=True
                )
            ]
        )
        for row in rows
    ]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    many = len(params) > 1
    conn.dispatch.before_cursor_execute(conn, cursor, prepared.sql, params, prepared.context, many)
    if many:
        cursor.executemany(prepared.sql, params)
    else:
        cursor.execute(prepared.sql, params[0])
    return cursor.rowcount, cursor.lastrowid


_KEYS: dict[type[SQLModel], tuple[str, ...]] = {}


def values(row: SQLModel) -> dict[str, Any]:
    """A row's columns for a Core INSERT (the database numbers it)."""
    model = type(row)
    keys = _KEYS.get(model)
    if keys is None:
        keys = _KEYS[model] = tuple(c.key for c in _table(model).columns if c.key != "number")
    loaded = row.__dict__  # what an instance holds (read past the ORM's attribute machinery)
    return {key: loaded[key] if key in loaded else getattr(row, key) for key in keys}


@dataclass
class Finish:
    event_type: str  # process.completed | process.failed
    summary: dict[str, Any]  # the outbox payload's process; output filled in below if unknown
    # The output comes from the process's messages in the database (a process that committed
    # before: its earlier messages are not in memory); `definition.sink_output` picks the sinks.
    output_from: Callable[[list[tuple[uuid.UUID, dict[str, Any]]]], Any] | None = None


@dataclass
class WriteSet:
    workspace_id: uuid.UUID
    process_id: uuid.UUID
    # A new process (its first commit): its event and row are inserted first.
    new_rows: list[SQLModel] = field(default_factory=list)
    # Or an existing one: these fields are updated where its status is still `process_status`.
    process_values: dict[str, Any] = field(default_factory=dict)
    process_status: ProcessStatus | None = None
    children: dict[Table, list[dict[str, Any]]] = field(default_factory=dict)
    # ((id, new values), status and attempt last seen) of steps already in the database
    step_changes: list[tuple[tuple[uuid.UUID, dict[str, Any]], StepStatus, int]] = field(
        default_factory=list
    )
    # Outbox events; summaries of this process in them get its number once it has one.
    outbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    finish: Finish | None = None
    # Agents' changed memory: agent id -> (memory, the version it was read at).
    memory: dict[uuid.UUID, tuple[dict[str, Any], int]] = field(default_factory=dict)
    # Further (statement, parameters), run last (e.g. WORKFLOW_RAN, TRIGGER_FIRED).
    statements: list[tuple[Executable, dict[str, Any]]] = field(default_factory=list)
    # Where the workspace's outbox subscriptions are kept between write sets (None: read each).
    clock: PlanClock | None = None

    def add(self, model: type[SQLModel], row: dict[str, Any]) -> None:
        self.children.setdefault(_table(model), []).append(row)

    def __call__(self, conn: Connection) -> tuple[int | None, Any]:
        """Returns (the new process's number or None, the output computed here or None).
        Runs again from the start if its transaction is retried."""
        number = None
        for row in self.new_rows:
            table = _table(type(row))
            row_values = values(row)
            _, last = execute(conn, _insert(table), [row_values], tuple(row_values))
            if isinstance(row, Process):
                number = last
        for summary in self.summaries:  # summaries made before the process had a number
            summary["number"] = number
        for table in CHILD_TABLES:
            rows = self.children.get(table)
            if rows:
                execute(conn, _insert(table), rows, tuple(rows[0]))
        for (step_id, change), status, attempt in self.step_changes:
            params = {"_id": step_id, "_status": status, "_attempt": attempt}
            if execute(conn, STEP_UPDATE, [{**change, **params}])[0] != 1:
                raise Lost(f"step {step_id} moved on")
        for agent_id, (memory, version) in self.memory.items():
            params = {
                "_id": agent_id,
                "_version": version,
                "memory": memory,
                "version": version + 1,
            }
            if conn.execute(MEMORY_SAVED, params).rowcount != 1:
                raise MemoryConflict(f"agent {agent_id}'s memory changed since it was read")
        output = None
        if self.finish is not None and self.finish.output_from is not None:
            messages = conn.execute(
                select(MESSAGES.c.agent_id, MESSAGES.c.payload)
                .where(MESSAGES.c.process_id == self.process_id)
                .order_by(MESSAGES.c.number)
            ).all()
            output = self.finish.output_from([(a, p) for a, p in messages])
            self.process_values["output"] = output
            self.finish.summary["output"] = output
        if self.process_status is not None:
            keys = tuple(sorted(self.process_values))
            params = {**self.process_values, "_id": self.process_id, "_status": self.process_status}
            if execute(conn, _process_update(keys), [params])[0] != 1:
                raise Lost(f"process {self.process_id} is no longer {self.process_status.value}")
        events = list(self.outbox)
        if self.finish is not None:
            events.append((self.finish.event_type, {"process": self.finish.summary}))
        self._enqueue(conn, events)
        for statement, parameters in self.statements:
            execute(conn, statement, [parameters])
        return number, output

    def _subscriptions(self, conn: Connection) -> list[tuple[uuid.UUID, list[str]]]:
        """The workspace's active outbox subscriptions: read once and kept until this process
        writes webhook_subscriptions (or db.CACHE_TTL passes), see db.PlanClock."""
        key = ("subscriptions", self.workspace_id)
        clock = self.clock
        if clock is not None:
            known, kept = clock.recall(key)
            if known:
                return list(kept)
        generation = clock.generation if clock is not None else 0
        found = conn.execute(outbox.subscriptions_query(self.workspace_id)).all()
        subscriptions = [(row[0], list(row[1])) for row in found]
        if clock is not None:
            clock.keep(key, generation, tuple(subscriptions))
        return subscriptions

    def _enqueue(self, conn: Connection, events: list[tuple[str, dict[str, Any]]]) -> None:
        if not events:
            return
        subscriptions = self._subscriptions(conn)
        if not subscriptions:
            return
        rows = [
            values(row)
            for event_type, data in events
            for row in outbox.deliveries(subscriptions, self.workspace_id, event_type, data)
        ]
        if rows:
            execute(conn, _insert(_table(WebhookDelivery)), rows, tuple(rows[0]))
