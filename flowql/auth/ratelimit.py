"""Per-plan rate limits (document 004): requests per minute and per day, with the `limits`
library; counters in memory per process, or in Redis when FLOWQL_REDIS_URL is set.

Self-hosted, a workspace has no plan (`unlimited`) until an instance admin assigns one
(`flowql workspace plan`, the `assignWorkspacePlan` mutation): its callers are never refused.
Anonymous callers (login, sign-up, password reset) always keep the free plan's budget per client
address, against guessing. `/v1` (document 004) still reports X-RateLimit-* headers to unlimited
callers: a per-minute count against `UNLIMITED_REPORTED`, which never refuses."""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

UNLIMITED = "unlimited"
# The X-RateLimit-Limit `/v1` reports to a caller without a plan (nothing is refused).
UNLIMITED_REPORTED = 1_000_000
# The budget of every caller without a credential, per client address.
ANONYMOUS_PLAN = "free"

PLAN_LIMITS: dict[str, tuple[int, int]] = {
    "free": (60, 1_000),
    "starter": (120, 10_000),
    "pro": (300, 50_000),
    "business": (600, 200_000),
}


def client_key(address: str | None) -> str:
    """The anonymous budget's key: the address, or for IPv6 its /64 (one subscriber's network,
    whose addresses a caller can rotate through at will)."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return f"ip:{address or 'unknown'}"
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return f"ip:{ipaddress.IPv6Network((parsed, 64), strict=False)}"
    return f"ip:{parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else parsed}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # unix seconds when the minute window resets
    retry_after: int

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        if redis_url:
            url = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            storage = storage_from_string(url, implementation="redispy")
        else:
            storage = storage_from_string("async+memory://")
        self._limiter = FixedWindowRateLimiter(storage)

    @staticmethod
    def items(plan: str) -> tuple[RateLimitItem, RateLimitItem]:
        per_minute, per_day = PLAN_LIMITS.get(plan, PLAN_LIMITS["free"])
        return RateLimitItemPerMinute(per_minute), RateLimitItemPerDay(per_day)

    async def count(self, key: str) -> Decision:
        """An unlimited caller's request: counted for the headers, never refused."""
        minute = RateLimitItemPerMinute(UNLIMITED_REPORTED)
        await self._limiter.hit(minute, "unlimited", key)
        stats = await self._limiter.get_window_stats(minute, "unlimited", key)
        return Decision(
            allowed=True,
            limit=UNLIMITED_REPORTED,
            remaining=max(0, stats.remaining),
            reset=math.ceil(stats.reset_time),
            retry_after=0,
        )

    async def hit(self, key: str, plan: str) -> Decision:
        minute, day = self.items(plan)
        day_ok = await self._limiter.hit(day, "day", key)
        minute_ok = day_ok and await self._limiter.hit(minute, "minute", key)
        minute_stats = await self._limiter.get_window_stats(minute, "minute", key)
        now = time.time()
        if not day_ok:
            day_stats = await self._limiter.get_window_stats(day, "day", key)
            retry = math.ceil(day_stats.reset_time - now)
        else:
            retry = math.ceil(minute_stats.reset_time - now)
        return Decision(
            allowed=day_ok and minute_ok,
            limit=minute.amount,
            remaining=max(0, minute_stats.remaining if day_ok else 0),
            reset=math.ceil(minute_stats.reset_time),
            retry_after=max(1, retry),
        )
