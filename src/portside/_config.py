"""Client configuration from arguments or ``PORTSIDE_*`` environment variables."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

DEFAULT_URL = "http://127.0.0.1:8321"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRY_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
BACKOFF_BASE = 0.25
BACKOFF_MAX = 8.0


@dataclass(frozen=True)
class ClientConfig:
    """Resolved settings of one client."""

    base_url: str
    api_key: str | None
    timeout: float
    max_retries: int

    @classmethod
    def resolve(
        cls,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ClientConfig:
        """Arguments win over ``PORTSIDE_URL``, ``PORTSIDE_API_KEY``, ``PORTSIDE_TIMEOUT``, ``PORTSIDE_MAX_RETRIES``."""
        url = base_url or os.environ.get("PORTSIDE_URL") or DEFAULT_URL
        key = api_key if api_key is not None else os.environ.get("PORTSIDE_API_KEY")
        if timeout is None:
            timeout = float(os.environ.get("PORTSIDE_TIMEOUT", DEFAULT_TIMEOUT))
        if max_retries is None:
            max_retries = int(os.environ.get("PORTSIDE_MAX_RETRIES", DEFAULT_MAX_RETRIES))
        return cls(base_url=url.rstrip("/"), api_key=key or None, timeout=timeout, max_retries=max(0, max_retries))


def should_retry(method: str, has_idempotency_key: bool) -> bool:
    """GET/PUT/DELETE always; POST/PATCH only with an idempotency key."""
    return method.upper() in RETRY_METHODS or has_idempotency_key


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): bounded exponential with full jitter.

    A server's ``Retry-After`` is honoured (capped at 60 s).
    """
    if retry_after is not None:
        return min(retry_after, 60.0)
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * (2**attempt))
    return random.uniform(ceiling / 2, ceiling)
