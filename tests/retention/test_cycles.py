"""A few hundred sandbox cycles through the real app (bwrap): after a purge the store and the data
dir are back near their baseline, and no per-sandbox state is left in the server process."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from portside.server.app import create_app
from portside.server.retention.config import RetentionSettings
from portside.server.retention.service import RetentionService
from portside.server.sandboxes.service import SandboxService
from tests.conftest import ADMIN_KEY, make_settings
from tests.drivers.fixtures import require_bwrap

pytestmark = pytest.mark.bwrap

#: Sandbox cycles (create, executions, delete), run a few at a time; each makes EXECS executions.
CYCLES = int(os.environ.get("PORTSIDE_TEST_GC_CYCLES", "200"))
EXECS = 5
PARALLEL = 3
OUTPUT_BYTES = 20_000


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    require_bwrap()
    # No background purge: it would start after a minute and purge mid-test with the test's zero retentions.
    monkeypatch.setenv("PORTSIDE_RETENTION_ENABLED", "false")
    application = create_app(make_settings(tmp_path / "data", sandbox_warm_pool=2))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://portside.test",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=120,
    ) as client:
        yield client


async def cycle(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/sandboxes", json={})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    for i in range(EXECS):
        r = await api.post(
            f"/v1/sandboxes/{sid}/shell/exec",
            json={"command": f"head -c {OUTPUT_BYTES} /dev/zero | tr '\\0' a; head -c 200000 /dev/urandom > b{i}"},
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["output"]) >= OUTPUT_BYTES
    assert (await api.delete(f"/v1/sandboxes/{sid}")).status_code == 204


async def test_store_and_data_dir_return_to_baseline(app: FastAPI, api: httpx.AsyncClient) -> None:
    ctx = app.state.ctx
    data_dir: Path = ctx.settings.data_dir.resolve()
    retention = ctx.service("retention", RetentionService)
    sandboxes = ctx.service("sandboxes", SandboxService)
    # Everything past retention as soon as it is finished: this test cannot wait a day.
    retention.settings = RetentionSettings(
        enabled=False,
        execution_output_hours=0,
        deleted_records_hours=0,
        expired_sandboxes_hours=0,
        finished_tasks_hours=0,
        idempotency_records_hours=0,
    )
    for _ in range(3):  # warm up: the first sandboxes, caches and store pages
        await cycle(api)
    await retention.run()
    base_store = await retention.store_bytes()
    base_cargos = tree_bytes(data_dir / "cargos")
    assert base_store is not None

    started = time.monotonic()
    gate = asyncio.Semaphore(PARALLEL)

    async def one() -> None:
        async with gate:
            await cycle(api)

    await asyncio.gather(*(one() for _ in range(CYCLES)))
    # A few sandboxes expire with files in their workspace and are never deleted by their owner.
    expired = []
    for _ in range(3):
        r = await api.post("/v1/sandboxes", json={"ttl": 1})
        sid = r.json()["id"]
        w = await api.post(f"/v1/sandboxes/{sid}/shell/exec", json={"command": "head -c 300000 /dev/urandom > f"})
        assert w.status_code == 200, w.text
        expired.append(sid)
    elapsed = time.monotonic() - started
    grown_store = await retention.store_bytes()
    assert grown_store is not None
    assert grown_store - base_store > CYCLES * EXECS * OUTPUT_BYTES // 2, (base_store, grown_store)
    assert tree_bytes(data_dir / "cargos") - base_cargos >= 3 * 300_000
    await asyncio.sleep(1.5)  # the TTLs run out

    r = await api.post("/v1/admin/gc")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["purged"]["execution_output"]["rows"] >= CYCLES * EXECS
    assert report["purged"]["deleted_records"]["rows"] >= 2 * CYCLES  # sandbox + cargo records
    assert report["purged"]["expired_sandboxes"]["rows"] == 3
    # Expiry itself removes a sandbox's own workspace (issue 13), so the reaper may have freed those bytes
    # before the purge ran: what matters is that they are gone by now (checked below), not who freed them.
    after_store = await retention.store_bytes()
    after_cargos = tree_bytes(data_dir / "cargos")
    print(
        f"{CYCLES} cycles, {CYCLES * EXECS} executions in {elapsed:.1f}s; "
        f"store {base_store} -> {grown_store} -> {after_store}"
    )
    assert after_store is not None
    assert after_store <= base_store * 1.25 + 256 * 1024, (base_store, grown_store, after_store)
    assert after_cargos <= base_cargos + 64 * 1024, (base_cargos, after_cargos)
    for sid in expired:
        assert (await api.get(f"/v1/sandboxes/{sid}")).status_code == 404

    # No per-sandbox state left behind in the server process.
    sandboxes._prune_rows()
    assert sandboxes.tracked() == {"cached_rows": 0, "row_generations": 0, "handles": 0, "locks": 0}
    browser = ctx.services.get("browser")
    if browser is not None:
        assert not browser._sessions and len(browser._locks) == 0
