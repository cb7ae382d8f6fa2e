"""The async engine, sessions, the batch writer, a statement counter, and Alembic migrations."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.settings import Settings, sync_database_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
T = TypeVar("T")
# Write sets committed together at most (SQLite group commit).
MAX_BATCH = 128


@dataclass
class StatementLog:
    """Records SQL statements while on (tests and benchmarks of N+1 behaviour)."""

    recording: bool = False
    statements: list[str] = field(default_factory=list)
    # Commits seen while recording (write transactions; reads end in a rollback).
    commits: int = 0

    def start(self) -> None:
        self.statements.clear()
        self.commits = 0
        self.recording = True

    def stop(self) -> list[str]:
        self.recording = False
        return list(self.statements)


# Cached reads of this process (a workflow's compiled hook plan and definition, engine/plans.py;
# a workspace's outbox subscriptions, engine/writeset.py; a credential's principal,
# flowql.auth.cache) come from these tables: a write to one of them makes every cached read stale
# (`changes_cached_reads`). Statements marked with the execution option HOT (the engine's
# last-run times) change nothing cached.
CACHED_TABLES = frozenset(
    {
        "workflows",
        "agents",
        "agent_sources",
        "triggers",
        "webhook_subscriptions",
        "memberships",
        "users",
        "workspaces",
        "api_keys",
        "refresh_tokens",
    }
)
# A new row of these changes no cached read (a new user has no membership yet; a new key or
# login is read when first used).
INSERTS_CHANGING_NOTHING = frozenset({"users", "api_keys", "refresh_tokens"})
# Columns that only record use: updating nothing else changes no cached read.
USE_ONLY_COLUMNS = frozenset({"last_used_at", "rotated_at", "last_login"})
_WRITE = re.compile(
    r'\s*(?:(update)\s+"?(\w+)"?\s+set\s+(.*?)\s+where\b|(delete)\s+from\s+"?(\w+)'
    r'|(insert)\s+into\s+"?(\w+))',
    re.IGNORECASE | re.DOTALL,
)
_READS = ("select", "pragma", "begin", "savepoint", "release", "rollback", "commit", "show")


def changes_cached_reads(statement: str) -> bool:
    """Whether a SQL statement may change a read this process caches (see CACHED_TABLES)."""
    head = statement.lstrip()[:10].lower()
    if head.startswith(_READS):
        return False
    match = _WRITE.match(statement)
    if match is None:
        # Not a plain write of a known shape (DDL, a CTE, …): changed if it names such a table.
        lowered = statement.lower()
        return any(re.search(rf"\b{t}\b", lowered) for t in CACHED_TABLES)
    if match.group(1):  # UPDATE
        table, assignments = match.group(2).lower(), match.group(3)
        if table not in CACHED_TABLES:
            return False
        columns = {
            part.split("=", 1)[0].strip().strip('"').lower() for part in assignments.split(",")
        }
        return not columns <= USE_ONLY_COLUMNS
    if match.group(4):  # DELETE (a deleted process ends its execution tokens' principals)
        table = match.group(5).lower()
        return table in CACHED_TABLES or table == "processes"
    table = match.group(7).lower()
    return table in CACHED_TABLES and table not in INSERTS_CHANGING_NOTHING


HOT = "flowql_hot"
# Seconds a cached read is kept unchecked: the longest a change made by another process (this one
# sees its own at once) goes unseen.
CACHE_TTL = 1.0


@dataclass
class PlanClock:
    """Moves whenever this process writes to a table it caches reads of; a read cached
    under an older generation is stale. It moves when the statement runs and again when its
    connection is released (after the commit), so a read made in between, of the old rows, is
    not kept either. `memo` holds such reads (any thread may use it: single dict operations)."""

    generation: int = 0
    ttl: float = CACHE_TTL
    memo: dict[Any, tuple[int, float, Any]] = field(default_factory=dict)
    # Called after a commit that wrote a cached table (from the committing thread): the
    # PostgreSQL bus tells the other processes, whose clocks then move (events/postgres.py).
    on_commit: list[Callable[[], None]] = field(default_factory=list)

    def tick(self) -> None:
        self.generation += 1

    def committed(self) -> None:
        """A transaction that wrote a cached table committed."""
        self.tick()
        for listener in self.on_commit:
            listener()

    def recall(self, key: Any) -> tuple[bool, Any]:
        """(True, value) when `key` was kept under the current generation within the TTL."""
        kept = self.memo.get(key)
        if kept is not None and kept[0] == self.generation and kept[1] > time.monotonic():
            return True, kept[2]
        return False, None

    def keep(self, key: Any, generation: int, value: Any) -> None:
        """Keep `value`, read while the generation was `generation` (not if it moved since)."""
        if generation != self.generation:
            return
        if len(self.memo) >= 10_000:
            self.memo.clear()
        self.memo[key] = (generation, time.monotonic() + self.ttl, value)


class BatchWriter:
    """SQLite's one writer: write sets from any number of tasks run on a dedicated thread, many
    per transaction (group commit), each in its own savepoint.

    A write set is a plain function of a synchronous connection, so a whole batch costs one hop
    from the event loop to the database thread, however many statements it holds; and one writer
    never waits on SQLite's lock for another.
    """

    def __init__(self, engine: Engine, clock: PlanClock | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self._conn: Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in the next batch; returns its result once the batch has committed. If
        `work` raises, only its own savepoint rolls back and the exception is raised here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((work, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name="flowql-writer")
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowql-writer")
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                outcomes = await loop.run_in_executor(
                    self._executor, self._commit, [work for work, _ in batch]
                )
            except Exception as exc:  # the commit itself failed: every write set with it
                outcomes = [(False, exc)] * len(batch)
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _commit(self, works: list[Callable[[Connection], Any]]) -> list[tuple[bool, Any]]:
        # The writer keeps its one connection between batches (checking it out of the pool and
        # back in, with the pool's reset, cost more than a small write set); a batch that fails
        # outside any write set closes it and the next batch opens another.
        if self._conn is None:
            self._conn = self.engine.connect()
        conn = self._conn
        try:
            return self._batch(conn, works)
        except BaseException:
            self._conn = None
            conn.close()
            raise
        finally:
            if conn.info.pop("flowql_plans", False) and self.clock is not None:
                self.clock.tick()  # after the commit: see PlanClock

    def _batch(
        self, conn: Connection, works: list[Callable[[Connection], Any]]
    ) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        if len(works) == 1:  # no savepoint needed: its failure rolls back the transaction
            try:
                with conn.begin():
                    outcomes.append((True, works[0](conn)))
            except Exception as exc:
                outcomes.append((False, exc))
            return outcomes
        with conn.begin():
            # Savepoints straight to the driver: through Core, each compiled anew and cost as
            # much as the write set it guarded.
            for work in works:
                _driver_sql(conn, "SAVEPOINT write_set")
                try:
                    value = work(conn)
                except Exception as exc:
                    _driver_sql(conn, "ROLLBACK TO SAVEPOINT write_set")
                    _driver_sql(conn, "RELEASE SAVEPOINT write_set")
                    outcomes.append((False, exc))
                else:
                    _driver_sql(conn, "RELEASE SAVEPOINT write_set")
                    outcomes.append((True, value))
        return outcomes

    def _dispose(self) -> None:  # on the writer's thread
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self.engine.dispose()

    async def close(self) -> None:
        """Close the writer's connection and stop its thread (a later write starts them again)."""
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task})
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, self._dispose)
            executor.shutdown(wait=True)


def _driver_sql(conn: Connection, sql: str) -> None:
    """A statement without parameters run on the driver's own cursor (SQLite's writer), seen by
    the engine's statement listeners like any other."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    conn.dispatch.before_cursor_execute(conn, cursor, sql, (), None, False)
    cursor.execute(sql)


@dataclass
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    statement_log: StatementLog = field(default_factory=StatementLog)
    plan_clock: PlanClock = field(default_factory=PlanClock)
    # SQLite files: the dedicated writer thread; None: write sets run on the async engine.
    writer: BatchWriter | None = None
    # SQLite files: a synchronous engine read by a small thread pool (see `lookup`).
    reader: Engine | None = None
    _readers: ThreadPoolExecutor | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back everything on any error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def write(self, work: Callable[[Connection], T]) -> T:
        """Run a write set (a function of a synchronous connection) in a transaction: batched
        with others on SQLite's writer thread, else in a transaction of its own (PostgreSQL's
        row locks let concurrent processes commit side by side)."""
        if self.writer is not None:
            return await self.writer.run(work)
        async with self.engine.begin() as conn:
            return await conn.run_sync(work)

    async def lookup(self, work: Callable[[Session], T]) -> T:
        """Run a few reads as one synchronous function: on SQLite in one hop to a reader thread
        (each statement on aiosqlite is several hops through the event loop), elsewhere on an
        async session. Rows it returns are detached: plain reads, no lazy loading."""
        if self.reader is None:  # PostgreSQL: plain reads, no BEGIN and ROLLBACK round trips
            async with self.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                return await conn.run_sync(lambda sync: _in_session(sync, work))
        if self._readers is None:
            self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flowql-reader")
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read, work)

    def _read(self, work: Callable[[Session], T]) -> T:  # on a reader thread
        assert self.reader is not None
        with Session(self.reader, expire_on_commit=False) as session:
            return work(session)

    async def dispose(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        readers, self._readers = self._readers, None
        if readers is not None and self.reader is not None:
            await asyncio.get_running_loop().run_in_executor(readers, self.reader.dispose)
            readers.shutdown(wait=True)
        await self.engine.dispose()


def _in_session(conn: Connection, work: Callable[[Session], T]) -> T:
    with Session(bind=conn, expire_on_commit=False) as session:
        return work(session)


def create_database(settings: Settings) -> Database:
    url = settings.resolved_database_url()
    # JSON columns refuse NaN and Infinity: stored, they would break every later read of the row.
    kwargs: dict[str, Any] = {"echo": settings.sql_echo, "json_serializer": _strict_json}
    file_backed = False
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        file_backed = bool(path) and path != ":memory:" and "mode=memory" not in path
        if file_backed:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    log = StatementLog()
    clock = PlanClock()
    _install_hooks(engine.sync_engine, log, clock)
    writer = reader = None
    if file_backed:
        writer = BatchWriter(_writer_engine(url, kwargs, log, clock), clock)
        reader = create_engine(sync_database_url(url), **_sync_options(kwargs, 2))
        _install_hooks(reader, log, clock)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    return Database(
        engine=engine,
        sessions=sessions,
        statement_log=log,
        plan_clock=clock,
        writer=writer,
        reader=reader,
    )


# One encoder, made once (json.dumps with any option builds a new one per call): the same text.
_encode = json.JSONEncoder(allow_nan=False).encode


def _strict_json(value: Any) -> str:
    return _encode(value)


def _sync_options(kwargs: dict[str, Any], pool_size: int) -> dict[str, Any]:
    connect_args = {**kwargs.get("connect_args", {}), "check_same_thread": False}
    return {**kwargs, "connect_args": connect_args, "pool_size": pool_size, "max_overflow": 0}


def _writer_engine(url: str, kwargs: dict[str, Any], log: StatementLog, clock: PlanClock) -> Engine:
    """A synchronous engine on the same file for the writer thread, with the same options.
    pysqlite's own transaction handling is off so savepoints work; BEGIN IMMEDIATE takes the
    write lock at once instead of upgrading a read lock later (which can fail under load)."""
    engine = create_engine(sync_database_url(url), **_sync_options(kwargs, 1))
    _install_hooks(engine, log, clock)

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# statement -> whether it writes a table cached reads come from (changes_cached_reads)
_touches: dict[str, bool] = {}


def _install_hooks(sync_engine: Engine, log: StatementLog, clock: PlanClock) -> None:
    @event.listens_for(sync_engine, "before_cursor_execute")
    def _record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if log.recording:
            log.statements.append(statement)
        touches = _touches.get(statement)
        if touches is None:
            touches = changes_cached_reads(statement)
            if len(_touches) < 10_000:  # statements are few and compiled once
                _touches[statement] = touches
        if touches and not (context is not None and context.execution_options.get(HOT)):
            clock.tick()
            conn.info["flowql_plans"] = True
            conn.info["flowql_plans_committing"] = True

    @event.listens_for(sync_engine, "commit")
    def _count_commit(conn: Any) -> None:
        if log.recording:
            log.commits += 1
        if conn.info.pop("flowql_plans_committing", False):
            clock.committed()

    @event.listens_for(sync_engine, "checkin")
    def _released(dbapi_connection: Any, record: Any) -> None:  # after its commit or rollback
        if record.info.pop("flowql_plans", False):
            clock.tick()

    if sync_engine.dialect.name == "sqlite":

        @event.listens_for(sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_database_url(settings.resolved_database_url()))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to the newest migration (idempotent)."""
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), revision)
