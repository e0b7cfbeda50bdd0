"""Vector indexes: a search accelerator over vectors the knowledge service also stores in its own tables.

Three backends share the :class:`VectorIndex` API, and an index can always be rebuilt from the stored
vectors, so picking a backend is only a matter of speed:

* ``pgvector`` (:class:`PgVectorIndex`): a table with a ``vector(dim)`` column and an HNSW cosine index, on
  the server's PostgreSQL when the ``vector`` extension is available there.
* ``sqlite-vec`` (:class:`SqliteVecIndex`): a ``vec0`` virtual table in a SQLite file of its own, through a
  ``sqlite3`` module that can load extensions (the standard one when built with that, else ``sqlean.py``).
* ``numpy-exact`` (:class:`NumpyIndex`): exact cosine search over an in-memory float32 matrix.

Vectors are L2-normalised on the way in; scores are cosine similarities (higher is closer). A search
``filter`` is a dict of metadata equalities, all of which must hold; values are compared by their canonical
JSON text, and a missing key equals ``None``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from portside.server.errors import Conflict, InvalidInput, Unavailable

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "BACKENDS",
    "NumpyIndex",
    "PgVectorIndex",
    "SearchHit",
    "SqliteVecIndex",
    "VectorIndex",
    "open_index",
    "pgvector_available",
    "sqlite_vec_available",
]

#: Backend names, in the order ``open_index(backend="auto")`` prefers them.
BACKENDS = ("pgvector", "sqlite-vec", "numpy-exact")

#: ``(id, cosine similarity)``.
SearchHit = tuple[str, float]

Metadata = Mapping[str, Any]
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_NULL = "null"
_SQLITE_VEC_MAX_K = 4096


@runtime_checkable
class VectorIndex(Protocol):
    """A nearest-neighbour index over ``(id, vector, metadata)`` entries."""

    @property
    def name(self) -> str:
        """``"pgvector"``, ``"sqlite-vec"`` or ``"numpy-exact"``."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector."""
        ...

    async def add(self, ids: Sequence[str], vectors: ArrayLike, metadata: Sequence[Metadata] | None = None) -> None:
        """Insert or replace entries (``vectors`` is ``(len(ids), dim)``; ``metadata`` one dict per id)."""
        ...

    async def remove(self, ids: Sequence[str]) -> int:
        """Delete entries; returns how many existed."""
        ...

    async def search(self, vector: ArrayLike, top_k: int = 10, filter: Metadata | None = None) -> list[SearchHit]:
        """The ``top_k`` entries closest to ``vector`` whose metadata match ``filter``, best first."""
        ...

    async def count(self) -> int:
        """Number of entries."""
        ...

    async def clear(self) -> None:
        """Delete every entry."""
        ...

    async def close(self) -> None:
        """Release connections (the stored data stays)."""
        ...


# -- shared helpers -------------------------------------------------------------------------------------


def _canon(value: Any) -> str:
    """Canonical JSON text of a metadata value (the unit of equality in filters)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _matrix(vectors: ArrayLike, dim: int) -> NDArray[np.float32]:
    mat = np.asarray(vectors, dtype=np.float32)
    if mat.ndim == 1:
        mat = mat[None, :]
    if mat.ndim != 2 or mat.shape[1] != dim:
        raise InvalidInput(f"vectors must have shape (n, {dim}), got {mat.shape}", code="invalid_vector")
    if not np.isfinite(mat).all():
        raise InvalidInput("vectors must be finite", code="invalid_vector")
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return np.ascontiguousarray(mat / np.clip(norms, 1e-12, None), dtype=np.float32)


def _query(vector: ArrayLike, dim: int) -> NDArray[np.float32]:
    mat = _matrix(vector, dim)
    if mat.shape[0] != 1:
        raise InvalidInput("search takes one vector", code="invalid_vector")
    row: NDArray[np.float32] = mat[0]
    return row


def _entries(
    ids: Sequence[str], vectors: ArrayLike, metadata: Sequence[Metadata] | None, dim: int
) -> tuple[list[str], NDArray[np.float32], list[dict[str, Any]]]:
    id_list = [str(i) for i in ids]
    mat = _matrix(vectors, dim) if id_list else np.zeros((0, dim), dtype=np.float32)
    metas = [dict(m) for m in metadata] if metadata is not None else [{} for _ in id_list]
    if not (len(id_list) == mat.shape[0] == len(metas)):
        raise InvalidInput("ids, vectors and metadata must have the same length", code="invalid_vector")
    if len(set(id_list)) != len(id_list):
        raise InvalidInput("ids must be unique within one add()", code="invalid_vector")
    return id_list, mat, metas


def _check_top_k(top_k: int) -> None:
    if top_k < 1:
        raise InvalidInput("top_k must be >= 1", code="invalid_vector")


def _matches(meta: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    return all(_canon(meta.get(k)) == v for k, v in wanted.items())


# -- numpy-exact ----------------------------------------------------------------------------------------


class NumpyIndex:
    """Exact cosine search over an in-memory float32 matrix (the fallback; fine up to ~10^5 vectors).

    Metadata equalities are answered from posting lists, so a filter narrows the rows before scoring.
    """

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise InvalidInput("dim must be >= 1", code="invalid_vector")
        self._dim = dim
        self._lock = threading.Lock()
        self._mat = np.zeros((0, dim), dtype=np.float32)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._meta: list[dict[str, Any]] = []
        self._postings: dict[tuple[str, str], set[str]] = {}

    @property
    def name(self) -> str:
        return "numpy-exact"

    @property
    def dim(self) -> int:
        return self._dim

    def _grow(self, need: int) -> None:
        if need > self._mat.shape[0]:
            cap = max(need, 2 * self._mat.shape[0], 64)
            mat = np.zeros((cap, self._dim), dtype=np.float32)
            mat[: len(self._ids)] = self._mat[: len(self._ids)]
            self._mat = mat

    def _drop(self, item_id: str) -> bool:
        row = self._rows.pop(item_id, None)
        if row is None:
            return False
        for key, value in self._meta[row].items():
            posting = self._postings.get((key, _canon(value)))
            if posting is not None:
                posting.discard(item_id)
                if not posting:
                    del self._postings[(key, _canon(value))]
        last = len(self._ids) - 1
        if row != last:  # move the last row into the hole
            moved = self._ids[last]
            self._mat[row] = self._mat[last]
            self._ids[row] = moved
            self._meta[row] = self._meta[last]
            self._rows[moved] = row
        self._ids.pop()
        self._meta.pop()
        return True

    async def add(self, ids: Sequence[str], vectors: ArrayLike, metadata: Sequence[Metadata] | None = None) -> None:
        id_list, mat, metas = _entries(ids, vectors, metadata, self._dim)
        with self._lock:
            for item_id in id_list:
                self._drop(item_id)
            base = len(self._ids)
            self._grow(base + len(id_list))
            self._mat[base : base + len(id_list)] = mat
            for offset, (item_id, meta) in enumerate(zip(id_list, metas, strict=True)):
                self._rows[item_id] = base + offset
                self._ids.append(item_id)
                self._meta.append(meta)
                for key, value in meta.items():
                    self._postings.setdefault((key, _canon(value)), set()).add(item_id)

    async def remove(self, ids: Sequence[str]) -> int:
        with self._lock:
            return sum(self._drop(str(i)) for i in ids)

    def _candidate_rows(self, wanted: Mapping[str, str]) -> NDArray[np.intp] | None:
        """Rows matching ``wanted`` (None: no filter)."""
        if not wanted:
            return None
        exact = [(k, v) for k, v in wanted.items() if v != _NULL]
        if exact:
            sets = sorted((self._postings.get(kv, set()) for kv in exact), key=len)
            ids = set(sets[0]).intersection(*sets[1:])
            rows = [self._rows[i] for i in ids]
            if len(exact) < len(wanted):  # some key must be missing or null
                rows = [r for r in rows if _matches(self._meta[r], wanted)]
        else:
            rows = [r for r in range(len(self._ids)) if _matches(self._meta[r], wanted)]
        return np.asarray(sorted(rows), dtype=np.intp)

    async def search(self, vector: ArrayLike, top_k: int = 10, filter: Metadata | None = None) -> list[SearchHit]:
        _check_top_k(top_k)
        q = _query(vector, self._dim)
        wanted = {k: _canon(v) for k, v in (filter or {}).items()}
        with self._lock:
            rows = self._candidate_rows(wanted)
            if rows is None:
                scores = self._mat[: len(self._ids)] @ q
                rows = np.arange(len(self._ids), dtype=np.intp)
            else:
                scores = self._mat[rows] @ q
            if scores.size == 0:
                return []
            k = min(top_k, scores.size)
            top = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(self._ids[int(rows[i])], float(scores[i])) for i in top]

    async def count(self) -> int:
        return len(self._ids)

    async def clear(self) -> None:
        with self._lock:
            self._mat = np.zeros((0, self._dim), dtype=np.float32)
            self._ids, self._rows, self._meta, self._postings = [], {}, [], {}

    async def close(self) -> None:
        return None


# -- sqlite-vec -----------------------------------------------------------------------------------------


def _sqlite_module() -> ModuleType | None:
    """A DB-API sqlite3 module whose connections can load extensions, or None."""
    import sqlite3

    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        import sqlean
    except ImportError:
        return None
    return cast(ModuleType, sqlean)


def _connect_vec(path: str) -> Any:
    module = _sqlite_module()
    if module is None:
        raise Unavailable(
            "this Python's sqlite3 cannot load extensions; install sqlean.py", code="vector_index_unavailable"
        )
    try:
        import sqlite_vec
    except ImportError as exc:
        raise Unavailable("sqlite-vec is not installed", code="vector_index_unavailable") from exc
    conn = module.connect(path, check_same_thread=False, isolation_level=None)
    try:
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        # A KNN query reads every vector: mapped pages spare a copy per page (6 -> 4 ms over 10^4 vectors).
        conn.execute("PRAGMA mmap_size = 1073741824")
    except Exception as exc:
        conn.close()
        raise Unavailable(f"sqlite-vec failed to load: {exc}", code="vector_index_unavailable") from exc
    return conn


def sqlite_vec_available() -> bool:
    """Whether the sqlite-vec extension loads into a SQLite connection here."""
    try:
        _connect_vec(":memory:").close()
    except Unavailable:
        return False
    return True


def _meta_match(meta_json: str | None, wanted_json: str) -> int:
    meta = json.loads(meta_json) if meta_json else {}
    return int(_matches(meta, json.loads(wanted_json)))


class SqliteVecIndex:
    """A sqlite-vec ``vec0`` table (cosine distance) in a SQLite file of its own, or ``":memory:"``.

    ``filter_keys`` become ``vec0`` metadata columns, so filters on them run inside the KNN query; a filter
    on any other key falls back to an exact scan that checks the JSON metadata of each row. Open it with
    :meth:`open`. Work runs in a worker thread, one statement at a time.
    """

    def __init__(self, conn: Any, dim: int, table: str, filter_keys: tuple[str, ...]) -> None:
        self._conn = conn
        self._dim = dim
        self._table = table
        self._keys = filter_keys
        self._lock = threading.Lock()

    @classmethod
    async def open(
        cls,
        path: str | Path,
        dim: int,
        *,
        table: str = "knowledge_vectors",
        filter_keys: Sequence[str] = (),
    ) -> SqliteVecIndex:
        """Open (creating if needed) the index table in the SQLite file ``path``.

        Raises ``Conflict`` (code ``index_mismatch``) if the table exists with another dim or filter keys,
        and ``Unavailable`` if sqlite-vec cannot be loaded.
        """
        keys = tuple(dict.fromkeys(filter_keys))
        for name in (table, *keys):
            if not _IDENT.match(name) or name.lower() in {"item_id", "embedding", "meta", "distance", "k", "rowid"}:
                raise InvalidInput(f"invalid index table or filter key name: {name!r}", code="invalid_vector")
        if dim < 1:
            raise InvalidInput("dim must be >= 1", code="invalid_vector")
        columns = "".join(f", {k} text" for k in keys)
        ddl = (
            f"CREATE VIRTUAL TABLE {table} USING vec0("
            f"item_id text primary key, embedding float[{dim}] distance_metric=cosine{columns}, +meta text)"
        )

        def setup() -> Any:
            conn = _connect_vec(str(path))
            try:
                conn.create_function("portside_meta_match", 2, _meta_match, deterministic=True)
                row = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
                if row is None:
                    conn.execute(ddl)
                elif row[0] != ddl:
                    raise Conflict(
                        f"vector table {table!r} exists with another layout; clear or rebuild it",
                        code="index_mismatch",
                    )
            except BaseException:
                conn.close()
                raise
            return conn

        conn = await asyncio.to_thread(setup)
        return cls(conn, dim, table, keys)

    @property
    def name(self) -> str:
        return "sqlite-vec"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def filter_keys(self) -> tuple[str, ...]:
        """Metadata keys stored as ``vec0`` metadata columns."""
        return self._keys

    async def _run(self, fn: Any, *args: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    def _delete(self, ids: list[str]) -> int:
        removed = 0
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            removed += self._conn.execute(f"DELETE FROM {self._table} WHERE item_id IN ({marks})", part).rowcount
        return int(removed)

    async def add(self, ids: Sequence[str], vectors: ArrayLike, metadata: Sequence[Metadata] | None = None) -> None:
        id_list, mat, metas = _entries(ids, vectors, metadata, self._dim)
        if not id_list:
            return
        cols = "".join(f", {k}" for k in self._keys)
        marks = ", ?" * len(self._keys)
        sql = f"INSERT INTO {self._table}(item_id, embedding{cols}, meta) VALUES (?, ?{marks}, ?)"
        rows = [
            (item_id, mat[i].tobytes(), *(_canon(meta.get(k)) for k in self._keys), _canon(meta))
            for i, (item_id, meta) in enumerate(zip(id_list, metas, strict=True))
        ]

        def write() -> None:
            self._conn.execute("BEGIN")
            try:
                self._delete(id_list)  # vec0 has no upsert
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

        await self._run(write)

    async def remove(self, ids: Sequence[str]) -> int:
        return int(await self._run(self._delete, [str(i) for i in ids]))

    async def search(self, vector: ArrayLike, top_k: int = 10, filter: Metadata | None = None) -> list[SearchHit]:
        _check_top_k(top_k)
        q = _query(vector, self._dim).tobytes()
        wanted = {k: _canon(v) for k, v in (filter or {}).items()}
        if set(wanted) <= set(self._keys) and top_k <= _SQLITE_VEC_MAX_K:
            where = "".join(f" AND {k} = ?" for k in wanted)
            sql = (
                f"SELECT item_id, distance FROM {self._table} WHERE embedding MATCH ? AND k = ?{where} "
                "ORDER BY distance"
            )
            params: tuple[Any, ...] = (q, top_k, *wanted.values())
        else:
            cond = " WHERE portside_meta_match(meta, ?)" if wanted else ""
            sql = f"SELECT item_id, vec_distance_cosine(embedding, ?) AS d FROM {self._table}{cond} ORDER BY d LIMIT ?"
            params = (q, json.dumps(wanted), top_k) if wanted else (q, top_k)
        rows = await self._run(lambda: self._conn.execute(sql, params).fetchall())
        return [(str(item_id), 1.0 - float(dist)) for item_id, dist in rows]

    async def count(self) -> int:
        row = await self._run(lambda: self._conn.execute(f"SELECT count(*) FROM {self._table}").fetchone())
        return int(row[0])

    async def clear(self) -> None:
        await self._run(lambda: self._conn.execute(f"DELETE FROM {self._table}"))

    async def close(self) -> None:
        await self._run(self._conn.close)


# -- pgvector -------------------------------------------------------------------------------------------


async def pgvector_available(engine: AsyncEngine) -> bool:
    """Whether ``engine`` is PostgreSQL with the ``vector`` extension installed or installable."""
    if engine.dialect.name != "postgresql":
        return False
    from sqlalchemy import text

    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"))).first()
    except Exception:
        return False
    return row is not None


def _pg_vector(vec: NDArray[np.float32]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vec) + "]"


class PgVectorIndex:
    """A PostgreSQL table ``(item_id text, embedding vector(dim), meta jsonb)`` with an HNSW cosine index.

    Open it with :meth:`open`, which creates the ``vector`` extension (needs the privilege) and the table.
    HNSW is approximate (``ef_search`` is raised to ``4 * top_k``, at least 64); filtered searches use
    pgvector's iterative scan (0.8+) so that selective filters still fill ``top_k``.
    """

    def __init__(self, engine: AsyncEngine, dim: int, table: str, version: tuple[int, ...] = (0,)) -> None:
        self._engine = engine
        self._dim = dim
        self._table = table
        self._version = version

    @classmethod
    async def open(cls, engine: AsyncEngine, dim: int, *, table: str = "knowledge_vectors") -> PgVectorIndex:
        """Create the extension, table and index if missing. Raises ``Unavailable`` without pgvector."""
        if not _IDENT.match(table):
            raise InvalidInput(f"invalid index table name: {table!r}", code="invalid_vector")
        if dim < 1:
            raise InvalidInput("dim must be >= 1", code="invalid_vector")
        if not await pgvector_available(engine):
            raise Unavailable("pgvector is not available on this database", code="vector_index_unavailable")
        from sqlalchemy import text

        async with engine.begin() as conn:
            await conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            await conn.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {table} (item_id text PRIMARY KEY, "
                    f"embedding vector({dim}) NOT NULL, meta jsonb NOT NULL DEFAULT '{{}}'::jsonb)"
                )
            )
            row = (
                await conn.execute(
                    text(
                        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                        "WHERE a.attrelid = CAST(:t AS regclass) AND a.attname = 'embedding'"
                    ),
                    {"t": table},
                )
            ).first()
            if row is None or row[0] != f"vector({dim})":
                raise Conflict(f"vector table {table!r} exists with another layout", code="index_mismatch")
            raw = (await conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))).scalar()
            version = tuple(int(p) for p in re.findall(r"\d+", str(raw or "0")))
            if version >= (0, 5):  # HNSW arrived in pgvector 0.5; older versions search exactly
                await conn.execute(
                    text(f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)")
                )
        return cls(engine, dim, table, version)

    @property
    def version(self) -> tuple[int, ...]:
        """Version of the ``vector`` extension, e.g. ``(0, 8, 1)``."""
        return self._version

    @property
    def name(self) -> str:
        return "pgvector"

    @property
    def dim(self) -> int:
        return self._dim

    async def add(self, ids: Sequence[str], vectors: ArrayLike, metadata: Sequence[Metadata] | None = None) -> None:
        from sqlalchemy import text

        id_list, mat, metas = _entries(ids, vectors, metadata, self._dim)
        if not id_list:
            return
        rows = [
            {"id": item_id, "emb": _pg_vector(mat[i]), "meta": _canon(meta)}
            for i, (item_id, meta) in enumerate(zip(id_list, metas, strict=True))
        ]
        sql = text(
            f"INSERT INTO {self._table} (item_id, embedding, meta) "
            "VALUES (:id, CAST(:emb AS vector), CAST(:meta AS jsonb)) "
            "ON CONFLICT (item_id) DO UPDATE SET embedding = excluded.embedding, meta = excluded.meta"
        )
        async with self._engine.begin() as conn:
            await conn.execute(sql, rows)

    async def remove(self, ids: Sequence[str]) -> int:
        from sqlalchemy import bindparam, text

        if not ids:
            return 0
        sql = text(f"DELETE FROM {self._table} WHERE item_id IN :ids").bindparams(bindparam("ids", expanding=True))
        async with self._engine.begin() as conn:
            result = await conn.execute(sql, {"ids": [str(i) for i in ids]})
        return int(result.rowcount)

    async def search(self, vector: ArrayLike, top_k: int = 10, filter: Metadata | None = None) -> list[SearchHit]:
        from sqlalchemy import text

        _check_top_k(top_k)
        params: dict[str, Any] = {"q": _pg_vector(_query(vector, self._dim)), "k": top_k}
        conds = []
        for n, (key, value) in enumerate((filter or {}).items()):
            conds.append(f"coalesce(meta -> CAST(:fk{n} AS text), 'null'::jsonb) = CAST(:fv{n} AS jsonb)")
            params[f"fk{n}"], params[f"fv{n}"] = key, _canon(value)
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        sql = text(
            f"SELECT item_id, 1 - (embedding <=> CAST(:q AS vector)) AS score FROM {self._table}{where} "
            "ORDER BY embedding <=> CAST(:q AS vector) LIMIT :k"
        )
        async with self._engine.begin() as conn:
            if self._version >= (0, 5):
                await conn.execute(text(f"SET LOCAL hnsw.ef_search = {min(1000, max(64, 4 * top_k))}"))
            if conds and self._version >= (0, 8):  # keep scanning the graph until enough rows pass the filter
                await conn.execute(text("SET LOCAL hnsw.iterative_scan = strict_order"))
            rows = (await conn.execute(sql, params)).all()
        return [(str(r[0]), float(r[1])) for r in rows]

    async def count(self) -> int:
        from sqlalchemy import text

        async with self._engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT count(*) FROM {self._table}"))).scalar_one())

    async def clear(self) -> None:
        from sqlalchemy import text

        async with self._engine.begin() as conn:
            await conn.execute(text(f"DELETE FROM {self._table}"))

    async def close(self) -> None:
        return None  # the engine belongs to the caller


# -- choosing a backend ---------------------------------------------------------------------------------


async def open_index(
    dim: int,
    *,
    backend: str = "auto",
    engine: AsyncEngine | None = None,
    sqlite_path: str | Path | None = None,
    table: str = "knowledge_vectors",
    filter_keys: Sequence[str] = (),
) -> VectorIndex:
    """Open a vector index.

    ``backend="auto"`` picks pgvector when ``engine`` is PostgreSQL with the extension available, else
    sqlite-vec when ``sqlite_path`` is given and the extension loads, else numpy-exact. A named backend
    (one of :data:`BACKENDS`) is opened or ``Unavailable`` is raised. ``filter_keys`` are the metadata keys
    that sqlite-vec indexes as columns (other backends filter on any key equally well).
    """
    if backend not in (*BACKENDS, "auto"):
        raise InvalidInput(f"unknown vector index backend {backend!r}", code="invalid_vector")
    if backend == "pgvector" or (backend == "auto" and engine is not None and await pgvector_available(engine)):
        if engine is None:
            raise InvalidInput("the pgvector backend needs a database engine", code="invalid_vector")
        return await PgVectorIndex.open(engine, dim, table=table)
    if backend == "sqlite-vec" or (backend == "auto" and sqlite_path is not None and sqlite_vec_available()):
        return await SqliteVecIndex.open(sqlite_path or ":memory:", dim, table=table, filter_keys=filter_keys)
    return NumpyIndex(dim)
