"""In-process wake-ups for callers waiting on a task to finish."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class TaskWaiters:
    """One ``asyncio.Event`` per watched task id, shared by every waiter of that task."""

    def __init__(self) -> None:
        self._events: dict[str, tuple[asyncio.Event, int]] = {}

    def notify(self, task_ids: Iterable[str]) -> None:
        """Wake the waiters of these tasks (they re-read the store)."""
        for task_id in task_ids:
            entry = self._events.get(task_id)
            if entry is not None:
                entry[0].set()

    def notify_all(self) -> None:
        for event, _ in self._events.values():
            event.set()

    @contextmanager
    def watch(self, task_id: str) -> Iterator[asyncio.Event]:
        """An event set when ``task_id`` may have changed; released on exit."""
        event, count = self._events.get(task_id, (asyncio.Event(), 0))
        self._events[task_id] = (event, count + 1)
        try:
            yield event
        finally:
            event, count = self._events[task_id]
            if count <= 1:
                del self._events[task_id]
            else:
                self._events[task_id] = (event, count - 1)

    def __len__(self) -> int:
        return len(self._events)
