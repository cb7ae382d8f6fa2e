"""A live server listening where its settings say (FLOWQL_PORT), so that the URLs it hands out
(trigger `url`, form `publicUrl`, built on http://host:port when FLOWQL_PUBLIC_URL is unset) are
the ones a caller can use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from flowql.app import build_runtime, create_app
from flowql.services.runtime import Runtime
from flowql.settings import Settings
from tests.conftest import LiveServer, QuickServer, ServerErrors, free_port, make_settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data", port=free_port())


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    runtime: Runtime = build_runtime(settings)
    app = ServerErrors(create_app(settings, runtime))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
    )
    uv = QuickServer(config)
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    url = f"http://{settings.host}:{settings.port}"
    assert url == settings.base_url
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield LiveServer(url=url, runtime=runtime, client=client)
    uv.stop()
    await task
    assert not app.seen, f"the server answered 5xx: {app.seen}"
