"""SQLite's group commit (db.BatchWriter): write sets waiting together commit in one
transaction, each in its own savepoint (run on the driver), so one that fails rolls back alone.
And a write to a table the engine caches reads of moves db.PlanClock; the engine's last-run
times do not."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from flowql.db import HOT, create_database
from tests.conftest import make_settings


@pytest.fixture
def sqlite_file(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "writer.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


async def test_one_failing_write_set_rolls_back_alone(sqlite_file: str, tmp_path: Path) -> None:
    db = create_database(make_settings(sqlite_file, tmp_path))
    assert db.writer is not None
    try:
        names = [f"batch-{uuid.uuid4().hex[:8]}" for _ in range(3)]

        def insert(name: str, fail: bool) -> Callable[[Connection], str]:
            def work(conn: Connection) -> str:
                conn.execute(
                    text(
                        "INSERT INTO workspaces (id, created_at, name, plan, cron_timezone)"
                        " VALUES (:i, :t, :n, 'UNLIMITED', 'UTC')"
                    ),
                    {"i": uuid.uuid4().hex, "t": "2026-01-01 00:00:00.000000", "n": name},
                )
                if fail:
                    raise RuntimeError("this write set fails")
                return name

            return work

        log = db.statement_log
        log.start()
        outcomes = await asyncio.gather(
            *(db.write(insert(name, i == 1)) for i, name in enumerate(names)),
            return_exceptions=True,
        )
        statements = log.stop()
        assert outcomes[0] == names[0] and outcomes[2] == names[2]
        assert isinstance(outcomes[1], RuntimeError)
        assert log.commits == 1  # one transaction for the three
        assert statements.count("SAVEPOINT write_set") == 3
        assert statements.count("ROLLBACK TO SAVEPOINT write_set") == 1
        async with db.read() as session:
            found = (
                (
                    await session.execute(
                        text("SELECT name FROM workspaces WHERE name LIKE 'batch-%' ORDER BY name")
                    )
                )
                .scalars()
                .all()
            )
        assert sorted(found) == sorted([names[0], names[2]])
    finally:
        await db.dispose()


async def test_plan_clock_moves_on_definition_writes_only(sqlite_file: str, tmp_path: Path) -> None:
    db = create_database(make_settings(sqlite_file, tmp_path))
    try:
        clock = db.plan_clock
        before = clock.generation
        async with db.transaction() as session:
            await session.execute(text("UPDATE processes SET title = title WHERE 1 = 0"))
        assert clock.generation == before  # not a table plans are read from
        async with db.transaction() as session:
            await session.execute(
                text("UPDATE workflows SET last_run_at = NULL WHERE 1 = 0").execution_options(
                    **{HOT: True}
                )
            )
        assert clock.generation == before  # the engine's last-run times
        async with db.transaction() as session:
            await session.execute(text("UPDATE agents SET name = name WHERE 1 = 0"))
        # Once at the statement, again at the commit and when the connection is released.
        assert clock.generation >= before + 2
    finally:
        await db.dispose()
