"""Start, stats and stop of bwrap sandboxes; the process driver."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from portside.server.errors import Unavailable
from portside.server.sandboxes.drivers import SandboxSpec, create_driver
from portside.server.sandboxes.drivers._runtime import sweep_stale_runtime_dirs
from portside.server.sandboxes.drivers.bwrap import BwrapDriver
from portside.server.sandboxes.drivers.process import ProcessDriver
from tests.drivers.fixtures import StartSandbox


def host_cmdlines() -> list[bytes]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                out.append(Path(f"/proc/{entry}/cmdline").read_bytes())
            except OSError:
                continue
    return out


async def test_stop_kills_everything_and_keeps_workspace(start_sandbox: StartSandbox) -> None:
    sb = await start_sandbox()
    await sb.exec_shell("(sleep 300 &); echo data > keep.txt")
    pids = await sb.exec_python("import os; os.getpid()")
    assert pids.success
    stats = await sb.stats()
    assert stats.alive and stats.kernel_alive and stats.processes >= 3 and stats.memory_bytes > 10_000_000
    await sb.stop()
    assert not sb.alive
    assert (sb.workspace / "keep.txt").read_text() == "data\n"
    with pytest.raises(Unavailable):
        await sb.exec_shell("true")
    # no host process still runs a sandboxed "sleep 300"
    assert b"sleep\x00300\x00" not in host_cmdlines()
    await sb.stop()  # idempotent


async def test_missing_workspace_refused(bwrap_driver: BwrapDriver, tmp_path: Path) -> None:
    with pytest.raises(Unavailable):
        await bwrap_driver.start(SandboxSpec(sandbox_id="x", workspace=tmp_path / "missing"))


@pytest.fixture
def real_tmp(tmp_path: Path) -> str:
    return os.path.realpath(tmp_path)


async def test_process_driver_warns_and_works(tmp_path: Path, real_tmp: str, caplog: pytest.LogCaptureFixture) -> None:
    real = real_tmp
    driver = create_driver("process")
    assert isinstance(driver, ProcessDriver) and not driver.isolated
    with caplog.at_level(logging.WARNING):
        sb = await driver.start(SandboxSpec(sandbox_id="sbx_p", workspace=tmp_path))
    try:
        assert any("UNSAFE" in rec.message for rec in caplog.records)
        await sb.exec_python("v = 5")
        r = await sb.exec_python("v * 2")
        assert r.result == "10"
        sh = await sb.exec_shell("pwd; echo $PORTSIDE_SANDBOX_ID", cwd=".")
        assert sh.stdout == f"{real}\nsbx_p\n"
        t = await sb.exec_shell("sleep 10", timeout=0.3)
        assert t.timed_out
        st = await sb.stats()
        assert st.processes >= 2 and st.processes < 20
    finally:
        await sb.stop()
    assert not sb.alive


def test_unknown_driver() -> None:
    from portside.server.errors import InvalidInput

    with pytest.raises(InvalidInput):
        create_driver("docker")


async def test_stop_during_execution_fails_fast(start_sandbox: StartSandbox) -> None:
    sb = await start_sandbox("busy")
    running = asyncio.create_task(sb.exec_python("import time; time.sleep(30)", timeout=60))
    shell = asyncio.create_task(sb.exec_shell("sleep 30", timeout=60))
    await asyncio.sleep(0.3)
    await sb.stop()
    for task in (running, shell):
        with pytest.raises(Unavailable):
            await asyncio.wait_for(task, 5)


def test_stale_runtime_dirs_are_swept(tmp_path: Path) -> None:
    dead = tmp_path / "deadbeef00"
    dead.mkdir()
    (dead / "owner").write_text("999999999")
    live = tmp_path / "live000000"
    live.mkdir()
    (live / "owner").write_text(str(os.getpid()))
    young = tmp_path / "young00000"
    young.mkdir()
    for d in (dead, live):
        os.utime(d, (time.time() - 3600, time.time() - 3600))
    assert sweep_stale_runtime_dirs(tmp_path) == ["deadbeef00"]
    assert live.exists() and young.exists() and not dead.exists()


def my_children() -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == os.getpid() and stat[0] != "Z":
                kids.append(int(entry))
    return kids


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.05, 0.2])
async def test_cancelled_start_leaves_nothing_running(bwrap_driver: BwrapDriver, tmp_path: Path, delay: float) -> None:
    before = set(my_children())
    task = asyncio.create_task(bwrap_driver.start(SandboxSpec(sandbox_id="c", workspace=tmp_path)))
    await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    assert set(my_children()) - before == set()
