"""In-process change notifications for executions (wakes long-polls and SSE streams).

Only a hint: waiters always re-read the store, and also poll it, so changes made by
another replica are seen too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class ExecutionHub:
    """Per-execution wake-up events: for every change, or only for the end of an execution."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._enders: dict[str, set[asyncio.Event]] = {}

    def publish(self, execution_id: str, *, finished: bool = False) -> None:
        """Wake everyone watching ``execution_id`` (and those waiting for its end when ``finished``)."""
        for event in self._waiters.get(execution_id, ()):
            event.set()
        if finished:
            for event in self._enders.get(execution_id, ()):
                event.set()

    @contextmanager
    def watch(self, execution_id: str, *, finished_only: bool = False) -> Iterator[asyncio.Event]:
        """An event set when ``execution_id`` changes (or finishes); clear it after each wake-up."""
        table = self._enders if finished_only else self._waiters
        event = asyncio.Event()
        table.setdefault(execution_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = table.get(execution_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del table[execution_id]


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; True when it fired."""
    if timeout <= 0:
        return event.is_set()
    try:
        await asyncio.wait_for(event.wait(), timeout)
        return True
    except asyncio.TimeoutError:
        return False
