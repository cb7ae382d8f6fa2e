"""A short-lived, per-credential cache of resolved principals, and what empties it.

Authenticating a request costs a statement (a user's memberships and plans, an API key and its
owner's membership, an execution token's process), more than a whole small read. The principal
a credential resolves to is kept for `TTL` seconds, keyed by the exact credential (a JWT is still
verified, signature and expiry, on every request before the cache is asked).

What ends a cached principal early, in this process: every write to a table a principal is made
of (`AUTH_TABLES`; deleting a process, for execution tokens) bumps a process-wide generation, at
the statement and again at its commit; entries of an older generation are never answered. A read
that began before such a commit is stored under the generation it began with, so it cannot
outlive the change either. Writes are seen at the SQL level (any engine of this process: ORM
sessions, Core statements, the SQLite writer thread, raw text), so no service has to remember to
invalidate. Writes made by another process (another replica, the CLI) are seen after at most
`TTL` seconds.

Columns that only record use (`api_keys.last_used_at`, `refresh_tokens.rotated_at`,
`users.last_login`) change no principal and bump nothing.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import Engine

from flowql.auth.principal import Principal

TTL = 5.0  # seconds: the bound on a change made by another process
MAX_ENTRIES = 10_000

AUTH_TABLES = frozenset({"users", "memberships", "api_keys", "refresh_tokens", "workspaces"})
USE_ONLY_COLUMNS = frozenset({"last_used_at", "rotated_at", "last_login"})
_WRITE = re.compile(
    r'\s*(?:(update)\s+"?(\w+)"?\s+set\s+(.*?)\s+where\b|(delete)\s+from\s+"?(\w+)'
    r'|(insert)\s+into\s+"?(\w+))',
    re.IGNORECASE | re.DOTALL,
)
_READS = ("select", "pragma", "begin", "savepoint", "release", "rollback", "commit", "show")
_DIRTY = "flowql.auth_dirty"


class _Generation:
    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()  # the SQLite writer and readers run on threads

    def bump(self) -> None:
        with self._lock:
            self.value += 1


GENERATION = _Generation()


def changes_principals(statement: str) -> bool:
    """Whether a SQL statement may change what some credential resolves to."""
    head = statement.lstrip()[:10].lower()
    if head.startswith(_READS):
        return False
    match = _WRITE.match(statement)
    if match is None:
        # Not a plain write of a known shape (DDL, a CTE, …): changed if it names any table.
        lowered = statement.lower()
        return any(re.search(rf"\b{t}\b", lowered) for t in AUTH_TABLES)
    if match.group(1):  # UPDATE
        table, assignments = match.group(2).lower(), match.group(3)
        if table not in AUTH_TABLES:
            return False
        columns = {
            part.split("=", 1)[0].strip().strip('"').lower() for part in assignments.split(",")
        }
        return not columns <= USE_ONLY_COLUMNS
    if match.group(4):  # DELETE
        table = match.group(5).lower()
        return table in AUTH_TABLES or table == "processes"
    table = match.group(7).lower()  # INSERT: a new membership or workspace widens a principal
    return table in ("memberships", "workspaces")


def _after_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    if changes_principals(statement):
        GENERATION.bump()
        conn.info[_DIRTY] = True


def _after_commit(conn: Any) -> None:
    # A flag left by a rolled-back write only costs one more bump at a later commit.
    if conn.info.pop(_DIRTY, False):
        GENERATION.bump()


_installed = False


def install() -> None:
    """Watch every engine of this process (idempotent)."""
    global _installed
    if not _installed:
        event.listen(Engine, "after_cursor_execute", _after_execute)
        event.listen(Engine, "commit", _after_commit)
        _installed = True


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
        ttl: float = TTL,
        size: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
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
            entry.generation != GENERATION.value
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
        if self.ttl <= 0 or generation != GENERATION.value:
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


install()

_caches: WeakKeyDictionary[Any, PrincipalCache] = WeakKeyDictionary()


def cache_for(owner: Any) -> PrincipalCache:
    """The cache of one database (keyed by its engine): principals are facts of a database."""
    cache = _caches.get(owner)
    if cache is None:
        cache = _caches[owner] = PrincipalCache()
    return cache
