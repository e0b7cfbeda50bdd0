"""Group commit of the engine's state changes.

Every runner's change is a :class:`StateWrite`: a lease-fenced update of its execution row plus
updates of its node runs. Writes queued while a transaction is committing go into the next one,
so many executions share a commit (one lock on SQLite, one round trip of BEGIN/COMMIT and one
fsync on PostgreSQL) without delaying a lone execution. Each write keeps its own fence: one
runner's lost lease skips only that runner's statements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, insert, literal, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from portside.server.clock import utcnow
from portside.server.flows.models import ExecutionRow, NodeRunRow
from portside.server.store import Database

log = logging.getLogger("portside.flows.writer")

EXEC = cast(Table, ExecutionRow.__table__)
NODES = cast(Table, NodeRunRow.__table__)
MAX_BATCH = 64
_ATTEMPTS = 3
#: Columns a recorded cancellation owns: once an execution is ``cancelled`` (the cancel call records it
#: before answering) the runner's later writes leave them alone; it still releases its lease.
_CANCEL_OWNED = ("status", "error_message", "error", "completed_at", "output_data")


def _keep_cancelled(values: dict[str, Any]) -> dict[str, Any]:
    """SET expressions that do not overwrite a recorded cancellation."""
    out = dict(values)
    for column in _CANCEL_OWNED:
        if column in out:
            col = EXEC.c[column]
            out[column] = case((EXEC.c.status == "cancelled", col), else_=literal(out[column], col.type))
    return out


class LeaseLost(Exception):
    """Another engine took this execution over; stop without writing."""


@dataclass
class StateWrite:
    """One runner's fenced change."""

    execution_id: str
    owner: str
    token: int
    execution: dict[str, Any] = field(default_factory=dict)
    nodes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    sweep: dict[str, Any] | None = None

    async def apply(self, s: AsyncSession, now: datetime) -> bool:
        """Run the statements; False (and nothing written) when the lease is no longer ours."""
        result = await s.execute(
            update(EXEC)
            .where(EXEC.c.id == self.execution_id, EXEC.c.lease_owner == self.owner, EXEC.c.lease_token == self.token)
            .values(updated_at=now, **_keep_cancelled(self.execution))
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        if self.inserts:
            await s.execute(insert(NODES), [{**row, "updated_at": now} for row in self.inserts])
        # node updates with the same columns go in one executemany
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for node_id, values in self.nodes:
            groups.setdefault(tuple(sorted(values)), []).append(
                {"b_node": node_id, **{f"b_{k}": v for k, v in values.items()}}
            )
        for columns, rows in groups.items():
            stmt = (
                update(NODES)
                .where(
                    NODES.c.execution_id == self.execution_id,
                    NODES.c.node_id == bindparam("b_node"),
                    NODES.c.status != "completed",
                )
                .values(updated_at=now, **{c: bindparam(f"b_{c}") for c in columns})
            )
            await s.execute(stmt, rows)
        if self.sweep:
            await s.execute(
                update(NODES)
                .where(NODES.c.execution_id == self.execution_id, NODES.c.status.in_(("pending", "running")))
                .values(updated_at=now, **self.sweep)
            )
        return True


@dataclass
class _Queued:
    write: StateWrite
    future: asyncio.Future[None]


class WriteQueue:
    """Leader-based group commit: the first writer commits for everyone queued behind it."""

    def __init__(self, db: Database, on_written: Callable[[StateWrite], None]) -> None:
        self.db = db
        self.on_written = on_written
        self._queue: list[_Queued] = []
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0
        self.writes = 0

    def start(self) -> None:
        """Nothing to start: commits run in the writers' own tasks."""

    async def stop(self) -> None:
        if self._drainer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._drainer
        for item in self._queue:
            if not item.future.done():
                item.future.set_exception(LeaseLost(item.write.execution_id))
        self._queue.clear()

    async def write(self, change: StateWrite) -> None:
        """Commit ``change`` (with whatever else is queued); LeaseLost if its fence refused it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(change, future))
        try:
            if not self._busy:
                self._busy = True
                try:
                    await self._drain()
                finally:
                    self._busy = False
                    if self._queue:  # cancelled with writes still waiting: hand them to a task
                        self._busy = True
                        self._drainer = asyncio.create_task(self._drain_and_release())
            await future
        except asyncio.CancelledError:
            if not future.done():
                future.cancel()  # may still be written (it is fenced); nobody waits for the outcome
            raise

    async def _drain_and_release(self) -> None:
        try:
            await self._drain()
        finally:
            self._busy = False

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                # outcome unknown: every write is idempotent under its fence, so queue them again
                self._queue[:0] = [item for item in batch if not item.future.done()]
                raise

    async def _commit(self, batch: list[_Queued]) -> None:
        batch.sort(key=lambda q: q.write.execution_id)  # one lock order across replicas
        error: BaseException | None = None
        results: list[bool] = []
        for attempt in range(_ATTEMPTS):
            now = utcnow()
            results = []
            try:
                async with self.db.transaction() as s:
                    for item in batch:
                        results.append(await item.write.apply(s, now))
                error = None
                break
            except DBAPIError as exc:  # deadlock or a dropped connection: the whole batch is retried
                error = exc
                log.warning("flow state batch failed (attempt %d): %s", attempt + 1, exc.__class__.__name__)
                await asyncio.sleep(0.05 * (attempt + 1))
            except Exception as exc:
                error = exc
                break
        if error is not None:
            results = [False] * len(batch)
        self.batches += 1
        self.writes += len(batch)
        for item, ok in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if error is not None:
                item.future.set_exception(error)
            elif ok:
                self.on_written(item.write)
                item.future.set_result(None)
            else:
                item.future.set_exception(LeaseLost(item.write.execution_id))
