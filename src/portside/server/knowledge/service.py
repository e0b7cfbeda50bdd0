"""The knowledge service: add, get, list, delete and search knowledge items; assemble RAG context.

Items belong to an owner (the caller's principal) and optionally to an agent. Each item is split into
overlapping chunks; every chunk is embedded with the local MiniLM model and stored, vector included, in
the database (the source of truth on SQLite and PostgreSQL). A vector index mirrors the stored vectors
for fast search (see :mod:`portside.server.knowledge.mirror`). Embedding is CPU work: it runs in a
worker thread, in batches, one batch at a time. The model loads on first use, or in the background after
start-up when ``warm`` is on.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from portside.server.clock import as_utc, utcnow
from portside.server.errors import Conflict, DomainError, InvalidInput, NotFound, PayloadTooLarge
from portside.server.ids import new_id
from portside.server.knowledge.chunking import Chunk, chunk_markdown, chunk_text
from portside.server.knowledge.embeddings import Embedder, MiniLMEmbedder
from portside.server.knowledge.index import (
    NumpyIndex,
    PgVectorIndex,
    SqliteVecIndex,
    VectorIndex,
    pgvector_available,
    sqlite_vec_available,
)
from portside.server.knowledge.mirror import IndexMirror, vector_to_bytes
from portside.server.knowledge.models import (
    KnowledgeChunkRow,
    KnowledgeItemRow,
    KnowledgeStateRow,
    KnowledgeTombstoneRow,
)
from portside.server.knowledge.records import (
    CHUNKING_MODES,
    Context,
    Item,
    KnowledgeSettings,
    NewItem,
    Passage,
    check_agent_id,
    check_item_id,
    check_metadata,
    check_source_type,
    index_metadata,
    metadata_filter,
)
from portside.server.store import Database

__all__ = ["FILTER_KEYS", "KnowledgeService", "shared_embedder"]

log = logging.getLogger("portside.knowledge")

#: Metadata keys the sqlite-vec index stores as columns (filters on them run inside the KNN query).
FILTER_KEYS = ("owner", "agent_id", "source_type")
_EMBED_BATCH = 8  # texts per worker-thread call: small units keep every CPU busy to the end
_MAX_FETCH = 4096
_MAX_TOP_K = 100
_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_MD_SUFFIXES = (".md", ".markdown", ".mdx")

_embedder_lock = threading.Lock()
_embedder: MiniLMEmbedder | None = None


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def shared_embedder() -> MiniLMEmbedder:
    """The process-wide MiniLM embedder (the model is loaded once per process, on first use).

    One onnxruntime thread per run: the service runs batches side by side instead (one per CPU), which
    keeps cores busy without intra-op barriers, and a query never waits for a batch's threads to meet.
    On a loaded 2-core machine that made a query 2-3x faster and ingestion faster too.
    """
    global _embedder
    with _embedder_lock:
        if _embedder is None:
            _embedder = MiniLMEmbedder(threads=1)
        return _embedder


def _item(row: KnowledgeItemRow, *, content: bool, replaced: bool = False) -> Item:
    return Item(
        id=row.id,
        owner=row.owner,
        agent_id=row.agent_id,
        source=row.source,
        source_type=row.source_type,
        metadata=dict(row.meta or {}),
        timestamp=as_utc(row.source_timestamp or row.created_at),
        chunk_count=row.chunk_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
        content=row.content if content else None,
        replaced=replaced,
    )


_ITEM_COLUMNS = (
    KnowledgeItemRow.id.label("item_id"),
    KnowledgeItemRow.owner.label("item_owner"),
    KnowledgeItemRow.agent_id.label("item_agent_id"),
    KnowledgeItemRow.source.label("item_source"),
    KnowledgeItemRow.source_type.label("item_source_type"),
    KnowledgeItemRow.meta.label("item_metadata"),
    KnowledgeItemRow.source_timestamp.label("item_source_timestamp"),
    KnowledgeItemRow.chunk_count.label("item_chunk_count"),
    KnowledgeItemRow.created_at.label("item_created_at"),
    KnowledgeItemRow.updated_at.label("item_updated_at"),
)


def _summary(row: Row[Any]) -> Item:
    """An item without content from a row with :data:`_ITEM_COLUMNS`."""
    return Item(
        id=row.item_id,
        owner=row.item_owner,
        agent_id=row.item_agent_id,
        source=row.item_source,
        source_type=row.item_source_type,
        metadata=dict(row.item_metadata or {}),
        timestamp=as_utc(row.item_source_timestamp or row.item_created_at),
        chunk_count=row.item_chunk_count,
        created_at=row.item_created_at,
        updated_at=row.item_updated_at,
    )


class _Prepared:
    """An item validated and chunked, waiting for its vectors."""

    def __init__(self, item: NewItem, item_id: str, metadata: dict[str, Any], chunks: list[Chunk]) -> None:
        self.item = item
        self.id = item_id
        self.metadata = metadata
        self.chunks = chunks


class KnowledgeService:
    """Knowledge items with their chunk vectors in the store, searched through a mirrored vector index.

    Call :meth:`start` once (opens the index; fast) and :meth:`prepare` in the background (builds the
    index from stored vectors and warms the model); :meth:`stop` at shutdown.
    """

    def __init__(
        self,
        db: Database,
        *,
        data_dir: Path | None = None,
        settings: KnowledgeSettings | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.db = db
        self.data_dir = data_dir
        self.settings = settings or KnowledgeSettings()
        self.embedder: Embedder = embedder or shared_embedder()
        self._mirror: IndexMirror | None = None
        self._embed_slots = asyncio.Semaphore(usable_cpus())
        #: What ``/v1/ready`` shows under ``knowledge_index``.
        self.status: dict[str, Any] = {"ok": False, "backend": None, "model": self.embedder.model_id}

    # -- lifecycle --------------------------------------------------------------------------------------

    @property
    def index_name(self) -> str | None:
        """``pgvector``, ``sqlite-vec`` or ``numpy-exact`` once started."""
        return self._mirror.index.name if self._mirror else None

    async def start(self) -> None:
        """Open the vector index (the store must be migrated). Does not load the model."""
        index = await self._open_index()
        on_disk = index.name == "sqlite-vec" and self.data_dir is not None
        marker = self._vec_path().with_suffix(".json") if on_disk else None
        self._mirror = IndexMirror(self.db, index, self.embedder.model_id, marker=marker)
        self.status.update(ok=True, backend=index.name, state="building")

    async def prepare(self) -> None:
        """Build the index from the stored vectors, then (if ``warm``) load the model; re-embed stale chunks."""
        mirror = self._require_mirror()
        await mirror.start()
        self.status.update(state="ready", version=mirror.version)
        if self.settings.warm:
            await asyncio.to_thread(self._load_model)
        await self.reembed_stale()

    async def stop(self) -> None:
        if self._mirror is not None:
            await self._mirror.close()
            self._mirror = None
        self.status.update(ok=False, state="stopped")

    def _load_model(self) -> None:
        load = getattr(self.embedder, "load", None)
        if callable(load):
            load()
        self.status["model_loaded"] = True

    def _vec_path(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "knowledge-vec.db"

    async def _open_index(self) -> VectorIndex:
        choice = self.settings.index
        dim = self.embedder.dim
        if choice not in ("auto", "pgvector", "sqlite-vec", "numpy-exact"):
            raise InvalidInput(f"unknown knowledge index {choice!r}", code="invalid_config")
        if choice in ("auto", "pgvector") and not self.db.is_sqlite:
            if choice == "pgvector" or await pgvector_available(self.db.engine):
                try:
                    return await PgVectorIndex.open(self.db.engine, dim)
                except Exception as exc:
                    if choice == "pgvector":
                        raise
                    log.warning("pgvector is installed but cannot be used (%s); searching in memory", exc)
        sqlite_ok = self.db.is_sqlite and self.data_dir is not None
        if choice == "sqlite-vec" or (choice == "auto" and sqlite_ok and sqlite_vec_available()):
            path = self._vec_path() if self.data_dir is not None else Path(":memory:")
            try:
                return await SqliteVecIndex.open(path, dim, filter_keys=FILTER_KEYS)
            except Conflict:  # another layout (older dim/keys): it is only a cache, rebuild it
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
                return await SqliteVecIndex.open(path, dim, filter_keys=FILTER_KEYS)
        return NumpyIndex(dim)

    def _require_mirror(self) -> IndexMirror:
        if self._mirror is None:
            raise DomainError("the knowledge service is not started", code="unavailable", status=503)
        return self._mirror

    # -- embedding --------------------------------------------------------------------------------------

    async def _embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Vectors of ``texts``: batches of similar length, computed in worker threads, one per CPU at a time.

        Small batches, longest first: the CPUs pull them in turn and finish together (large batches of
        sorted texts left one CPU idle while another ran the longest batch), and less padding is computed.
        """
        out = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths: little padding

        async def run(idx: list[int]) -> None:
            async with self._embed_slots:
                out[idx] = await asyncio.to_thread(self.embedder.embed, [texts[i] for i in idx])

        await asyncio.gather(*(run(order[i : i + _EMBED_BATCH]) for i in range(0, len(order), _EMBED_BATCH)))
        self.status["model_loaded"] = True
        return out

    async def _embed_query(self, query: str) -> NDArray[np.float32]:
        """One query's vector; it does not queue behind ingestion batches."""
        vector: NDArray[np.float32] = (await asyncio.to_thread(self.embedder.embed, [query]))[0]
        self.status["model_loaded"] = True
        return vector

    # -- writing ----------------------------------------------------------------------------------------

    def _chunk(self, item: NewItem) -> list[Chunk]:
        mode = item.chunking
        size = item.chunk_size or self.settings.chunk_size
        overlap = self.settings.chunk_overlap if item.chunk_overlap is None else item.chunk_overlap
        overlap = min(overlap, size - 1) if item.chunk_overlap is None else overlap
        if mode == "none":
            body = item.content.strip()
            lead = len(item.content) - len(item.content.lstrip())
            return [Chunk(0, body, lead, lead + len(body))]
        if mode == "auto":
            md = (item.source or "").lower().endswith(_MD_SUFFIXES) or bool(_MD_HEADING.search(item.content))
            mode = "markdown" if md else "text"
        if mode == "markdown":
            return chunk_markdown(item.content, size=size, overlap=overlap)
        return chunk_text(item.content, size=size, overlap=overlap)

    def _validate(self, item: NewItem) -> _Prepared:
        if not isinstance(item.content, str) or not item.content.strip():
            raise InvalidInput("content must be non-empty text", code="invalid_content")
        if len(item.content) > self.settings.max_item_chars:
            raise PayloadTooLarge(
                f"content is longer than {self.settings.max_item_chars} characters", code="content_too_large"
            )
        item_id = check_item_id(item.id) if item.id is not None else new_id("kn")
        check_agent_id(item.agent_id)
        check_source_type(item.source_type)
        if item.source is not None and len(item.source) > 1000:
            raise InvalidInput("source must be at most 1000 characters", code="invalid_source")
        if item.chunking not in CHUNKING_MODES:
            raise InvalidInput(f"chunking must be one of {', '.join(CHUNKING_MODES)}", code="invalid_chunking")
        if item.chunk_size is not None and not 8 <= item.chunk_size <= 4000:
            raise InvalidInput("chunk_size must be within 8..4000 words", code="invalid_chunking")
        metadata = check_metadata(item.metadata)
        chunks = [c for c in self._chunk(item) if c.text.strip()]
        if not chunks:
            raise InvalidInput("content has no text to index", code="invalid_content")
        return _Prepared(item, item_id, metadata, chunks)

    async def add(self, owner: str, item: NewItem) -> Item:
        """Add an item, or replace the owner's item with the same id. Returns it without its content."""
        return (await self.add_many(owner, [item]))[0]

    async def add_many(self, owner: str, items: Sequence[NewItem]) -> list[Item]:
        """Add or replace several items in one transaction (all or nothing)."""
        if not items:
            return []
        if len(items) > self.settings.max_batch_items:
            raise PayloadTooLarge(f"at most {self.settings.max_batch_items} items per batch", code="batch_too_large")
        if sum(len(i.content) for i in items if isinstance(i.content, str)) > self.settings.max_batch_chars:
            raise PayloadTooLarge(
                f"a batch may hold at most {self.settings.max_batch_chars} characters of content",
                code="batch_too_large",
            )
        prepared = await asyncio.to_thread(lambda: [self._validate(i) for i in items])
        ids = [p.id for p in prepared]
        if len(set(ids)) != len(ids):
            raise InvalidInput("item ids must be unique within a batch", code="duplicate_item_id")
        texts = [c.text for p in prepared for c in p.chunks]
        vectors = await self._embed(texts)
        mirror = self._require_mirror()
        model_id = self.embedder.model_id
        now = utcnow()

        rows: list[KnowledgeItemRow] = []
        new_chunks: list[dict[str, Any]] = []
        metas: list[dict[str, Any]] = []
        replaced: set[str] = set()
        async with self.db.transaction() as s:
            version = await self._bump(s)
            removed = await self._drop_chunks(s, owner, ids, version, now)
            existing = {
                r.id: r
                for r in (
                    await s.scalars(
                        select(KnowledgeItemRow).where(KnowledgeItemRow.owner == owner, KnowledgeItemRow.id.in_(ids))
                    )
                ).all()
            }
            offset = 0
            for p in prepared:
                row = existing.get(p.id)
                if row is None:
                    row = KnowledgeItemRow(owner=owner, id=p.id, created_at=now)
                    s.add(row)
                else:
                    replaced.add(p.id)
                row.agent_id = p.item.agent_id
                row.source = p.item.source
                row.source_type = p.item.source_type
                row.content = p.item.content
                row.meta = p.metadata
                row.source_timestamp = as_utc(p.item.timestamp) if p.item.timestamp else None
                row.chunk_count = len(p.chunks)
                row.content_sha256 = hashlib.sha256(p.item.content.encode()).hexdigest()
                row.updated_at = now
                rows.append(row)
                filters = index_metadata(owner, p.item.agent_id, p.item.source_type, p.metadata)
                for c in p.chunks:
                    new_chunks.append(
                        {
                            "owner": owner,
                            "item_id": p.id,
                            "chunk_index": c.index,
                            "version": version,
                            "content": c.text,
                            "start": c.start,
                            "end": c.end,
                            "heading": c.heading,
                            "model_id": model_id,
                            "embedding": vector_to_bytes(vectors[offset]),
                            "agent_id": p.item.agent_id,
                            "source_type": p.item.source_type,
                            "filters": filters,
                        }
                    )
                    metas.append(filters)
                    offset += 1
            await s.flush()  # items first: chunks reference them
            # One multi-row INSERT ... RETURNING (no ORM objects): the ids come back in parameter order.
            chunk_insert = insert(KnowledgeChunkRow).returning(KnowledgeChunkRow.id, sort_by_parameter_order=True)
            new_ids = [int(i) for i in (await s.scalars(chunk_insert, new_chunks)).all()]
        await mirror.applied(version, removed, new_ids, vectors, metas)
        self.status["version"] = mirror.version
        return [_item(r, content=False, replaced=r.id in replaced) for r in rows]

    async def _bump(self, s: AsyncSession) -> int:
        """Take the next store version (on PostgreSQL this row lock also orders concurrent writers)."""
        version = await s.scalar(
            update(KnowledgeStateRow)
            .where(KnowledgeStateRow.id == 1)
            .values(version=KnowledgeStateRow.version + 1)
            .returning(KnowledgeStateRow.version)
        )
        return int(version or 0)

    async def _drop_chunks(
        self, s: AsyncSession, owner: str, item_ids: Sequence[str], version: int, now: datetime
    ) -> list[int]:
        """Delete the chunks of these items, leaving tombstones; returns their ids."""
        chunk_ids: list[int] = []
        for start in range(0, len(item_ids), 500):
            names = list(item_ids[start : start + 500])
            chunk_ids += (
                await s.scalars(
                    select(KnowledgeChunkRow.id).where(
                        KnowledgeChunkRow.owner == owner, KnowledgeChunkRow.item_id.in_(names)
                    )
                )
            ).all()
        for start in range(0, len(chunk_ids), 500):
            part = chunk_ids[start : start + 500]
            s.add_all(KnowledgeTombstoneRow(chunk_id=i, version=version, deleted_at=now) for i in part)
            await s.flush()
            await s.execute(delete(KnowledgeChunkRow).where(KnowledgeChunkRow.id.in_(part)))
        return chunk_ids

    async def delete(self, owner: str, item_id: str) -> Item:
        """Delete an item and its vectors; returns it (without content). ``NotFound`` if it does not exist."""
        mirror = self._require_mirror()
        async with self.db.transaction() as s:
            version = await self._bump(s)  # first: concurrent deletes of one item queue here
            row = await s.get(KnowledgeItemRow, (owner, item_id))
            if row is None:
                raise NotFound(f"knowledge item {item_id!r} not found", code="knowledge_item_not_found")
            removed = await self._drop_chunks(s, owner, [item_id], version, utcnow())
            gone = _item(row, content=False)
            await s.delete(row)
        await mirror.applied(version, removed, [], np.zeros((0, self.embedder.dim), dtype=np.float32), [])
        self.status["version"] = mirror.version
        return gone

    async def reembed_stale(self, batch: int = 256) -> int:
        """Re-embed chunks stored with another model's vectors; returns how many were updated."""
        mirror = self._require_mirror()
        model_id = self.embedder.model_id
        done = 0
        while True:
            async with self.db.session() as s:
                stale = (
                    await s.execute(
                        select(KnowledgeChunkRow.id, KnowledgeChunkRow.content, KnowledgeChunkRow.filters)
                        .where(KnowledgeChunkRow.model_id != model_id)
                        .order_by(KnowledgeChunkRow.id)
                        .limit(batch)
                    )
                ).all()
            if not stale:
                return done
            vectors = await self._embed([r[1] for r in stale])
            async with self.db.transaction() as s:
                version = await self._bump(s)
                for r, vec in zip(stale, vectors, strict=True):
                    await s.execute(
                        update(KnowledgeChunkRow)
                        .where(KnowledgeChunkRow.id == r[0])
                        .values(embedding=vector_to_bytes(vec), model_id=model_id, version=version)
                    )
            await mirror.applied(version, [], [int(r[0]) for r in stale], vectors, [r[2] or {} for r in stale])
            self.status["version"] = mirror.version
            done += len(stale)

    # -- reading ----------------------------------------------------------------------------------------

    async def get(self, owner: str, item_id: str) -> Item:
        """An item with its content."""
        async with self.db.session() as s:
            row = await s.get(KnowledgeItemRow, (owner, item_id))
        if row is None:
            raise NotFound(f"knowledge item {item_id!r} not found", code="knowledge_item_not_found")
        return _item(row, content=True)

    async def list_items(
        self, owner: str, *, agent_id: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Item], str | None]:
        """The owner's items by id (without content), optionally one agent's; ``(items, next_cursor)``."""
        limit = max(1, min(limit, 500))
        q = (
            select(KnowledgeItemRow)
            .where(KnowledgeItemRow.owner == owner)
            .order_by(KnowledgeItemRow.id)
            .limit(limit + 1)
        )
        if agent_id is not None:
            q = q.where(KnowledgeItemRow.agent_id == agent_id)
        if cursor:
            q = q.where(KnowledgeItemRow.id > cursor)
        async with self.db.session() as s:
            rows = list((await s.scalars(q)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return [_item(r, content=False) for r in rows], (rows[-1].id if more and rows else None)

    async def count(self, owner: str | None = None) -> int:
        """Number of items (of one owner, or all)."""
        q = select(func.count()).select_from(KnowledgeItemRow)
        if owner is not None:
            q = q.where(KnowledgeItemRow.owner == owner)
        async with self.db.session() as s:
            return int(await s.scalar(q) or 0)

    def _filters(
        self,
        owner: str,
        agent_id: str | None,
        include_shared: bool,
        source_types: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """One index filter per alternative (agent scope x source type); a hit must match one of them."""
        check_agent_id(agent_id)
        base = {"owner": owner, **metadata_filter(metadata)}
        agents: list[str | bool | None] = [True]  # True: any agent
        if agent_id is not None:
            agents = [agent_id, None] if include_shared else [agent_id]
        types: list[str | None] = (
            [check_source_type(t) for t in dict.fromkeys(source_types)] if source_types else [None]
        )
        out = []
        for agent, stype in itertools.product(agents, types):
            f = dict(base)
            if agent is not True:
                f["agent_id"] = agent
            if stype is not None:
                f["source_type"] = stype
            out.append(f)
        return out

    async def search(
        self,
        owner: str,
        query: str,
        *,
        top_k: int = 5,
        agent_id: str | None = None,
        include_shared: bool = False,
        source_types: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        threshold: float | None = None,
        per_item: bool = True,
    ) -> list[Passage]:
        """The passages most similar to ``query`` (cosine >= ``threshold``), best first.

        ``agent_id`` limits the search to that agent's items (plus items without an agent when
        ``include_shared``); ``source_types`` to those types; ``metadata`` to items whose metadata has
        these values. ``per_item`` keeps only the best passage of each item.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("query must be non-empty text", code="invalid_query")
        if len(query) > 10_000:
            raise InvalidInput("query must be at most 10000 characters", code="invalid_query")
        if not 1 <= top_k <= _MAX_TOP_K:
            raise InvalidInput(f"top_k must be within 1..{_MAX_TOP_K}", code="invalid_top_k")
        floor = self.settings.similarity_threshold if threshold is None else float(threshold)
        filters = self._filters(owner, agent_id, include_shared, source_types, metadata)
        mirror = self._require_mirror()
        embedding = asyncio.ensure_future(self._embed_query(query))
        try:
            await mirror.refresh()  # one primary-key read, while the query is being embedded
        except BaseException:
            embedding.cancel()
            raise
        vector = await embedding
        self.status["version"] = mirror.version
        # No transaction: on PostgreSQL the passages cost two round trips (pool ping, query).
        async with self.db.engine.connect() as raw:
            # SQLite reads outside a transaction anyway; switching its isolation level costs two thread hops.
            conn = raw if self.db.is_sqlite else await raw.execution_options(isolation_level="AUTOCOMMIT")
            fetch = top_k * 3 if per_item else top_k
            while True:
                scores: dict[int, float] = {}
                more = False  # could a deeper search find more passages above the floor?
                for f in filters:
                    hits = await mirror.search(vector, fetch, f)
                    more = more or (len(hits) >= fetch and hits[-1][1] >= floor)
                    for hit_id, score in hits:
                        if score >= floor:
                            cid = int(hit_id)
                            scores[cid] = max(score, scores.get(cid, -2.0))
                passages = await self._passages(conn, owner, scores)
                if per_item:
                    best: dict[str, Passage] = {}
                    for p in passages:
                        best.setdefault(p.item.id, p)
                    passages = list(best.values())
                if len(passages) >= top_k or not more or fetch >= _MAX_FETCH:
                    return passages[:top_k]
                fetch = min(_MAX_FETCH, fetch * 4)

    async def _passages(self, conn: AsyncConnection, owner: str, scores: Mapping[int, float]) -> list[Passage]:
        if not scores:
            return []
        c, i = KnowledgeChunkRow, KnowledgeItemRow
        # Only the chunk ids restrict the query (the owner is checked below): a constant owner would let
        # the planner start from the owner's items, all of them, when its statistics are stale.
        query = (
            select(c.id, c.chunk_index, c.content, c.start, c.end, c.heading, *_ITEM_COLUMNS)
            .join(i, (i.owner == c.owner) & (i.id == c.item_id))
            .where(c.id.in_(list(scores)))
        )
        items: dict[str, Item] = {}
        out = []
        for row in (await conn.execute(query)).all():
            if row.item_owner != owner:
                continue
            cid, index, content, start, end, heading = row[:6]
            item = items.get(row.item_id) or items.setdefault(row.item_id, _summary(row))
            out.append(Passage(item, int(cid), int(index), content, int(start), int(end), heading, scores[int(cid)]))
        out.sort(key=lambda p: (-p.score, p.chunk_id))
        return out

    async def context(
        self,
        owner: str,
        query: str,
        *,
        agent_id: str | None = None,
        include_shared: bool = False,
        source_types: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        max_items: int = 5,
        max_tokens: int | None = None,
        threshold: float | None = None,
    ) -> Context:
        """The most relevant passages for a prompt: at most ``max_items``, within ``max_tokens`` model tokens.

        Passages are taken best first while they fit; one that does not fit is skipped (a later, shorter
        one may still fit). If not even the best passage fits, it is cut to the budget (``truncated``).
        """
        if not 1 <= max_items <= _MAX_TOP_K:
            raise InvalidInput(f"max_items must be within 1..{_MAX_TOP_K}", code="invalid_top_k")
        budget = self.settings.context_tokens if max_tokens is None else max_tokens
        if not 1 <= budget <= 100_000:
            raise InvalidInput("max_tokens must be within 1..100000", code="invalid_max_tokens")
        candidates = await self.search(
            owner,
            query,
            top_k=min(_MAX_TOP_K, max(3 * max_items, 10)),
            agent_id=agent_id,
            include_shared=include_shared,
            source_types=source_types,
            metadata=metadata,
            threshold=threshold,
            per_item=False,
        )
        counts = await asyncio.to_thread(lambda: [self._count_tokens(p.text) for p in candidates])
        chosen: list[Passage] = []
        tokens: list[int] = []
        for passage, n in zip(candidates, counts, strict=True):
            if len(chosen) >= max_items:
                break
            if sum(tokens) + n <= budget:
                chosen.append(passage)
                tokens.append(n)
        truncated = False
        if not chosen and candidates:
            best = candidates[0]
            cut = await asyncio.to_thread(self._cut_to_tokens, best.text, budget)
            chosen = [
                Passage(
                    best.item,
                    best.chunk_id,
                    best.chunk_index,
                    cut,
                    best.start,
                    best.start + len(cut),
                    best.heading,
                    best.score,
                )
            ]
            tokens = [min(budget, self._count_tokens(cut))]
            truncated = True
        return Context(query=query, passages=chosen, tokens=tokens, max_tokens=budget, truncated=truncated)

    def _token_spans(self, text: str) -> list[tuple[int, int]]:
        spans = getattr(self.embedder, "token_spans", None)
        if callable(spans):
            return list(spans(text))
        return [m.span() for m in re.finditer(r"\S+", text)]

    def _count_tokens(self, text: str) -> int:
        """Model tokens of ``text`` (WordPiece, no special tokens)."""
        return len(self._token_spans(text))

    def _cut_to_tokens(self, text: str, budget: int) -> str:
        spans = self._token_spans(text)
        if len(spans) <= budget:
            return text
        return text[: spans[budget - 1][1]] if budget > 0 else ""
