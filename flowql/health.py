"""The HTTP faces of the `flowql worker` process and of readiness: `/healthz` and `/readyz` (the
server's and a worker's own health port) and the `flowql worker` command, which runs a
WorkerService (flowql.engine.worker) with that health server beside it. The engine reports
what is ready (`readiness`); this edge turns it into responses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowql import logs
from flowql.auth.secrets_box import SecretBox
from flowql.db import create_database
from flowql.engine.queue import prepare_database
from flowql.engine.worker import WorkerService, readiness
from flowql.events.postgres import make_bus
from flowql.services.runtime import Runtime
from flowql.settings import Dispatcher, Settings

logger = logging.getLogger("flowql.worker")


async def readyz_response(runtime: Runtime, service: WorkerService | None = None) -> Response:
    checks = await readiness(runtime, service)
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unready", "checks": checks},
        status_code=200 if ready else 503,
    )


class HealthServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield  # the worker handles SIGTERM/SIGINT itself


def health_app(runtime: Runtime, service: WorkerService) -> Starlette:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        return await readyz_response(runtime, service)

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz)])


# -- the command ----------------------------------------------------------------------------------


def run_worker(
    settings: Settings,
    concurrency: int,
    queues: list[str] | None,
    health_port: int | None = None,
    log_level: str = "info",
) -> int:
    if settings.dispatcher is not Dispatcher.PROCRASTINATE:
        print(
            "flowql worker needs FLOWQL_DISPATCHER=procrastinate and a PostgreSQL database; "
            "with the inline dispatcher, `flowql serve` runs processes itself.",
            file=sys.stderr,
        )
        return 2
    settings.check_startable()  # refuses SQLite with a SettingsError
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logs.install()  # credentials masked in every line, as in `flowql serve`
    if log_level.lower() != "debug":
        for noisy in ("procrastinate", "httpx", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    prepare_database(settings)
    return asyncio.run(_work(settings, max(1, concurrency), queues, health_port))


async def _work(
    settings: Settings, concurrency: int, queues: list[str] | None, health_port: int | None
) -> int:
    assert settings.encryption_keys
    db = create_database(settings)
    runtime = Runtime(
        settings=settings,
        db=db,
        box=SecretBox(settings.encryption_keys),
        bus=make_bus(settings, db),  # publish only: workers serve no subscribers
    )
    service = WorkerService(runtime, concurrency, queues)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health: HealthServer | None = None
    health_task: asyncio.Task[None] | None = None
    await service.start()
    try:
        if not service.running:
            print("flowql worker: the procrastinate worker did not start", file=sys.stderr)
            return 1
        print(
            f"flowql worker {service.name} (procrastinate worker {service.worker_id}) running "
            f"{concurrency} at a time on queues {', '.join(queues) if queues else 'all'}",
            flush=True,
        )
        if health_port:
            config = uvicorn.Config(
                health_app(runtime, service),
                host=settings.host,
                port=health_port,
                log_level="warning",
                lifespan="off",
            )
            health = HealthServer(config)
            health_task = asyncio.create_task(health.serve(), name="flowql-worker-health")
        stopped = asyncio.create_task(stop.wait())
        ended = asyncio.create_task(service.wait())
        await asyncio.wait({stopped, ended}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopped, ended):
            task.cancel()
        if not stop.is_set():
            logger.error("the procrastinate worker stopped on its own; exiting")
            return 1
        return 0
    finally:
        if health is not None and health_task is not None:
            health.should_exit = True
            with contextlib.suppress(Exception):
                await health_task
        await service.stop()
        await db.dispose()
