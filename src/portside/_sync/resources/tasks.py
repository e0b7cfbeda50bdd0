# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.tasks``: submit tasks for typed capabilities, wait for them, cancel them."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from time import monotonic
from typing import Any

from portside._sync._http import HTTP, new_idempotency_key
from portside._sync.resources._task_retry import post_idempotent
from portside.types.common import Page
from portside.types.tasks import Lease, Task, TaskProgress

_LONG_POLL_S = 30.0


class Tasks:
    """Tasks run by workers that registered the task's capability."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def submit(
        self,
        capability: str,
        input: Any = None,
        *,
        on_behalf_of: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        metadata: dict[str, Any] | None = None,
        workflow_id: str | None = None,
    ) -> Task:
        """Queue a task. ``idempotency_key`` makes resubmission return the first task.

        ``timeout`` (seconds) fails the task if it has not finished by then. Without a key the SDK
        generates one, so retrying after a connection error never queues the task twice.
        """
        body: dict[str, Any] = {"capability": capability, "input": input}
        idempotency_key = idempotency_key or new_idempotency_key()
        for key, value in (
            ("on_behalf_of", on_behalf_of),
            ("idempotency_key", idempotency_key),
            ("timeout_s", timeout),
            ("max_attempts", max_attempts),
            ("metadata", metadata),
            ("workflow_id", workflow_id),
        ):
            if value is not None:
                body[key] = value
        return Task.model_validate(post_idempotent(self._http, "/v1/tasks", body))

    def submit_many(self, tasks: builtins.list[dict[str, Any]]) -> builtins.list[Task]:
        """Queue up to 1000 tasks in one request; each dict takes ``submit``'s body fields
        (``capability``, ``input``, ``on_behalf_of``, ``idempotency_key``, ``timeout_s``, ...)."""
        body = [{**t, "idempotency_key": t.get("idempotency_key") or new_idempotency_key()} for t in tasks]
        data = post_idempotent(self._http, "/v1/tasks/batch", {"tasks": body})
        return [Task.model_validate(t) for t in data["items"]]

    def get(self, task_id: str) -> Task:
        return Task.model_validate(self._http.json("GET", f"/v1/tasks/{task_id}"))

    def wait(self, task_id: str, *, timeout: float | None = 60.0) -> Task:
        """Wait until the task is done, or ``timeout`` seconds pass (None: no limit).

        Returns the task either way: check ``task.done``.
        """
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            remaining = _LONG_POLL_S if deadline is None else max(0.0, deadline - monotonic())
            step = min(_LONG_POLL_S, remaining)
            data = self._http.json(
                "GET", f"/v1/tasks/{task_id}/wait", params={"timeout": round(step, 3)}, timeout=step + 30.0
            )
            task = Task.model_validate(data)
            if task.done or (deadline is not None and monotonic() >= deadline):
                return task

    def run(self, capability: str, input: Any = None, *, timeout: float | None = 60.0, **kwargs: Any) -> Task:
        """Submit and wait (``kwargs`` as for ``submit``)."""
        task = self.submit(capability, input, timeout=timeout, **kwargs)
        return self.wait(task.id, timeout=timeout)

    def cancel(self, task_id: str, *, reason: str | None = None) -> Task:
        """Cancel a task; a running handler sees its cancelled event."""
        body = {"reason": reason} if reason else None
        return Task.model_validate(self._http.json("POST", f"/v1/tasks/{task_id}/cancel", json=body))

    def list(
        self,
        *,
        status: str | None = None,
        capability: str | None = None,
        worker_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Task]:
        """Tasks, newest first; pass ``cursor=page.next_cursor`` for the next page."""
        params = {"status": status, "capability": capability, "worker_id": worker_id, "limit": limit, "cursor": cursor}
        data = self._http.json("GET", "/v1/tasks", params=params)
        return Page[Task](items=[Task.model_validate(t) for t in data["items"]], next_cursor=data.get("next_cursor"))

    def iter_all(
        self,
        *,
        status: str | None = None,
        capability: str | None = None,
        worker_id: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Task]:
        """Every matching task, newest first, fetched page by page."""
        cursor: str | None = None
        while True:
            page = self.list(
                status=status, capability=capability, worker_id=worker_id, limit=page_size, cursor=cursor
            )
            for item in page.items:
                yield item
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    def counts(self, *, capability: str | None = None) -> dict[str, int]:
        """Number of tasks in each status (``queued``, ``running``, ``succeeded``, ...)."""
        data: dict[str, int] = self._http.json("GET", "/v1/tasks/counts", params={"capability": capability})
        return data

    def progress(self, task_id: str) -> builtins.list[TaskProgress]:
        """Progress reports of a task, oldest first."""
        data = self._http.json("GET", f"/v1/tasks/{task_id}/progress")
        return [TaskProgress.model_validate(p) for p in data["items"]]

    def leases(self, task_id: str) -> builtins.list[Lease]:
        """Every delivery (attempt) of a task."""
        data = self._http.json("GET", f"/v1/tasks/{task_id}/leases")
        return [Lease.model_validate(x) for x in data["items"]]
