"""The warm pool over the real bwrap driver."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portside.server.sandboxes.drivers import Resources, SandboxSpec, WarmPool
from portside.server.sandboxes.drivers.bwrap import BwrapDriver


@pytest.fixture
async def pool(bwrap_driver: BwrapDriver, tmp_path: Path) -> AsyncIterator[WarmPool]:
    p = WarmPool(bwrap_driver, tmp_path / "pool", size=2)
    p.add_profile(Resources())
    await p.start()
    await p.wait_ready(60)
    try:
        yield p
    finally:
        await p.close()


async def test_warm_acquire_is_fast_and_adopts_workspace(pool: WarmPool, tmp_path: Path) -> None:
    target = tmp_path / "sandboxes" / "sbx_1" / "workspace"
    started = time.perf_counter()
    sb = await pool.acquire(SandboxSpec(sandbox_id="sbx_1", workspace=target))
    elapsed = time.perf_counter() - started
    try:
        assert elapsed < 0.05, elapsed
        assert pool.hits == 1
        assert sb.sandbox_id == "sbx_1" and sb.workspace == target.resolve()
        target_file = target / "from_host.txt"
        target_file.write_text("hello\n")
        r = await sb.exec_shell("cat from_host.txt; echo $PORTSIDE_SANDBOX_ID")
        assert r.stdout == "hello\nsbx_1\n"
        py = await sb.exec_python("import os; os.environ['PORTSIDE_SANDBOX_ID'], open('from_host.txt').read()")
        assert py.result == "('sbx_1', 'hello\\n')"
        assert py.execution_count == 1
        await sb.exec_shell("echo out > made_inside.txt")
        assert (target / "made_inside.txt").read_text() == "out\n"
    finally:
        await sb.stop()
    await pool.wait_ready(60)  # refilled in the background
    assert pool.ready_count() == 2


async def test_existing_data_and_other_profiles_start_cold(pool: WarmPool, tmp_path: Path) -> None:
    cargo = tmp_path / "cargo"
    cargo.mkdir()
    (cargo / "data.txt").write_text("persisted")
    sb = await pool.acquire(SandboxSpec(sandbox_id="sbx_c", workspace=cargo))
    try:
        assert pool.misses == 1 and pool.ready_count() == 2
        assert (await sb.exec_shell("cat data.txt")).stdout == "persisted"
    finally:
        await sb.stop()
    other = SandboxSpec(sandbox_id="sbx_o", workspace=tmp_path / "new", resources=Resources(memory_mb=300))
    assert await pool.try_acquire(other) is None
    sb2 = await pool.acquire(other)
    try:
        assert (await sb2.exec_python("1+1")).result == "2"
    finally:
        await sb2.stop()


async def test_empty_existing_dir_is_replaced(pool: WarmPool, tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    sb = await pool.acquire(SandboxSpec(sandbox_id="sbx_e", workspace=target))
    try:
        assert pool.hits == 1
        (target / "x").write_text("1")
        assert (await sb.exec_shell("cat x")).stdout == "1"
    finally:
        await sb.stop()
