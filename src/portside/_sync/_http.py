# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""HTTP core: auth header, timeouts, retries with backoff, typed errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from portside._config import RETRY_STATUSES, ClientConfig, backoff_delay, should_retry
from portside._version import __version__
from portside.errors import (
    APIConnectionError,
    APITimeoutError,
    error_from_response,
    is_idempotency_in_progress,
    retry_after_seconds,
)


def new_idempotency_key() -> str:
    """A fresh idempotency key for a create request."""
    return f"ps-{uuid.uuid4().hex}"


class HTTP:
    """One connection pool plus the retry policy."""

    def __init__(self, config: ClientConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        headers = {"User-Agent": f"portside-python/{__version__}", "Accept": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._client = httpx.Client(
            base_url=config.base_url, headers=headers, timeout=config.timeout, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request, retrying what is safe to retry; raise a typed error on failure.

        Retried (at most ``max_retries`` times, with backoff honouring ``Retry-After``): 429/502/503/504,
        timeouts and connection errors for GET/PUT/DELETE and for any request with an idempotency key,
        and a 409 ``idempotency_in_progress`` (the first attempt with the same key is still running or
        its crashed owner's lease has not expired yet).
        """
        hdrs = dict(headers or {})
        if idempotency_key:
            hdrs["Idempotency-Key"] = idempotency_key
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        retryable = should_retry(method, bool(idempotency_key))
        attempts = self.config.max_retries + 1 if retryable else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._client.request(
                    method,
                    path,
                    json=json,
                    params=clean_params,
                    content=content,
                    headers=hdrs,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TimeoutException as exc:
                if last:
                    raise APITimeoutError(f"{method} {path} timed out") from exc
                time.sleep(backoff_delay(attempt))
                continue
            except httpx.TransportError as exc:
                if last:
                    raise APIConnectionError(f"{method} {path}: cannot reach {self.config.base_url}: {exc}") from exc
                time.sleep(backoff_delay(attempt))
                continue
            if not last and (
                response.status_code in RETRY_STATUSES or (idempotency_key and is_idempotency_in_progress(response))
            ):
                time.sleep(backoff_delay(attempt, retry_after_seconds(response)))
                continue
            if response.status_code >= 400:
                raise error_from_response(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and decode its JSON body (None for 204)."""
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @contextmanager
    def stream(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, timeout: float | None = None
    ) -> Iterator[httpx.Response]:
        """Open a streaming response (SSE, downloads); errors raise before the body is read."""
        request = self._client.build_request(
            method,
            path,
            params={k: v for k, v in (params or {}).items() if v is not None},
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise APITimeoutError(f"{method} {path} timed out") from exc
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{method} {path}: cannot reach {self.config.base_url}: {exc}") from exc
        try:
            if response.status_code >= 400:
                response.read()
                raise error_from_response(response)
            yield response
        finally:
            response.close()
