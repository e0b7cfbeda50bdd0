"""Request rate limiting: token buckets in process memory.

Two limiters, both applied to every door by :class:`portside.server.http.throttle.ThrottleMiddleware`:

- requests per credential (API key or worker token; per client address for requests without one):
  ``PORTSIDE_RATE_LIMIT_PER_MINUTE`` (0, the default, turns it off) and ``PORTSIDE_RATE_LIMIT_BURST``
  (bucket size; default: one minute's worth);
- failed authentications (401 answers) per client address:
  ``PORTSIDE_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE`` (default 30; 0 turns it off) and
  ``PORTSIDE_RATE_LIMIT_AUTH_FAILURES_BURST``.

An empty bucket means :class:`~portside.server.errors.RateLimited` (429 with ``Retry-After``).
With several replicas each enforces its own buckets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from portside.server.auth import Principal
from portside.server.context import AppContext
from portside.server.deps import require
from portside.server.errors import RateLimited

_MAX_BUCKETS = 100_000


class RateLimitSettings(BaseSettings):
    """``PORTSIDE_RATE_LIMIT_*``."""

    model_config = SettingsConfigDict(env_prefix="PORTSIDE_RATE_LIMIT_", extra="ignore")

    per_minute: float = Field(default=0.0, ge=0, description="Requests per minute per key; 0 = unlimited.")
    burst: int = Field(default=0, ge=0, description="Bucket size; 0 = per_minute (at least 1).")
    auth_failures_per_minute: float = Field(
        default=30.0, ge=0, description="Failed authentications per minute per client address; 0 = unlimited."
    )
    auth_failures_burst: int = Field(default=0, ge=0, description="Failures allowed at once; 0 = per minute.")


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

    @classmethod
    def auth_failures_from_env(cls) -> RateLimiter:
        cfg = RateLimitSettings()
        return cls(cfg.auth_failures_per_minute, cfg.auth_failures_burst)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _refilled(self, key: str, now: float, *, create: bool) -> _Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is None:
            if not create:
                return None
            if len(self._buckets) >= _MAX_BUCKETS:
                self._evict(now)
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        return bucket

    def _evict(self, now: float) -> None:
        """Drop buckets that have refilled (the same as no bucket), then the longest idle ones."""
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * self.rate >= self.capacity]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= _MAX_BUCKETS:
            by_age = sorted(self._buckets, key=lambda k: self._buckets[k].stamp)
            for k in by_age[: len(by_age) // 2]:
                del self._buckets[k]

    def _limited(self, bucket: _Bucket, cost: float, message: str) -> RateLimited:
        wait = (cost - bucket.tokens) / self.rate
        return RateLimited(
            message,
            retry_after=float(max(1, math.ceil(wait))),
            details={"limit_per_minute": round(self.rate * 60, 3)},
        )

    def check(self, key: str, cost: float = 1.0, *, message: str = "rate limit exceeded; retry later") -> None:
        """Take ``cost`` tokens from ``key``'s bucket or raise RateLimited with the wait in seconds."""
        if not self.enabled:
            return
        bucket = self._refilled(key, self._clock(), create=True)
        assert bucket is not None
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return
        raise self._limited(bucket, cost, message)

    def peek(self, key: str, cost: float = 1.0, *, message: str = "rate limit exceeded; retry later") -> None:
        """Raise RateLimited if ``key``'s bucket lacks ``cost`` tokens; take nothing."""
        if not self.enabled:
            return
        bucket = self._refilled(key, self._clock(), create=False)
        if bucket is not None and bucket.tokens < cost:
            raise self._limited(bucket, cost, message)

    def charge(self, key: str, cost: float = 1.0) -> None:
        """Take ``cost`` tokens from ``key``'s bucket, however many are left (it may go empty, not below)."""
        if not self.enabled:
            return
        bucket = self._refilled(key, self._clock(), create=True)
        assert bucket is not None
        bucket.tokens = max(0.0, bucket.tokens - cost)

    def refund(self, key: str, cost: float = 1.0) -> None:
        """Give back tokens taken by :meth:`check` for a request that turned out not to count."""
        if not self.enabled:
            return
        bucket = self._refilled(key, self._clock(), create=False)
        if bucket is not None:
            bucket.tokens = min(self.capacity, bucket.tokens + cost)


def limiter_of(ctx: AppContext) -> RateLimiter:
    """The app's per-credential request limiter (created from the environment on first use)."""
    limiter = ctx.services.get("ratelimit")
    if not isinstance(limiter, RateLimiter):
        limiter = RateLimiter.from_env()
        ctx.services["ratelimit"] = limiter
    return limiter


def auth_failure_limiter_of(ctx: AppContext) -> RateLimiter:
    """The app's failed-authentication limiter, keyed by client address."""
    limiter = ctx.services.get("ratelimit_auth_failures")
    if not isinstance(limiter, RateLimiter):
        limiter = RateLimiter.auth_failures_from_env()
        ctx.services["ratelimit_auth_failures"] = limiter
    return limiter


def rate_limited(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the caller, who must hold ``scope``.

    Requests are charged at the edge (every door, see ThrottleMiddleware), not here; this stays as
    the dialects' name for ``require(scope)``.
    """
    return require(scope)
