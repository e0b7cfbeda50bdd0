# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""Resending a POST whose tasks all carry idempotency keys (safe: the server dedupes them)."""

from __future__ import annotations

import time
from typing import Any

from portside import _config
from portside._sync._http import HTTP
from portside.errors import APIConnectionError, ServerError


def post_idempotent(http: HTTP, path: str, body: dict[str, Any]) -> Any:
    """POST ``body``, retrying connection errors and 5xx with backoff."""
    attempts = http.config.max_retries + 1
    for attempt in range(attempts):
        try:
            return http.json("POST", path, json=body)
        except (APIConnectionError, ServerError):
            if attempt == attempts - 1:
                raise
            time.sleep(_config.backoff_delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover
