"""Two server replicas on one PostgreSQL store share the queue: 4 workers, 1000 tasks, each task
completed exactly once in the result store; wake-ups, cancels and waits cross replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

import portside
from portside.server.workers.rows import LEASES
from tests.conftest import ADMIN_KEY, LiveServer, create_pg_database, drop_pg_database, make_settings
from tests.workers.helpers import live, until

pytestmark = pytest.mark.postgres
CAP = "rel/replicas/job"
N = 1000


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer, str]]:
    url = create_pg_database()
    a = b = None
    try:
        a = live(make_settings(tmp_path / "a", url), poll_interval_s=0.5)
        b = live(make_settings(tmp_path / "b", url), poll_interval_s=0.5)
        yield a, b, url
    finally:
        for srv in (a, b):
            if srv is not None:
                srv.stop()
        drop_pg_database(url)


async def test_two_replicas_complete_each_task_exactly_once(replicas: tuple[LiveServer, LiveServer, str]) -> None:
    a, b, db_url = replicas
    runs: dict[int, int] = {}
    workers: list[portside.Worker] = []
    for k, srv in enumerate([a, a, b, b]):
        w = portside.Worker(srv.url, ADMIN_KEY, worker_id=f"rep-{k}", heartbeat_interval=0.3)

        async def job(inp: Any, ctx: portside.TaskContext) -> Any:
            runs[inp] = runs.get(inp, 0) + 1
            return inp

        w.add_handler(CAP, job, concurrency=16)
        await w.start()
        workers.append(w)
    try:
        for w in workers:
            await w.wait_registered(10)
        async with portside.AsyncClient(a.url, ADMIN_KEY) as ca, portside.AsyncClient(b.url, ADMIN_KEY) as cb:
            half = N // 2
            await asyncio.gather(
                *(
                    client.tasks.submit_many([{"capability": CAP, "input": i} for i in range(lo, min(lo + 100, hi))])
                    for client, lo0, hi in ((ca, 0, half), (cb, half, N))
                    for lo in range(lo0, hi, 100)
                )
            )
            await until(lambda: _all_done(ca), timeout=60, interval=0.1)
            by_worker = {w.id: 0 for w in await ca.workers.list()}
            for t in (await ca.tasks.list(limit=500)).items:
                by_worker[t.worker_id or ""] = by_worker.get(t.worker_id or "", 0) + 1
    finally:
        for w in workers:
            await w.stop(timeout=5)

    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            acked = (
                await conn.execute(
                    select(LEASES.c.task_id, func.count()).where(LEASES.c.state == "acked").group_by(LEASES.c.task_id)
                )
            ).all()
    finally:
        await engine.dispose()
    assert len(acked) == N and all(n == 1 for _, n in acked)
    assert sorted(runs) == list(range(N))
    # both replicas' workers took part
    assert sum(1 for k, v in by_worker.items() if k.startswith("rep-") and v) >= 2


async def _all_done(client: portside.AsyncClient) -> bool:
    counts = await client.tasks.counts(capability=CAP)
    return counts["succeeded"] == N


async def test_cross_replica_dispatch_cancel_and_wait(replicas: tuple[LiveServer, LiveServer, str]) -> None:
    a, b, _ = replicas
    started = asyncio.Event()
    cancelled: list[bool] = []
    w = portside.Worker(a.url, ADMIN_KEY, worker_id="rep-x", heartbeat_interval=0.3)

    @w.handler("rel/replicas/quick")
    async def quick(inp: Any, ctx: portside.TaskContext) -> Any:
        return inp

    @w.handler("rel/replicas/slow")
    async def slow(inp: Any, ctx: portside.TaskContext) -> Any:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            cancelled.append(ctx.cancelled.is_set())

    async with w:
        await w.wait_registered(10)
        async with portside.AsyncClient(b.url, ADMIN_KEY) as cb:
            # submitted on B, served by a worker connected to A, awaited on B
            t = await cb.tasks.submit("rel/replicas/quick", {"x": 1})
            done = await cb.tasks.wait(t.id, timeout=10)
            assert done.status == "succeeded" and done.output == {"x": 1} and done.worker_id == "rep-x"
            # cancelled on B: the handler on A's stream is told
            s = await cb.tasks.submit("rel/replicas/slow", None)
            await asyncio.wait_for(started.wait(), 10)
            assert (await cb.tasks.cancel(s.id)).status == "cancelled"
            await until(lambda: cancelled)
    assert cancelled == [True]
