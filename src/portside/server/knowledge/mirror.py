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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select, text

from portside.server.knowledge.index import SearchHit, VectorIndex
from portside.server.knowledge.models import KnowledgeChunkRow, KnowledgeStateRow, KnowledgeTombstoneRow
from portside.server.store import Database

log = logging.getLogger("portside.knowledge")

_PAGE = 4096
_REBUILD_LOCK = 0x4B4E4F57  # "KNOW": pg advisory lock held while rebuilding a shared index


def vector_from_bytes(blob: bytes, dim: int) -> NDArray[np.float32]:
    vec = np.frombuffer(blob, dtype="<f4")
    if vec.shape[0] != dim:
        raise ValueError(f"stored vector has {vec.shape[0]} values, expected {dim}")
    return vec.astype(np.float32, copy=False)


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

    @property
    def version(self) -> int:
        return self._version

    # -- reading the store ------------------------------------------------------------------------------

    async def _state(self) -> tuple[int, str]:
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(KnowledgeStateRow.version, KnowledgeStateRow.epoch).where(KnowledgeStateRow.id == 1)
                )
            ).one()
        return int(row[0]), str(row[1])

    async def _stored_count(self) -> int:
        async with self.db.session() as s:
            n = await s.scalar(
                select(func.count()).select_from(KnowledgeChunkRow).where(KnowledgeChunkRow.model_id == self.model_id)
            )
        return int(n or 0)

    async def _load_chunks(self, after_version: int | None) -> None:
        """Add every stored chunk (or those written after ``after_version``) to the index, page by page."""
        last = 0
        while True:
            q = (
                select(KnowledgeChunkRow.id, KnowledgeChunkRow.embedding, KnowledgeChunkRow.filters)
                .where(KnowledgeChunkRow.id > last, KnowledgeChunkRow.model_id == self.model_id)
                .order_by(KnowledgeChunkRow.id)
                .limit(_PAGE)
            )
            if after_version is not None:
                q = q.where(KnowledgeChunkRow.version > after_version)
            async with self.db.session() as s:
                rows = (await s.execute(q)).all()
            if not rows:
                return
            dim = self.index.dim
            mat = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
            await self.index.add([str(r[0]) for r in rows], mat, [r[2] or {} for r in rows])
            last = int(rows[-1][0])
            if len(rows) < _PAGE:
                return

    async def _replay_tombstones(self, after_version: int) -> None:
        async with self.db.session() as s:
            ids = (
                await s.scalars(
                    select(KnowledgeTombstoneRow.chunk_id).where(KnowledgeTombstoneRow.version > after_version)
                )
            ).all()
        for start in range(0, len(ids), _PAGE):
            await self.index.remove([str(i) for i in ids[start : start + _PAGE]])

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
                    await self.index.clear()
                    await self._load_chunks(None)
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _REBUILD_LOCK})
                await conn.commit()

    async def _rebuild(self, version: int, epoch: str) -> None:
        await self.index.clear()
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
        """Make a local index reflect the latest committed version (cheap when nothing changed)."""
        if self.shared:
            return
        if not self.ready.is_set():
            await self.ready.wait()
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
                await self.index.remove([str(i) for i in removed])
            if added_ids:
                await self.index.add([str(i) for i in added_ids], vectors, metadata)
            return
        if not self.ready.is_set():
            return  # the start-up build reads it from the store
        async with self._lock:
            if self._version == version - 1:  # nobody else wrote in between: apply it directly
                if removed:
                    await self.index.remove([str(i) for i in removed])
                if added_ids:
                    await self.index.add([str(i) for i in added_ids], vectors, metadata)
                self._version = version
                self._write_marker()
        if self._version < version:
            await self.refresh()

    async def search(self, vector: NDArray[np.float32], top_k: int, filter: dict[str, Any]) -> list[SearchHit]:
        return await self.index.search(vector, top_k=top_k, filter=filter)

    async def close(self) -> None:
        await self.index.close()
