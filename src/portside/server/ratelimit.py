"""Per-key request rate limiting: a token bucket per API key, in process memory.

Configured with ``PORTSIDE_RATE_LIMIT_PER_MINUTE`` (0, the default, turns it off) and
``PORTSIDE_RATE_LIMIT_BURST`` (bucket size; default: one minute's worth). Doors opt in with
:func:`rate_limited`, which authenticates the caller and then charges one token; an empty
bucket raises :class:`~portside.server.errors.RateLimited` (429 with ``Retry-After``).
With several replicas each enforces its own bucket.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Depends
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.deps import require
from portside.server.errors import RateLimited

_MAX_BUCKETS = 100_000


class RateLimitSettings(BaseSettings):
    """``PORTSIDE_RATE_LIMIT_*``."""

    model_config = SettingsConfigDict(env_prefix="PORTSIDE_RATE_LIMIT_", extra="ignore")

    per_minute: float = Field(default=0.0, ge=0, description="Requests per minute per key; 0 = unlimited.")
    burst: int = Field(default=0, ge=0, description="Bucket size; 0 = per_minute (at least 1).")


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets keyed by a string (usually the API key id)."""

    def __init__(self, per_minute: float, burst: int = 0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst or max(1, math.ceil(per_minute)))
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @classmethod
    def from_env(cls) -> RateLimiter:
        cfg = RateLimitSettings()
        return cls(cfg.per_minute, cfg.burst)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key: str, cost: float = 1.0) -> None:
        """Take ``cost`` tokens from ``key``'s bucket or raise RateLimited with the wait in seconds."""
        if not self.enabled:
            return
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return
        wait = (cost - bucket.tokens) / self.rate
        raise RateLimited(
            "rate limit exceeded; retry later",
            retry_after=float(max(1, math.ceil(wait))),
            details={"limit_per_minute": round(self.rate * 60, 3)},
        )


def limiter_of(ctx: AppContext) -> RateLimiter:
    """The app's limiter (created from the environment on first use)."""
    limiter = ctx.services.get("ratelimit")
    if not isinstance(limiter, RateLimiter):
        limiter = RateLimiter.from_env()
        ctx.services["ratelimit"] = limiter
    return limiter


def rate_limited(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the caller (who must hold ``scope``), charged one request."""

    async def _dep(principal: Principal = Depends(require(scope)), ctx: AppContext = Depends(get_ctx)) -> Principal:
        limiter_of(ctx).check(principal.key_id)
        return principal

    return _dep
