"""The async engine, sessions, a statement counter, and Alembic migrations."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.settings import Settings, sync_database_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass
class StatementLog:
    """Records SQL statements while on (tests and benchmarks of N+1 behaviour)."""

    recording: bool = False
    statements: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.statements.clear()
        self.recording = True

    def stop(self) -> list[str]:
        self.recording = False
        return list(self.statements)


@dataclass
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    statement_log: StatementLog = field(default_factory=StatementLog)

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

    async def dispose(self) -> None:
        await self.engine.dispose()


def create_database(settings: Settings) -> Database:
    url = settings.resolved_database_url()
    # JSON columns refuse NaN and Infinity: stored, they would break every later read of the row.
    kwargs: dict[str, Any] = {"echo": settings.sql_echo, "json_serializer": _strict_json}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    log = StatementLog()
    _install_hooks(engine, log)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    return Database(engine=engine, sessions=sessions, statement_log=log)


def _strict_json(value: Any) -> str:
    return json.dumps(value, allow_nan=False)


def _install_hooks(engine: AsyncEngine, log: StatementLog) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if log.recording:
            log.statements.append(statement)

    if engine.dialect.name == "sqlite":

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
