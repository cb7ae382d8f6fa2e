"""`flowql worker`: procrastinate workers on PostgreSQL (the scale-out issue builds this)."""

from __future__ import annotations

import sys

from flowql.settings import Dispatcher, Settings


def run_worker(settings: Settings, concurrency: int, queues: list[str] | None) -> int:
    if settings.dispatcher is not Dispatcher.PROCRASTINATE:
        print(
            "flowql worker needs FLOWQL_DISPATCHER=procrastinate and a PostgreSQL database; "
            "with the inline dispatcher, `flowql serve` runs processes itself.",
            file=sys.stderr,
        )
        return 2
    print("the procrastinate dispatcher is not built yet", file=sys.stderr)
    return 2
