"""Vector index backends behave alike: exact order, upsert, remove, metadata filters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from portside.server.errors import Conflict, InvalidInput, Unavailable
from portside.server.knowledge import (
    NumpyIndex,
    PgVectorIndex,
    SqliteVecIndex,
    VectorIndex,
    open_index,
    pgvector_available,
    sqlite_vec_available,
)
from tests.conftest import create_pg_database, drop_pg_database

DIM = 16


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.standard_normal((n, DIM)).astype(np.float32)
    unit: np.ndarray = m / np.linalg.norm(m, axis=1, keepdims=True)
    return unit


@pytest.fixture(
    params=["numpy-exact", "sqlite-vec-memory", "sqlite-vec-file", pytest.param("pgvector", marks=pytest.mark.postgres)]
)
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorIndex]:
    idx: VectorIndex
    if request.param == "pgvector":
        url = await asyncio.to_thread(create_pg_database)
        engine = create_async_engine(url)
        try:
            if not await pgvector_available(engine):
                pytest.skip("pgvector is not installed on this PostgreSQL")
            idx = await PgVectorIndex.open(engine, DIM, table="kv_test")
            yield idx
        finally:
            await engine.dispose()
            await asyncio.to_thread(drop_pg_database, url)
        return
    if request.param == "numpy-exact":
        idx = NumpyIndex(DIM)
    elif request.param == "sqlite-vec-memory":
        idx = await SqliteVecIndex.open(":memory:", DIM, filter_keys=["agent_id", "source_type"])
    else:
        idx = await SqliteVecIndex.open(tmp_path / "vec.db", DIM, filter_keys=["agent_id"])
    yield idx
    await idx.close()


def _metas(n: int) -> list[dict[str, object]]:
    return [
        {"agent_id": f"agent-{i % 3}", "source_type": "document" if i % 2 else "code", "chunk": i % 5} for i in range(n)
    ]


async def test_exact_top_k_matches_brute_force(index: VectorIndex) -> None:
    rng = np.random.default_rng(1)
    vecs = _unit(rng, 200)
    ids = [f"id-{i}" for i in range(200)]
    await index.add(ids, vecs, _metas(200))
    assert await index.count() == 200
    for q in _unit(rng, 5):
        hits = await index.search(q, top_k=7)
        expected = np.argsort(-(vecs @ q))[:7]
        assert [h[0] for h in hits] == [ids[i] for i in expected]
        np.testing.assert_allclose([h[1] for h in hits], (vecs @ q)[expected], atol=1e-4)
    assert index.name in {"numpy-exact", "sqlite-vec", "pgvector"}


async def test_filters_on_indexed_and_other_keys(index: VectorIndex) -> None:
    rng = np.random.default_rng(2)
    vecs = _unit(rng, 90)
    metas = _metas(90)
    ids = [f"id-{i}" for i in range(90)]
    await index.add(ids, vecs, metas)
    q = _unit(rng, 1)[0]
    for flt in (
        {"agent_id": "agent-1"},
        {"agent_id": "agent-2", "source_type": "code"},
        {"chunk": 3},
        {"agent_id": "agent-0", "chunk": 0},
    ):
        hits = await index.search(q, top_k=5, filter=flt)
        allowed = [i for i, m in enumerate(metas) if all(m.get(k) == v for k, v in flt.items())]
        expected = sorted(allowed, key=lambda i: -float(vecs[i] @ q))[:5]
        assert [h[0] for h in hits] == [ids[i] for i in expected], flt
    assert await index.search(q, top_k=5, filter={"agent_id": "nobody"}) == []
    # a missing key equals None
    await index.add(["loose"], _unit(rng, 1), [{"source_type": "code"}])
    assert [h[0] for h in await index.search(q, top_k=3, filter={"agent_id": None})] == ["loose"]


async def test_upsert_remove_clear(index: VectorIndex) -> None:
    rng = np.random.default_rng(3)
    a, b = _unit(rng, 2)
    await index.add(["x", "y"], np.stack([a, b]), [{"agent_id": "1"}, {"agent_id": "1"}])
    await index.add(["x"], b[None, :] * 3.0, [{"agent_id": "2"}])  # replaced, re-normalised
    assert await index.count() == 2
    hits = await index.search(b, top_k=2)
    assert {h[0] for h in hits} == {"x", "y"} and all(h[1] > 0.999 for h in hits)
    assert [h[0] for h in await index.search(b, top_k=5, filter={"agent_id": "2"})] == ["x"]
    assert await index.remove(["x", "never"]) == 1
    assert await index.count() == 1
    assert len(await index.search(b, top_k=10)) == 1
    await index.clear()
    assert await index.count() == 0 and await index.search(a, top_k=3) == []


async def test_bad_input(index: VectorIndex) -> None:
    with pytest.raises(InvalidInput):
        await index.add(["a"], np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(InvalidInput):
        await index.add(["a", "b"], np.ones((1, DIM), dtype=np.float32))
    with pytest.raises(InvalidInput):
        await index.add(["a", "a"], np.ones((2, DIM), dtype=np.float32))
    with pytest.raises(InvalidInput):
        await index.search(np.ones(DIM), top_k=0)
    with pytest.raises(InvalidInput):
        await index.add(["a"], np.full((1, DIM), np.nan, dtype=np.float32))


async def test_sqlite_vec_persists_and_checks_layout(tmp_path: Path) -> None:
    path = tmp_path / "vec.db"
    idx = await SqliteVecIndex.open(path, DIM, filter_keys=["agent_id"])
    await idx.add(["a"], np.ones((1, DIM)), [{"agent_id": "z"}])
    await idx.close()
    again = await SqliteVecIndex.open(path, DIM, filter_keys=["agent_id"])
    assert await again.count() == 1
    assert (await again.search(np.ones(DIM), top_k=1, filter={"agent_id": "z"}))[0][0] == "a"
    await again.close()
    with pytest.raises(Conflict) as info:
        await SqliteVecIndex.open(path, DIM * 2, filter_keys=["agent_id"])
    assert info.value.code == "index_mismatch"
    with pytest.raises(InvalidInput):
        await SqliteVecIndex.open(path, DIM, table="bad name")


async def test_open_index_auto_without_postgres(tmp_path: Path) -> None:
    assert sqlite_vec_available()
    idx = await open_index(DIM, sqlite_path=tmp_path / "v.db")
    assert idx.name == "sqlite-vec"
    await idx.close()
    assert (await open_index(DIM)).name == "numpy-exact"
    assert (await open_index(DIM, backend="numpy-exact", sqlite_path=tmp_path / "v.db")).name == "numpy-exact"
    sqlite_engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'main.db'}")
    assert not await pgvector_available(sqlite_engine)
    await sqlite_engine.dispose()
    with pytest.raises(InvalidInput):
        await open_index(DIM, backend="faiss")


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.mark.postgres
async def test_pgvector_detection_and_fallback(pg_url: str, tmp_path: Path) -> None:
    engine = create_async_engine(pg_url)
    try:
        if await pgvector_available(engine):
            idx = await open_index(DIM, engine=engine, sqlite_path=tmp_path / "v.db")
            assert idx.name == "pgvector"
            rng = np.random.default_rng(4)
            vecs = _unit(rng, 50)
            await idx.add([f"p{i}" for i in range(50)], vecs, _metas(50))
            q = vecs[7]
            assert (await idx.search(q, top_k=1))[0][0] == "p7"
            assert (await idx.search(q, top_k=3, filter={"agent_id": "agent-1"}))[0][0] == "p7"
            assert await idx.remove(["p7"]) == 1 and await idx.count() == 49
        else:
            with pytest.raises(Unavailable):
                await PgVectorIndex.open(engine, DIM)
            idx = await open_index(DIM, engine=engine, sqlite_path=tmp_path / "v.db")
            assert idx.name == "sqlite-vec"
            await idx.close()
            assert (await open_index(DIM, engine=engine)).name == "numpy-exact"
    finally:
        await engine.dispose()


async def test_numpy_index_is_safe_under_concurrent_tasks() -> None:
    idx = NumpyIndex(DIM)
    rng = np.random.default_rng(5)
    vecs = _unit(rng, 64)

    async def writer(n: int) -> None:
        await idx.add([f"w{n}-{i}" for i in range(8)], vecs[n * 8 : n * 8 + 8])

    await asyncio.gather(*(writer(n) for n in range(8)))
    assert await idx.count() == 64
    assert (await idx.search(vecs[10], top_k=1))[0][0] == "w1-2"


async def test_selective_filter_still_fills_top_k(index: VectorIndex) -> None:
    rng = np.random.default_rng(6)
    n = 1500
    vecs = _unit(rng, n)
    metas = [{"agent_id": "rare" if i % 150 == 0 else "common"} for i in range(n)]
    await index.add([f"s{i}" for i in range(n)], vecs, metas)
    hits = await index.search(vecs[1], top_k=5, filter={"agent_id": "rare"})
    rare = [i for i in range(n) if i % 150 == 0]
    expected = sorted(rare, key=lambda i: -float(vecs[i] @ vecs[1]))[:5]
    assert len(hits) == 5 and {h[0] for h in hits} <= {f"s{i}" for i in rare}
    if index.name != "pgvector":  # HNSW is approximate
        assert [h[0] for h in hits] == [f"s{i}" for i in expected]
