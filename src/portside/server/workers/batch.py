"""Group commit: many small writes from concurrent requests share one transaction.

Callers ``await commit.run(op)``. A single loop takes every queued op, applies them grouped by
kind inside one transaction (each kind's handler uses executemany), commits, then resolves each
caller's future with its own result or error. While one batch commits the next one fills up, so
throughput grows with load while an idle system still commits each op at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError

from portside.server.workers.store import Exec, WorkersStore

log = logging.getLogger("portside.workers.batch")


@dataclass
class Op:
    """One queued write. Handlers set ``result`` or ``error``; ``after`` runs once committed."""

    kind: str
    payload: Any
    result: Any = None
    error: BaseException | None = None
    future: asyncio.Future[Any] | None = None
    after: list[Callable[[], None]] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)

    def reset(self) -> None:
        self.result = None
        self.error = None
        self.after = []
        self.undo = []


BatchHandler = Callable[[Exec, list[Op]], Awaitable[None]]


class GroupCommit:
    """Runs ops of registered kinds in shared transactions."""

    def __init__(self, store: WorkersStore, *, max_batch: int = 500) -> None:
        self.store = store
        self.max_batch = max_batch
        self._handlers: dict[str, BatchHandler] = {}
        self._queue: list[Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def register(self, kind: str, handler: BatchHandler) -> None:
        self._handlers[kind] = handler

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="workers-group-commit")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for op in self._queue:
            if op.future is not None and not op.future.done():
                op.future.set_exception(RuntimeError("workers service stopped"))
        self._queue.clear()

    async def run(self, kind: str, payload: Any) -> Any:
        """Queue one op and wait for its committed result (raises its error)."""
        op = Op(kind=kind, payload=payload, future=asyncio.get_running_loop().create_future())
        if self._task is None:  # not started (e.g. used before start-up): run it alone
            await self._execute([op])
        else:
            self._queue.append(op)
            self._wake.set()
        assert op.future is not None
        return await op.future

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    await self._execute(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # pragma: no cover - _execute resolves everything
                    log.exception("group commit failed")
                    for op in batch:
                        _resolve(op, exc)

    async def _execute(self, batch: list[Op]) -> None:
        last: BaseException | None = None
        for attempt in range(4):
            try:
                await self._apply(batch)
            except (IntegrityError, DBAPIError) as exc:
                # Lost a race with another replica (unique key, deadlock, serialization): retry.
                last = exc
                await asyncio.sleep(0.005 * (attempt + 1))
                continue
            for op in batch:
                for fn in op.after:
                    try:
                        fn()
                    except Exception:  # pragma: no cover - post-commit hooks are best effort
                        log.exception("post-commit hook failed")
                _resolve(op, op.error, op.result)
            return
        if len(batch) > 1:  # isolate the op that keeps failing
            for op in batch:
                await self._execute([op])
            return
        log.warning("write failed after retries: %s", last)
        _resolve(batch[0], last or RuntimeError("write failed"))

    async def _apply(self, batch: list[Op]) -> None:
        by_kind: dict[str, list[Op]] = {}
        for op in batch:
            op.reset()
            by_kind.setdefault(op.kind, []).append(op)
        try:
            async with self.store.tx() as session:
                for kind, ops in by_kind.items():
                    await self._handlers[kind](session, ops)
        except BaseException:
            for op in batch:  # the transaction rolled back: revert in-memory effects
                for fn in op.undo:
                    fn()
            raise


def _resolve(op: Op, error: BaseException | None, result: Any = None) -> None:
    fut = op.future
    if fut is None or fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
