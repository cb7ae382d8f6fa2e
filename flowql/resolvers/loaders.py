"""Per-request dataloaders (aiodataloader): one batched statement per relation and request.

Loaders are made lazily and kept on the request's `Loaders`; each batch opens a short session
of its own, so loaders firing in the same tick never share a connection.

With `rows=True` a loader hands back plain rows (attribute access, no ORM objects, no session):
for relations that are only read and turned into GraphQL types, where building hundreds of ORM
objects would cost more than fetching them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

from aiodataloader import DataLoader
from sqlalchemy import Select, func
from sqlmodel import col, select

from flowql.db import Database
from flowql.models import Agent, AgentSource, Row

R = TypeVar("R", bound=Row)


T = TypeVar("T")


class Loaders:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._loaders: dict[Hashable, DataLoader[Any, Any]] = {}
        self._converted: dict[tuple[type[Any], Any], Any] = {}

    def converted(self, kind: type[Any], key: Any) -> Any | None:
        """The `kind` (a GraphQL type) that `convert_once` made of row `key` earlier in this
        request, if any."""
        return self._converted.get((kind, key))

    def convert_once(self, kind: type[Any], key: Any, row: Any, convert: Callable[[Any], T]) -> T:
        """`convert(row)`, made once per row and request: a loader hands the same row to every
        item that points at it (fifty steps of three agents: three conversions, not fifty)."""
        done = self._converted.get((kind, key))
        if done is None:
            done = self._converted[(kind, key)] = convert(row)
        return cast(T, done)

    def _get(self, key: Hashable, batch: Callable[[list[Any]], Any]) -> DataLoader[Any, Any]:
        loader = self._loaders.get(key)
        if loader is None:
            loader = DataLoader(batch_load_fn=batch, max_batch_size=1000)
            self._loaders[key] = loader
        return loader

    def clear(self) -> None:
        self._loaders.clear()
        self._converted.clear()

    async def _fetch(
        self, model: type[R], stmt: Any, rows: bool, columns: tuple[str, ...] | None = None
    ) -> list[Any]:
        """Run `stmt` (a select of `model`): ORM objects, or plain rows of all its columns (of
        `columns` only, when given)."""
        if rows:
            table: Any = model.__table__  # type: ignore[attr-defined]
            selected = table.c if columns is None else [table.c[name] for name in columns]
            light: Select[Any] = stmt.with_only_columns(*selected)
            async with self._db.engine.connect() as connection:
                return list((await connection.execute(light)).all())
        async with self._db.read() as session:
            return list((await session.exec(stmt)).all())

    # -- generic shapes --------------------------------------------------------------------

    def by_id(self, model: type[R], rows: bool = False) -> DataLoader[Any, Any]:
        """id -> row or None."""

        async def batch(ids: list[uuid.UUID]) -> list[Any]:
            found = {
                row.id: row
                for row in await self._fetch(
                    model, select(model).where(col(model.id).in_(ids)), rows
                )
            }
            return [found.get(i) for i in ids]

        return self._get(("by_id", model, rows), batch)

    def children(
        self,
        model: type[R],
        fk: str,
        order_desc: bool = False,
        rows: bool = False,
        columns: tuple[str, ...] | None = None,
    ) -> DataLoader[Any, Any]:
        """parent id -> list of rows whose `fk` column is that id, ordered by number. With
        `columns` (plain rows only), the rows hold those columns only (and `fk`)."""
        if columns is not None and fk not in columns:
            columns = (*columns, fk)

        async def batch(ids: list[uuid.UUID]) -> list[list[Any]]:
            column = getattr(model, fk)
            order = col(model.number).desc() if order_desc else col(model.number)
            stmt = select(model).where(column.in_(ids)).order_by(order)
            grouped: dict[uuid.UUID, list[Any]] = defaultdict(list)
            for row in await self._fetch(model, stmt, rows, columns if rows else None):
                grouped[getattr(row, fk)].append(row)
            return [grouped.get(i, []) for i in ids]

        return self._get(("children", model, fk, order_desc, rows, columns), batch)

    def latest(self, model: type[R], fk: str) -> DataLoader[Any, Any]:
        """(parent id, n) -> the parent's n newest rows, newest first: one windowed statement."""

        async def batch(keys: list[tuple[uuid.UUID, int]]) -> list[list[R]]:
            column = getattr(model, fk)
            limit = max(n for _, n in keys)
            ids = list({parent for parent, _ in keys})
            rank = (
                func.row_number()
                .over(partition_by=column, order_by=col(model.number).desc())
                .label("rank")
            )
            ranked = select(col(model.number).label("n"), rank).where(column.in_(ids)).subquery()
            stmt = (
                select(model)
                .join(ranked, col(model.number) == ranked.c.n)
                .where(ranked.c.rank <= limit)
                .order_by(col(model.number).desc())
            )
            async with self._db.read() as session:
                rows = (await session.exec(stmt)).all()
            grouped: dict[uuid.UUID, list[R]] = defaultdict(list)
            for row in rows:
                grouped[getattr(row, fk)].append(row)
            return [grouped.get(parent, [])[:n] for parent, n in keys]

        return self._get(("latest", model, fk), batch)

    def count(self, model: type[R], fk: str) -> DataLoader[Any, Any]:
        """parent id -> number of rows pointing at it."""

        async def batch(ids: list[uuid.UUID]) -> list[int]:
            column = getattr(model, fk)
            stmt = select(column, func.count()).where(column.in_(ids)).group_by(column)
            async with self._db.read() as session:
                counts = dict((await session.exec(stmt)).all())
            return [counts.get(i, 0) for i in ids]

        return self._get(("count", model, fk), batch)

    # -- agent graph -----------------------------------------------------------------------

    def agent_sources(self) -> DataLoader[Any, Any]:
        """agent id -> the agents it receives messages from."""
        return self._links("receiver_id", "source_id")

    def agent_receivers(self) -> DataLoader[Any, Any]:
        """agent id -> the agents that receive its messages."""
        return self._links("source_id", "receiver_id")

    def _links(self, this: str, other: str) -> DataLoader[Any, Any]:
        async def batch(ids: list[uuid.UUID]) -> list[list[Agent]]:
            this_col = getattr(AgentSource, this)
            other_col = getattr(AgentSource, other)
            stmt = (
                select(this_col, Agent)
                .join(Agent, col(Agent.id) == other_col)
                .where(this_col.in_(ids))
                .order_by(col(Agent.number))
            )
            async with self._db.read() as session:
                rows = (await session.exec(stmt)).all()
            grouped: dict[uuid.UUID, list[Agent]] = defaultdict(list)
            for key, agent in rows:
                grouped[key].append(agent)
            return [grouped.get(i, []) for i in ids]

        return self._get(("links", this), batch)
