"""One purge pass per kind: batched deletes of rows past their retention, never of rows still needed.

Each batch is its own short write transaction (keyset-paginated over the primary key), so a purge
never holds SQLite's single writer lock for long and a request waits at most for one batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, Text, and_, delete, func, literal, or_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from portside.server.sandboxes.models import CargoRow, ExecutionRow, SandboxRow
from portside.server.skills.models import SkillCandidateRow, SkillRunRow
from portside.server.store import Database
from portside.server.store.core_models import IdempotencyRow
from portside.server.workers.models import LeaseRow, TaskProgressRow, TaskRow

log = logging.getLogger("portside.retention")

_TERMINAL = ("succeeded", "failed", "cancelled")  # workers.domain.TERMINAL
_LEASE_ACTIVE = "active"  # workers.broker.ACTIVE


@dataclass
class Purged:
    """What one kind's pass removed: rows (all tables of the kind) and bytes of stored content."""

    rows: int = 0
    bytes: int = 0

    def add(self, other: Purged) -> None:
        self.rows += other.rows
        self.bytes += other.bytes

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "bytes": self.bytes}


def _size(*columns: Any) -> ColumnElement[int]:
    """Stored bytes of ``columns`` (text, JSON or blobs), on SQLite and PostgreSQL alike."""
    parts: list[ColumnElement[int]] = [
        func.coalesce(func.length(col if _is_plain(col) else sql_cast(col, Text)), 0) for col in columns
    ]
    total: ColumnElement[int] = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _is_plain(col: Any) -> bool:
    name = type(getattr(col, "type", None)).__name__
    return name in {"String", "Text", "LargeBinary"}


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


Cascade = Callable[[AsyncSession, list[Any]], Any]


async def purge_rows(
    db: Database,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    *,
    batch: int,
    size: ColumnElement[int] | None = None,
    keep: frozenset[Any] = frozenset(),
    cascade: Sequence[Cascade] = (),
) -> Purged:
    """Delete the rows of ``table`` matching ``where`` in batches; ``keep`` lists primary keys to spare.

    ``cascade`` functions run in each batch's transaction with the ids about to go (dependent rows);
    they return how many rows they removed.
    """
    pk = next(iter(table.primary_key.columns))
    out = Purged()
    last: Any = None
    while True:
        stmt = select(pk, size if size is not None else literal(0)).where(*where)
        if last is not None:
            stmt = stmt.where(pk > last)
        async with db.session() as s:
            rows = (await s.execute(stmt.order_by(pk).limit(batch))).all()
        if not rows:
            break
        last = rows[-1][0]
        doomed = [(r[0], int(r[1] or 0)) for r in rows if r[0] not in keep]
        if doomed:
            ids = [d[0] for d in doomed]
            async with db.transaction() as s:
                for fn in cascade:
                    out.rows += int(await fn(s, ids))
                # ``where`` again: a row that changed since it was read (e.g. a task retried) stays.
                gone = _rowcount(await s.execute(delete(table).where(pk.in_(ids), *where)))
            out.rows += gone
            out.bytes += (
                sum(b for _, b in doomed) if gone == len(ids) else int(sum(b for _, b in doomed) * gone / len(ids))
            )
        if len(rows) < batch:
            break
        await asyncio.sleep(0)  # let requests in between batches
    return out


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


# ---------------------------------------------------------------------------------------- the kinds


async def _referenced_executions(db: Database) -> frozenset[str]:
    """Execution ids that skill candidates cite as evidence (a JSON list per candidate)."""
    async with db.session() as s:
        lists = (await s.execute(select(SkillCandidateRow.source_execution_ids))).scalars().all()
    return frozenset(str(i) for ids in lists if isinstance(ids, list) for i in ids)


async def execution_output(db: Database, cutoff: datetime, *, batch: int) -> Purged:
    """Executions of sandboxes deleted before ``cutoff`` (or of sandboxes whose record is gone).

    Executions that a skill candidate or a skill run cites are kept: they are that skill's evidence.
    """
    sandbox = select(SandboxRow.id).where(SandboxRow.id == ExecutionRow.sandbox_id)
    where = [
        or_(
            sandbox.where(SandboxRow.deleted_at.is_not(None), SandboxRow.deleted_at < cutoff).exists(),
            and_(~sandbox.exists(), ExecutionRow.created_at < cutoff),
        ),
        ExecutionRow.id.not_in(select(SkillRunRow.execution_id).where(SkillRunRow.execution_id.is_not(None))),
    ]
    size = _size(ExecutionRow.code, ExecutionRow.output, ExecutionRow.error, ExecutionRow.data)
    keep = await _referenced_executions(db)
    return await purge_rows(db, _table(ExecutionRow), where, batch=batch, size=size, keep=keep)


async def _task_dependents(s: AsyncSession, ids: list[Any]) -> int:
    leases = await s.execute(delete(LeaseRow).where(LeaseRow.task_id.in_(ids), LeaseRow.state != _LEASE_ACTIVE))
    progress = await s.execute(delete(TaskProgressRow).where(TaskProgressRow.task_id.in_(ids)))
    return _rowcount(leases) + _rowcount(progress)


async def finished_tasks(db: Database, cutoff: datetime, *, batch: int) -> Purged:
    """Tasks that finished before ``cutoff``, their ended leases and progress; then orphaned leftovers.

    Queued and running tasks and active leases are never touched.
    """
    finished = func.coalesce(TaskRow.finished_at, TaskRow.updated_at)
    size = _size(TaskRow.input, TaskRow.output, TaskRow.error, TaskRow.progress)
    out = await purge_rows(
        db,
        _table(TaskRow),
        [TaskRow.status.in_(_TERMINAL), finished < cutoff],
        batch=batch,
        size=size,
        cascade=[_task_dependents],
    )
    task = select(TaskRow.id).where(TaskRow.id == LeaseRow.task_id)
    out.add(
        await purge_rows(
            db,
            _table(LeaseRow),
            [LeaseRow.state != _LEASE_ACTIVE, LeaseRow.issued_at < cutoff, ~task.exists()],
            batch=batch,
            size=_size(LeaseRow.outcome),
        )
    )
    progress_task = select(TaskRow.id).where(TaskRow.id == TaskProgressRow.task_id)
    out.add(
        await purge_rows(
            db,
            _table(TaskProgressRow),
            [TaskProgressRow.at < cutoff, ~progress_task.exists()],
            batch=batch,
            size=_size(TaskProgressRow.message, TaskProgressRow.data),
        )
    )
    return out


async def deleted_records(db: Database, cutoff: datetime, *, batch: int) -> Purged:
    """Records of sandboxes and cargos deleted before ``cutoff`` (a cargo once no sandbox row names it)."""
    out = await purge_rows(
        db,
        _table(SandboxRow),
        [SandboxRow.deleted_at.is_not(None), SandboxRow.deleted_at < cutoff],
        batch=batch,
        size=_size(SandboxRow.last_error),
    )
    users = select(SandboxRow.id).where(SandboxRow.cargo_id == CargoRow.id)
    out.add(
        await purge_rows(
            db,
            _table(CargoRow),
            [CargoRow.deleted_at.is_not(None), CargoRow.deleted_at < cutoff, ~users.exists()],
            batch=batch,
        )
    )
    return out


async def idempotency_records(db: Database, cutoff: datetime, now: datetime, *, batch: int) -> Purged:
    """Idempotency records created before ``cutoff``: completed ones, and pending ones whose owner is gone.

    A pending record whose lease is still live belongs to a running request and stays, whatever its age.
    """
    where = [
        IdempotencyRow.created_at < cutoff,
        or_(
            IdempotencyRow.state == "completed",
            IdempotencyRow.lease_expires_at.is_(None),
            IdempotencyRow.lease_expires_at < now,
        ),
    ]
    size = _size(IdempotencyRow.body, IdempotencyRow.headers, IdempotencyRow.effects)
    return await purge_rows(db, _table(IdempotencyRow), where, batch=batch, size=size)


async def expired_sandbox_ids(db: Database, cutoff: datetime, *, limit: int) -> list[tuple[str, str]]:
    """(sandbox id, cargo id) of live records whose TTL ran out before ``cutoff``, oldest first."""
    async with db.session() as s:
        rows = (
            await s.execute(
                select(SandboxRow.id, SandboxRow.cargo_id)
                .where(
                    SandboxRow.deleted_at.is_(None),
                    SandboxRow.expires_at.is_not(None),
                    SandboxRow.expires_at < cutoff,
                )
                .order_by(SandboxRow.expires_at)
                .limit(limit)
            )
        ).all()
    return [(str(r[0]), str(r[1])) for r in rows]
