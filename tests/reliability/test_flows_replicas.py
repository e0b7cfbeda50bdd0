"""Several replicas on one PostgreSQL share executions safely, and survive one of them stopping."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from portside.server.app import create_app
from portside.server.flows.engine import Engine
from tests.conftest import ADMIN_KEY, create_pg_database, drop_pg_database, make_settings
from tests.flows.agents import running_agents, slow
from tests.flows.conftest import chain, register_agents, wait_done

pytestmark = [pytest.mark.timeout(90), pytest.mark.postgres]


@asynccontextmanager
async def replica(
    url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch, *, engine: bool
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    with monkeypatch.context() as m:
        m.setenv("PORTSIDE_FLOWS_ENGINE", "true" if engine else "false")
        m.setenv("PORTSIDE_FLOWS_MAX_RUNNING", "4")
        m.setenv("PORTSIDE_FLOWS_POLL_SECONDS", "0.1")
        m.setenv("PORTSIDE_FLOWS_LEASE_SECONDS", "3")
        app = create_app(make_settings(data_dir, url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://replica", headers=headers) as client:
            yield app, client


async def test_replicas_share_work_and_fail_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = await asyncio.to_thread(create_pg_database)
    try:
        with running_agents() as agents:
            agents.behaviours["step"] = slow(0.15, {"ok": True})
            async with AsyncExitStack() as stack:
                _, front = await stack.enter_async_context(replica(url, tmp_path / "a", monkeypatch, engine=False))
                b_app, _ = await stack.enter_async_context(replica(url, tmp_path / "b", monkeypatch, engine=True))
                c_stack = AsyncExitStack()
                c_app, _ = await c_stack.enter_async_context(replica(url, tmp_path / "c", monkeypatch, engine=True))
                await register_agents(front, agents, "step")
                await front.put("/v1/flows/shared", json=chain("shared", "step", 3))
                started = await asyncio.gather(
                    *(front.post("/v1/flows/shared/executions", json={"input": {"i": i}}) for i in range(16))
                )
                ids = [r.json()["execution_id"] for r in started]
                assert all(r.json()["status"] == "pending" for r in started)  # the front replica runs nothing
                # let both engines get going, then stop one: its leases are handed back
                engine_c = c_app.state.ctx.services["flow_engine"]
                assert isinstance(engine_c, Engine)
                for _ in range(200):
                    if engine_c.counters["claimed"] >= 2:
                        break
                    await asyncio.sleep(0.05)
                await c_stack.aclose()
                results = await asyncio.gather(*(wait_done(front, i, timeout=60) for i in ids))
                engine_b = b_app.state.ctx.services["flow_engine"]
                assert isinstance(engine_b, Engine)
                assert engine_b.counters["claimed"] > 0 and engine_c.counters["claimed"] > 0
        assert all(r["status"] == "completed" for r in results), [r["status"] for r in results]
        for r in results:
            assert all(n["status"] == "completed" for n in r["nodes"])
        calls = Counter((p["execution_id"], p["node_id"]) for name, p, _ in agents.calls if name == "step")
        assert set(calls) == {(i, f"a{k}") for i in ids for k in range(3)}
        assert max(calls.values()) <= 2  # only a node interrupted by the stop runs again
        interrupted = [c for c, n in calls.items() if n == 2]
        for exec_id, node_id in interrupted:
            node = next(
                n for r in results if r["execution_id"] == exec_id for n in r["nodes"] if n["node_id"] == node_id
            )
            assert node["attempt_log"][0]["code"] == "interrupted"
    finally:
        await asyncio.to_thread(drop_pg_database, url)
