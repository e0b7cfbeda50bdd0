"""Keeps a vector index in step with the vectors stored in ``knowledge_chunks``.

* A **shared** index (pgvector: a table in the same PostgreSQL) is written by whichever replica made the
  change, right after its transaction commits; at start-up it is rebuilt if its size disagrees with the
  stored vectors (under an advisory lock, once for all replicas).
* A **local** index (numpy-exact in memory, sqlite-vec in a file of the data dir) belongs to one process.
  It remembers the store ``version`` it reflects. Before a search it reads ``knowledge_state.version``
  (one primary-key lookup); when that moved, it replays tombstones and chunks with a higher version, so
  replicas see each other's writes. A sqlite-vec file also keeps a marker (epoch, version) next to it, so
  a restart only replays what changed since; a missing or foreign marker means a full rebuild.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, make_url, select, text

from portside.server.knowledge.index import SearchHit, VectorIndex
from portside.server.knowledge.models import KnowledgeChunkRow, KnowledgeStateRow, KnowledgeTombstoneRow
from portside.server.store import Database

log = logging.getLogger("portside.knowledge")

_PAGE = 4096
_REBUILD_LOCK = 0x4B4E4F57  # "KNOW": pg advisory lock held while rebuilding a shared index


def vector_to_bytes(vec: NDArray[np.float32]) -> bytes:
    return np.asarray(vec, dtype="<f4").tobytes()


class IndexMirror:
    """A :class:`VectorIndex` plus the bookkeeping that keeps it equal to the stored vectors."""

    def __init__(self, db: Database, index: VectorIndex, model_id: str, *, marker: Path | None = None) -> None:
        self.db = db
        self.index = index
        self.model_id = model_id
        self.shared = index.name == "pgvector"
        self._marker = marker
        self._lock = asyncio.Lock()
        self._version = -1  # store version reflected by a local index; -1: not built
        self._epoch: str | None = None
        self.ready = asyncio.Event()
        # Owner census of a local index: a search by the only owner needs no owner filter (a filter that
        # keeps every row costs a copy of the matrix in numpy-exact).
        self._owner_of: dict[str, str] = {}
        self._owners: Counter[str] = Counter()
        self._direct: sqlite3.Connection | None = None  # see _sqlite_state
        self._direct_usable = db.is_sqlite

    @property
    def version(self) -> int:
        return self._version

    # -- reading the store ------------------------------------------------------------------------------

    def _sqlite_state(self) -> tuple[int, str] | None:
        """``(version, epoch)`` read through a plain ``sqlite3`` connection of our own, or None.

        On a SQLite file the version check before every search is a few microseconds this way, against
        milliseconds of thread hops through the async driver (whose GIL traffic also slowed the query
        embedding running beside it). WAL readers do not wait for writers; anything unusual (busy, a
        missing file) falls back to the async engine.
        """
        if not self._direct_usable:
            return None
        try:
            if self._direct is None:
                name = make_url(self.db.url).database
                if not name or name == ":memory:" or name.startswith("file:") or not Path(name).is_file():
                    self._direct_usable = False
                    return None
                self._direct = sqlite3.connect(name, timeout=0.05, isolation_level=None, check_same_thread=False)
            row = self._direct.execute("SELECT version, epoch FROM knowledge_state WHERE id = 1").fetchone()
        except sqlite3.Error:
            return None
        return (int(row[0]), str(row[1])) if row is not None else None

    async def _state(self) -> tuple[int, str]:
        """``(version, epoch)`` of the store: one primary-key read, outside any transaction."""
        state = self._sqlite_state()
        if state is not None:
            return state
        query = select(KnowledgeStateRow.version, KnowledgeStateRow.epoch).where(KnowledgeStateRow.id == 1)
        async with self.db.engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            row = (await conn.execute(query)).one()
        return int(row[0]), str(row[1])

    async def _stored_count(self) -> int:
        async with self.db.session() as s:
            n = await s.scalar(
                select(func.count()).select_from(KnowledgeChunkRow).where(KnowledgeChunkRow.model_id == self.model_id)
            )
        return int(n or 0)

    async def _load_chunks(self, after_version: int | None) -> None:
        """Add every stored chunk (or those written after ``after_version``) to the index, page by page."""
        c = KnowledgeChunkRow
        columns = (c.id, c.embedding, c.filters)
        if after_version is not None:  # ids through the version index, then rows by primary key
            async with self.db.session() as s:
                ids = (
                    await s.scalars(select(c.id).where(c.version > after_version, c.model_id == self.model_id))
                ).all()
            for start in range(0, len(ids), _PAGE):
                async with self.db.session() as s:
                    rows = (await s.execute(select(*columns).where(c.id.in_(ids[start : start + _PAGE])))).all()
                await self._add_rows(rows)
            return
        last = 0
        while True:
            q = select(*columns).where(c.id > last, c.model_id == self.model_id).order_by(c.id).limit(_PAGE)
            async with self.db.session() as s:
                rows = (await s.execute(q)).all()
            await self._add_rows(rows)
            if len(rows) < _PAGE:
                return
            last = int(rows[-1][0])

    async def _add_rows(self, rows: Sequence[Any]) -> None:
        if rows:
            mat = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), self.index.dim)
            await self._add([str(r[0]) for r in rows], mat, [r[2] or {} for r in rows])

    async def _replay_tombstones(self, after_version: int) -> None:
        async with self.db.session() as s:
            ids = (
                await s.scalars(
                    select(KnowledgeTombstoneRow.chunk_id).where(KnowledgeTombstoneRow.version > after_version)
                )
            ).all()
        for start in range(0, len(ids), _PAGE):
            await self._remove([str(i) for i in ids[start : start + _PAGE]])

    # -- index writes (keeping the owner census) --------------------------------------------------------

    async def _add(self, ids: Sequence[str], vectors: NDArray[np.float32], metadata: Sequence[dict[str, Any]]) -> None:
        await self.index.add(ids, vectors, metadata)
        if self.shared:
            return
        for item_id, meta in zip(ids, metadata, strict=True):
            owner = str(meta.get("owner"))
            previous = self._owner_of.get(item_id)
            if previous is not None:
                self._owners[previous] -= 1
            self._owner_of[item_id] = owner
            self._owners[owner] += 1
        self._owners = +self._owners  # drop zero counts

    async def _remove(self, ids: Sequence[str]) -> None:
        await self.index.remove(ids)
        if self.shared:
            return
        for item_id in ids:
            owner = self._owner_of.pop(item_id, None)
            if owner is not None:
                self._owners[owner] -= 1
        self._owners = +self._owners

    async def _clear(self) -> None:
        await self.index.clear()
        self._owner_of.clear()
        self._owners.clear()

    # -- marker (sqlite-vec) ----------------------------------------------------------------------------

    def _read_marker(self) -> tuple[str, int] | None:
        if self._marker is None:
            return None
        try:
            data = json.loads(self._marker.read_text())
            if data.get("model_id") != self.model_id or data.get("dim") != self.index.dim:
                return None
            return str(data["epoch"]), int(data["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_marker(self) -> None:
        if self._marker is None or self._epoch is None:
            return
        tmp = self._marker.with_suffix(".tmp")
        data = {"epoch": self._epoch, "version": self._version, "model_id": self.model_id, "dim": self.index.dim}
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._marker)

    # -- bringing the index up to date ------------------------------------------------------------------

    async def start(self) -> None:
        """Build or catch up the index from the store (run once, in the background, after start-up)."""
        try:
            if self.shared:
                await self._reconcile_shared()
            else:
                async with self._lock:
                    marker = self._read_marker()
                    version, epoch = await self._state()
                    if marker is not None and marker[0] == epoch and marker[1] <= version:
                        self._epoch, self._version = marker
                        await self._catch_up(version, epoch)
                        if await self.index.count() != await self._stored_count():
                            await self._rebuild(version, epoch)
                    else:
                        await self._rebuild(version, epoch)
        finally:
            self.ready.set()

    async def _reconcile_shared(self) -> None:
        async with self.db.engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _REBUILD_LOCK})
            try:
                if await self.index.count() != await self._stored_count():
                    log.info("rebuilding the shared %s index from stored vectors", self.index.name)
                    await self._clear()
                    await self._load_chunks(None)
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _REBUILD_LOCK})
                await conn.commit()

    async def _rebuild(self, version: int, epoch: str) -> None:
        await self._clear()
        await self._load_chunks(None)
        self._version, self._epoch = version, epoch
        self._write_marker()

    async def _catch_up(self, version: int, epoch: str) -> None:
        if epoch != self._epoch or self._version < 0:
            await self._rebuild(version, epoch)
            return
        seen = self._version
        await self._replay_tombstones(seen)  # removals first: a replayed chunk must not be dropped again
        await self._load_chunks(seen)
        self._version = version
        self._write_marker()

    async def refresh(self) -> None:
        """Make a local index reflect the latest committed version (one row read when nothing changed)."""
        if not self.ready.is_set():
            await self.ready.wait()
        if self.shared:
            return
        version, epoch = await self._state()
        if version == self._version and epoch == self._epoch:
            return
        async with self._lock:
            version, epoch = await self._state()
            if version != self._version or epoch != self._epoch:
                await self._catch_up(version, epoch)

    async def applied(
        self,
        version: int,
        removed: Sequence[int],
        added_ids: Sequence[int],
        vectors: NDArray[np.float32],
        metadata: Sequence[dict[str, Any]],
    ) -> None:
        """Apply a write this process just committed as ``version``."""
        if self.shared:
            if removed:
                await self._remove([str(i) for i in removed])
            if added_ids:
                await self._add([str(i) for i in added_ids], vectors, metadata)
            return
        if not self.ready.is_set():
            return  # the start-up build reads it from the store
        async with self._lock:
            if self._version == version - 1:  # nobody else wrote in between: apply it directly
                if removed:
                    await self._remove([str(i) for i in removed])
                if added_ids:
                    await self._add([str(i) for i in added_ids], vectors, metadata)
                self._version = version
                self._write_marker()
        if self._version < version:
            await self.refresh()

    async def search(self, vector: NDArray[np.float32], top_k: int, filter: dict[str, Any]) -> list[SearchHit]:
        """Nearest entries matching ``filter`` (an ``owner`` equality is dropped when it is the only owner)."""
        if not self.shared and "owner" in filter and set(self._owners) == {filter["owner"]}:
            filter = {k: v for k, v in filter.items() if k != "owner"}
        return await self.index.search(vector, top_k=top_k, filter=filter)

    async def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        await self.index.close()
