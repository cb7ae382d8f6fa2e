"""`flowql serve` as an operator runs it: a real subprocess on a loopback port, its stdout and
stderr (uvicorn's access log and error log) read line by line as they are written."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


@dataclass
class Served:
    url: str
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    closed: int = 0  # streams at their end (2: the process is gone)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            async with self.changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.changed.notify_all()
        async with self.changed:
            self.closed += 1
            self.changed.notify_all()

    async def wait_for(self, text: str, timeout: float = 15.0) -> str:
        """The first line containing `text`, waiting for the server to write it."""

        def found() -> str | None:
            return next((line for line in self.lines if text in line), None)

        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: found() is not None or self.closed == 2), timeout
            )
        line = found()
        assert line is not None, f"no line with {text!r} in:\n{self.output}"
        return line

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@asynccontextmanager
async def flowql_serve(tmp_path: Path, **settings: str) -> AsyncIterator[Served]:
    """`python -m flowql.cli serve` on SQLite in tmp_path with FLOWQL_<NAME>=value settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWQL_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        FLOWQL_DATA_DIR=str(tmp_path / "data"),
        FLOWQL_DATABASE_URL=f"sqlite:///{tmp_path / 'flowql.db'}",
        FLOWQL_DEMO_ACCOUNTS="false",
    )
    env.update({f"FLOWQL_{name.upper()}": value for name, value in settings.items()})
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowql.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    served = Served(url=f"http://127.0.0.1:{port}", proc=proc)
    readers = [
        asyncio.create_task(served.read(proc.stdout)),
        asyncio.create_task(served.read(proc.stderr)),
    ]
    try:
        await served.wait_for("Application startup complete", START_TIMEOUT)
        yield served
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)
        await asyncio.gather(*readers, return_exceptions=True)
