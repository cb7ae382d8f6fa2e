"""Cursor pagination: opaque cursors that round-trip, refused when forged, bounded page sizes."""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from flowql.db import Database, create_database, upgrade
from flowql.errors import ErrorCode, ValidationFailed
from flowql.models import Workspace
from flowql.resolvers.pagination import (
    DEFAULT_PAGE,
    MAX_PAGE,
    PageArgs,
    decode_cursor,
    encode_cursor,
    paginate,
)
from flowql.settings import Settings

ROWS = 25


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("number", [0, 1, 7, 99, 12345, 2**40])
def test_cursor_round_trips(number: int) -> None:
    cursor = encode_cursor(number)
    assert decode_cursor(cursor) == number


def test_cursors_are_url_safe_and_unpadded() -> None:
    for number in range(200):
        cursor = encode_cursor(number)
        assert "=" not in cursor
        assert set(cursor) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        "",
        b64("x:12"),  # wrong kind
        b64("n:twelve"),  # not a number
        b64("12"),  # no kind at all
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),  # not UTF-8
        "A",  # impossible base64 length
    ],
)
def test_forged_cursor_is_a_validation_error_on_after(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_cursor(cursor)
    assert caught.value.code is ErrorCode.VALIDATION_ERROR
    assert set(caught.value.fields) == {"after"}


# -- paginate over a real database -------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pagination") / "flowql.db"
    upgrade(Settings(database_url=f"sqlite:///{path}"))
    return path


@pytest.fixture
def db_path(migrated: Path, tmp_path: Path) -> Path:
    path = tmp_path / "flowql.db"
    shutil.copy(migrated, path)
    return path


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    database = create_database(Settings(database_url=f"sqlite:///{db_path}"))
    async with database.transaction() as session:
        for i in range(ROWS):
            session.add(Workspace(name=f"ws {i:02d}"))
    yield database
    await database.dispose()


async def page_names(db: Database, args: PageArgs) -> tuple[list[str], bool, bool, int, str]:
    async with db.read() as session:
        page = await paginate(session, Workspace, select(Workspace), args)
    end = page.cursor(page.rows[-1]) if page.rows else ""
    return [w.name for w in page.rows], page.has_next, page.has_previous, page.total, end


async def test_pages_walk_newest_first_without_gaps_or_repeats(db: Database) -> None:
    seen: list[str] = []
    after: str | None = None
    while True:
        names, has_next, has_previous, total, end = await page_names(
            db, PageArgs(first=10, after=after)
        )
        assert total == ROWS
        assert has_previous == (after is not None)
        seen += names
        if not has_next:
            break
        after = end
    assert seen == [f"ws {i:02d}" for i in reversed(range(ROWS))]


async def test_ascending_pages_walk_oldest_first(db: Database) -> None:
    names, has_next, _, _, end = await page_names(db, PageArgs(first=3, descending=False))
    assert names == ["ws 00", "ws 01", "ws 02"]
    assert has_next
    names, _, has_previous, _, _ = await page_names(
        db, PageArgs(first=3, after=end, descending=False)
    )
    assert names == ["ws 03", "ws 04", "ws 05"]
    assert has_previous


async def test_default_page_size_and_offset(db: Database) -> None:
    names, has_next, has_previous, _, _ = await page_names(db, PageArgs())
    assert len(names) == DEFAULT_PAGE
    assert has_next == (ROWS > DEFAULT_PAGE)
    assert not has_previous
    names, has_next, has_previous, _, _ = await page_names(db, PageArgs(first=5, offset=22))
    assert names == ["ws 02", "ws 01", "ws 00"]
    assert not has_next
    assert has_previous


async def test_first_zero_returns_no_rows_but_reports_more(db: Database) -> None:
    names, has_next, _, total, _ = await page_names(db, PageArgs(first=0))
    assert names == []
    assert has_next
    assert total == ROWS


async def test_first_at_the_maximum_is_accepted(db: Database) -> None:
    names, has_next, _, _, _ = await page_names(db, PageArgs(first=MAX_PAGE))
    assert len(names) == ROWS
    assert not has_next


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (PageArgs(first=-1), "first"),
        (PageArgs(first=MAX_PAGE + 1), "first"),
        (PageArgs(first=10**9), "first"),
        (PageArgs(offset=-1), "offset"),
        (PageArgs(after="garbage!"), "after"),
        (PageArgs(after=b64("x:3")), "after"),
    ],
)
async def test_out_of_bounds_arguments_name_the_field(
    db: Database, args: PageArgs, field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await page_names(db, args)
    assert set(caught.value.fields) == {field}
