"""Cursor (and offset) pagination over any statement, keyed on the sequential `number`."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import false, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.errors import ValidationFailed
from flowql.models import Row

R = TypeVar("R", bound=Row)

DEFAULT_PAGE = 20
INT32_MAX = 2**31 - 1
MAX_PAGE = 500


@dataclass(frozen=True)
class PageArgs:
    first: int | None = None
    after: str | None = None
    offset: int | None = None
    descending: bool = True
    # False when the caller does not ask for the total: the page then costs no COUNT(*).
    count: bool = True
    # paginate_rows: the columns to fetch (None: all); the rows lack the others.
    columns: tuple[str, ...] | None = None


@dataclass
class Page(Generic[R]):
    rows: list[R]
    has_next: bool
    has_previous: bool
    total: int

    @staticmethod
    def cursor(row: Row) -> str:
        return encode_cursor(row.number or 0)


def encode_cursor(number: int) -> str:
    return base64.urlsafe_b64encode(f"n:{number}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, _, value = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        number = int(value)
        if kind != "n" or number < 0:
            raise ValueError(cursor)
        return number
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise ValidationFailed.one("after", "not a valid cursor") from exc


async def paginate(
    session: AsyncSession, model: type[R], stmt: SelectOfScalar[R], args: PageArgs
) -> Page[R]:
    """A page of ORM objects (for callers that go on to change or relate them)."""
    page: Page[R] = await _page(session, model, stmt, args, light=False)
    return page


async def paginate_rows(
    session: AsyncSession, model: type[R], stmt: SelectOfScalar[R], args: PageArgs
) -> Page[Any]:
    """A page of plain rows (attribute access, no ORM objects): for lists that are only read.
    Building ORM objects costs more than fetching the rows on a page of hundreds."""
    return await _page(session, model, stmt, args, light=True)


async def _page(
    session: AsyncSession, model: type[R], stmt: SelectOfScalar[R], args: PageArgs, light: bool
) -> Page[Any]:
    first = DEFAULT_PAGE if args.first is None else args.first
    if first < 0 or first > MAX_PAGE:
        raise ValidationFailed.one("first", f"must be between 0 and {MAX_PAGE}")
    if args.offset is not None and args.offset < 0:
        raise ValidationFailed.one("offset", "must not be negative")
    total = 0
    if args.count:
        count_stmt: Any = select(func.count()).select_from(stmt.subquery())
        total = (await session.exec(count_stmt)).one()
    number = col(model.number)
    page_stmt = stmt.order_by(number.desc() if args.descending else number)
    has_previous = False
    if args.after:
        edge = decode_cursor(args.after)
        if edge <= INT32_MAX:
            page_stmt = page_stmt.where(number < edge if args.descending else number > edge)
        elif not args.descending:  # `number` is a 32-bit column: nothing lies beyond
            page_stmt = page_stmt.where(false())
        has_previous = True
    elif args.offset:
        page_stmt = page_stmt.offset(args.offset)
        has_previous = args.offset > 0
    page_stmt = page_stmt.limit(first + 1)
    if light:
        # Straight to the connection: the session would give back only the first column of a
        # statement that started as select(Model).
        table: Any = model.__table__  # type: ignore[attr-defined]
        columns = table.c if args.columns is None else [table.c[name] for name in args.columns]
        connection = await session.connection()
        result = await connection.execute(page_stmt.with_only_columns(*columns))
        rows: list[Any] = list(result.all())
    else:
        rows = list((await session.exec(page_stmt)).all())
    return Page(
        rows=rows[:first], has_next=len(rows) > first, has_previous=has_previous, total=int(total)
    )
