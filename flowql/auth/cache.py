"""A short-lived, per-credential cache of resolved principals.

Authenticating a request costs a statement (a user's memberships and plans, an API key and its
owner's membership, an execution token's process), more than a whole small read. The principal
a credential resolves to is kept for `TTL` seconds, keyed by the exact credential (a JWT is still
verified, signature and expiry, on every request before the cache is asked).

What ends a cached principal early is the database's clock of cached reads (`db.PlanClock`,
given as `source`): every write to a table a principal is made of (users, memberships, API keys,
refresh tokens, workspaces; deleting a process, for execution tokens) moves it, at the statement
and again at its commit, and entries of an older generation are never answered. A read that
began before such a commit is stored under the generation it began with, so it cannot outlive
the change either. Writes are seen at the SQL level (ORM sessions, Core statements, the SQLite
writer thread, raw text), so no service has to remember to invalidate. Writes made by another
process are announced on the PostgreSQL bus when there is one (events/postgres.py), and seen
within `TTL` seconds otherwise. Columns that only record use (`api_keys.last_used_at`,
`refresh_tokens.rotated_at`, `users.last_login`) move nothing (`db.changes_cached_reads`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from flowql.auth.principal import Principal

TTL = 5.0  # seconds: the bound on a change made by another process without the PostgreSQL bus
MAX_ENTRIES = 10_000


class Generations(Protocol):
    """What moves when a principal may have changed (`db.PlanClock`)."""

    generation: int


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    generation: int
    expires: float  # monotonic
    not_after: float | None  # wall clock: the credential's own expiry (an API key's)


class PrincipalCache:
    """credential -> (principal, generation, expiry); bounded, cleared whole when full."""

    def __init__(
        self,
        source: Generations,
        ttl: float = TTL,
        size: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self.wall = wall
        self._entries: dict[str, _Entry] = {}

    def get(self, credential: str) -> Principal | None:
        entry = self._entries.get(credential)
        if entry is None:
            return None
        if (
            entry.generation != self.source.generation
            or entry.expires <= self.clock()
            or (entry.not_after is not None and entry.not_after <= self.wall())
        ):
            self._entries.pop(credential, None)
            return None
        return entry.principal

    def put(
        self,
        credential: str,
        principal: Principal,
        generation: int,
        not_after: float | None = None,
    ) -> None:
        """Keep `principal`, read from the database as of `generation` (taken before the read)."""
        if self.ttl <= 0 or generation != self.source.generation:
            return
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[credential] = _Entry(
            principal, generation, self.clock() + self.ttl, not_after
        )

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_caches: WeakKeyDictionary[Any, PrincipalCache] = WeakKeyDictionary()


def cache_for(owner: Any, source: Generations) -> PrincipalCache:
    """The cache of one database (keyed by its engine, moved by its clock `source`): principals
    are facts of a database."""
    cache = _caches.get(owner)
    if cache is None:
        cache = _caches[owner] = PrincipalCache(source)
    return cache
