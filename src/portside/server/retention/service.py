"""The retention service: one purge at a time (across replicas), its report, figures and loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from portside.server.auth import Principal
from portside.server.clock import utcnow
from portside.server.errors import DomainError
from portside.server.retention import purge
from portside.server.retention.config import KINDS, RetentionSettings
from portside.server.sandboxes import files
from portside.server.store import Database

log = logging.getLogger("portside.retention")

#: "GC" + "PORT": the PostgreSQL advisory lock held by the replica running a purge.
GC_LOCK_ID = 0x4743504F
#: The caller the purge acts as when it deletes expired sandboxes through the sandbox service.
SYSTEM = Principal(key_id="system", name="retention", owner="admin", scopes=frozenset({"admin"}))


@dataclass
class GcReport:
    """What one purge did."""

    started_at: datetime
    finished_at: datetime | None = None
    #: True when another replica was purging: this one did nothing.
    skipped: bool = False
    kinds: dict[str, purge.Purged] = field(default_factory=dict)
    store_bytes_before: int | None = None
    store_bytes_after: int | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def duration_seconds(self) -> float:
        end = self.finished_at or utcnow()
        return max(0.0, (end - self.started_at).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": round(self.duration_seconds, 3),
            "skipped": self.skipped,
            "purged": {k: v.as_dict() for k, v in self.kinds.items()},
            "rows": sum(v.rows for v in self.kinds.values()),
            "bytes": sum(v.bytes for v in self.kinds.values()),
            "store": {"bytes_before": self.store_bytes_before, "bytes_after": self.store_bytes_after},
            "errors": dict(self.errors),
        }


def _sqlite_files(db: Database) -> list[Path]:
    name = db.engine.url.database
    if not name or name == ":memory:":
        return []
    base = Path(name)
    return [base, base.with_name(base.name + "-wal")]


class RetentionService:
    """Purges what is past its retention; any replica may run it, one at a time."""

    def __init__(self, db: Database, settings: RetentionSettings, services: Mapping[str, Any]) -> None:
        self.db = db
        self.settings = settings
        self.services = services
        self._lock = asyncio.Lock()
        self.last: GcReport | None = None
        self.runs = 0
        #: Rows and bytes purged per kind since this process started.
        self.totals: dict[str, purge.Purged] = {k: purge.Purged() for k in KINDS}

    # ------------------------------------------------------------------ the lock

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[bool]:
        """True when this replica may purge now: on PostgreSQL, holding a try-lock; SQLite has one writer."""
        if self.db.is_sqlite:
            yield True
            return
        async with self.db.engine.connect() as conn:
            got = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": GC_LOCK_ID})).scalar())
            await conn.commit()
            try:
                yield got
            finally:
                if got:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": GC_LOCK_ID})
                    await conn.commit()

    # ------------------------------------------------------------------ store size

    async def store_bytes(self) -> int | None:
        """Size of the store: the SQLite file and its WAL, or the PostgreSQL database."""
        if self.db.is_sqlite:
            paths = _sqlite_files(self.db)
            return sum(p.stat().st_size for p in paths if p.exists()) if paths else None
        try:
            async with self.db.session() as s:
                return int((await s.execute(text("SELECT pg_database_size(current_database())"))).scalar_one())
        except Exception:  # pragma: no cover - permissions
            return None

    # ------------------------------------------------------------------ the purge

    async def run(self) -> GcReport:
        """Purge every kind once (waits for a purge already running in this process)."""
        async with self._lock, self._exclusive() as mine:
            report = GcReport(started_at=utcnow())
            if not mine:
                report.skipped = True
                report.finished_at = utcnow()
                return report
            report.store_bytes_before = await self.store_bytes()
            for kind in KINDS:
                keep = self.settings.keep(kind)
                if keep is None:
                    continue
                try:
                    report.kinds[kind] = await self._purge(kind, utcnow() - keep)
                except Exception as exc:  # one kind failing must not stop the others
                    log.exception("retention: purging %s failed", kind)
                    report.errors[kind] = f"{type(exc).__name__}: {exc}"[:500]
            try:
                await self.db.incremental_vacuum()
            except Exception as exc:
                log.exception("retention: incremental vacuum failed")
                report.errors["vacuum"] = f"{type(exc).__name__}: {exc}"[:500]
            report.store_bytes_after = await self.store_bytes()
            report.finished_at = utcnow()
            self._record(report)
            return report

    async def _purge(self, kind: str, cutoff: datetime) -> purge.Purged:
        batch = self.settings.batch_size
        if kind == "expired_sandboxes":
            return await self._expired_sandboxes(cutoff)
        if kind == "execution_output":
            return await purge.execution_output(self.db, cutoff, batch=batch)
        if kind == "finished_tasks":
            return await purge.finished_tasks(self.db, cutoff, batch=batch)
        if kind == "deleted_records":
            return await purge.deleted_records(self.db, cutoff, batch=batch)
        if kind == "idempotency_records":
            return await purge.idempotency_records(self.db, cutoff, utcnow(), batch=batch)
        raise ValueError(f"unknown retention kind {kind!r}")  # pragma: no cover

    async def _expired_sandboxes(self, cutoff: datetime) -> purge.Purged:
        """Delete sandboxes expired before ``cutoff`` through the sandbox service's own delete path."""
        out = purge.Purged()
        sandboxes = self.services.get("sandboxes")
        if sandboxes is None:
            return out
        for sandbox_id, cargo_id in await purge.expired_sandbox_ids(self.db, cutoff, limit=self.settings.batch_size):
            workspace: Path = sandboxes.workspace(cargo_id)
            before = await asyncio.to_thread(files.usage_bytes, workspace)
            try:
                await sandboxes.delete(SYSTEM, sandbox_id)
            except DomainError as exc:  # deleted meanwhile (by its owner or another replica)
                log.debug("retention: sandbox %s: %s", sandbox_id, exc.message)
                continue
            after = await asyncio.to_thread(files.usage_bytes, workspace)
            out.rows += 1
            out.bytes += max(0, before - after)
        return out

    def _record(self, report: GcReport) -> None:
        self.last = report
        self.runs += 1
        for kind, purged in report.kinds.items():
            self.totals.setdefault(kind, purge.Purged()).add(purged)
        if report.kinds and any(p.rows for p in report.kinds.values()):
            log.info(
                "retention: purged %s in %.1fs (store %s -> %s bytes)",
                ", ".join(f"{k} {p.rows} rows/{p.bytes} B" for k, p in report.kinds.items() if p.rows),
                report.duration_seconds,
                report.store_bytes_before,
                report.store_bytes_after,
            )

    # ------------------------------------------------------------------ figures and loop

    def figures(self) -> dict[str, Any]:
        """For metrics: the last run and what was purged per kind since this process started."""
        last = self.last
        return {
            "runs": self.runs,
            "last_run_at": last.finished_at.timestamp() if last and last.finished_at else None,
            "last_run_seconds": round(last.duration_seconds, 3) if last else None,
            "store_bytes": last.store_bytes_after if last else None,
            "purged": {k: v.as_dict() for k, v in self.totals.items()},
        }

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Purge every ``interval_seconds`` (the first after ``first_run_seconds``) until ``stop`` is set."""
        delay = self.settings.first_run_seconds
        while True:
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return
            except asyncio.TimeoutError:
                pass
            started = time.monotonic()
            try:
                await self.run()
            except Exception:  # keep purging on the next tick
                log.exception("retention: purge failed")
            delay = max(1.0, self.settings.interval_seconds - (time.monotonic() - started))
