# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.executions``: start, read, wait for (long-poll), stream (SSE) and cancel executions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from time import monotonic
from typing import Any

from httpx_sse import EventSource

from portside._sync._http import HTTP, new_idempotency_key
from portside.types.common import Page
from portside.types.flows import Execution, ExecutionEvent

_LONG_POLL_S = 30.0


class Executions:
    """Flow executions."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def create(
        self,
        flow_id: str,
        input: dict[str, Any] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        version: int | None = None,
        timeout_seconds: float | None = None,
    ) -> Execution:
        """Start an execution of ``flow_id``; returns at once (status ``pending``)."""
        body = {
            "flow_id": flow_id,
            "input": input or {},
            "metadata": metadata or {},
            "version": version,
            "timeout_seconds": timeout_seconds,
        }
        data = self._http.json("POST", "/v1/executions", json=body, idempotency_key=new_idempotency_key())
        return Execution.model_validate(data)

    def get(self, execution_id: str) -> Execution:
        """An execution with every node's status, output, timings, errors and attempts."""
        return Execution.model_validate(self._http.json("GET", f"/v1/executions/{execution_id}"))

    def list(
        self, *, flow_id: str | None = None, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> Page[Execution]:
        """Executions, newest first."""
        params = {"flow_id": flow_id, "status": status, "limit": limit, "offset": offset}
        data = self._http.json("GET", "/v1/executions", params=params)
        return Page[Execution](items=[Execution.model_validate(e) for e in data["items"]], total=data["total"])

    def iter_all(
        self, *, flow_id: str | None = None, status: str | None = None, page_size: int = 100
    ) -> Iterator[Execution]:
        """Every matching execution, newest first, fetched page by page."""
        offset = 0
        while True:
            page = self.list(flow_id=flow_id, status=status, limit=page_size, offset=offset)
            for item in page.items:
                yield item
            offset += len(page.items)
            if not page.items or offset >= (page.total or 0):
                return

    def wait(self, execution_id: str, *, timeout: float | None = 300.0) -> Execution:
        """Wait until the execution finishes, or ``timeout`` seconds pass (None: no limit).

        Uses the server's long-poll, so it does not hammer it. Returns the execution either
        way: check ``execution.is_terminal``.
        """
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            remaining = _LONG_POLL_S if deadline is None else max(0.0, deadline - monotonic())
            step = min(_LONG_POLL_S, remaining)
            data = self._http.json(
                "GET", f"/v1/executions/{execution_id}/wait", params={"timeout": round(step, 3)}, timeout=step + 30.0
            )
            execution = Execution.model_validate(data)
            if execution.is_terminal or (deadline is not None and monotonic() >= deadline):
                return execution

    def events(self, execution_id: str) -> Iterator[ExecutionEvent]:
        """Server-sent ``node`` and ``execution`` events until the execution finishes."""
        with self._http.stream("GET", f"/v1/executions/{execution_id}/events", timeout=120.0) as response:
            for sse in EventSource(response).iter_sse():
                if sse.data:  # a multi-line ``data:`` arrives joined, as the SSE spec says
                    yield ExecutionEvent(event=sse.event, data=json.loads(sse.data))

    def cancel(self, execution_id: str) -> Execution:
        """Cancel: running nodes are interrupted. Cancelling a cancelled execution is a no-op."""
        return Execution.model_validate(self._http.json("POST", f"/v1/executions/{execution_id}/cancel"))
