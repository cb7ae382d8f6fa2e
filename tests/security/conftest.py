"""Security fixtures: one real server per test module (see live.py), and a summary line per
fuzzer and for the tenancy matrix at the end of the run, visible in `pytest -q` with or
without `-s`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.live import ThreadedServer, print_summary, serve_in_thread


@pytest.fixture(autouse=True, scope="module")
def fuzz_summary(request: pytest.FixtureRequest) -> None:
    print_summary(request.config)


@pytest.fixture(scope="module")
def threaded_server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedServer]:
    with serve_in_thread(sqlite_template, tmp_path_factory.mktemp("security")) as server:
        yield server
