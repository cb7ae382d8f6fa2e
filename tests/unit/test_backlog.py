"""A feed's backlog drops a subscriber that is stuck or keeps falling behind, and keeps one that
is draining a burst while a second one arrives."""

from __future__ import annotations

import asyncio

import pytest

from flowql.events import bus
from flowql.events.bus import Backlog


@pytest.fixture(autouse=True)
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus, "STALL_CHECK_SECONDS", 0.05)


async def _checks(n: int) -> None:
    await asyncio.sleep(0.05 * n + 0.02)


def _take(backlog: Backlog[int], n: int) -> None:
    for _ in range(n):
        backlog.items.popleft()


async def test_a_subscriber_that_takes_nothing_is_dropped() -> None:
    backlog: Backlog[int] = Backlog(maxsize=2)
    for i in range(5):
        backlog.put(i)
    await _checks(1)
    assert backlog.dropped


async def test_a_second_burst_while_draining_the_first_is_not_a_drop() -> None:
    backlog: Backlog[int] = Backlog(maxsize=2)
    for i in range(6):
        backlog.put(i)
    _take(backlog, 1)
    for i in range(3):  # a second burst: the backlog grew, yet the reader made progress
        backlog.put(i)
    await _checks(1)
    assert not backlog.dropped
    _take(backlog, 6)  # it drains
    await _checks(1)
    assert not backlog.dropped
    backlog.close()


async def test_a_backlog_growing_check_after_check_is_dropped() -> None:
    backlog: Backlog[int] = Backlog(maxsize=2)
    for i in range(4):
        backlog.put(i)
    dropped_at = None
    for check in range(1, 5):
        _take(backlog, 1)  # progress, but less than what arrives
        for i in range(3):
            backlog.put(i)
        await _checks(1)
        if backlog.dropped:
            dropped_at = check
            break
    assert dropped_at == 2
