"""Resending a POST whose tasks all carry idempotency keys (safe: the server dedupes them)."""

from __future__ import annotations

import asyncio
from typing import Any

from portside import _config
from portside._async._http import AsyncHTTP
from portside.errors import APIConnectionError, ServerError


async def post_idempotent(http: AsyncHTTP, path: str, body: dict[str, Any]) -> Any:
    """POST ``body``, retrying connection errors and 5xx with backoff."""
    attempts = http.config.max_retries + 1
    for attempt in range(attempts):
        try:
            return await http.json("POST", path, json=body)
        except (APIConnectionError, ServerError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(_config.backoff_delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover
