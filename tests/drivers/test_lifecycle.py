"""Start, stats and stop of bwrap sandboxes; the process driver."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from portside.server.errors import Unavailable
from portside.server.sandboxes.drivers import SandboxSpec, create_driver
from portside.server.sandboxes.drivers.bwrap import BwrapDriver
from portside.server.sandboxes.drivers.process import ProcessDriver
from tests.drivers.fixtures import StartSandbox


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
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            assert cmd != b"sleep\x00300\x00"
    await sb.stop()  # idempotent


async def test_missing_workspace_refused(bwrap_driver: BwrapDriver, tmp_path: Path) -> None:
    with pytest.raises(Unavailable):
        await bwrap_driver.start(SandboxSpec(sandbox_id="x", workspace=tmp_path / "missing"))


async def test_process_driver_warns_and_works(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
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
        assert sh.stdout == f"{tmp_path.resolve()}\nsbx_p\n"
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
