"""Shell execution inside the same bwrap sandbox."""

from __future__ import annotations

import asyncio
import time

import pytest

from portside.server.errors import InvalidInput
from portside.server.sandboxes.drivers import SandboxHandle


async def test_exit_codes_and_streams(sandbox: SandboxHandle) -> None:
    ok = await sandbox.exec_shell("echo out; echo err >&2")
    assert ok.success and ok.exit_code == 0
    assert ok.stdout == "out\n" and ok.stderr == "err\n"
    bad = await sandbox.exec_shell("exit 7")
    assert not bad.success and bad.exit_code == 7 and not bad.timed_out
    missing = await sandbox.exec_shell("no-such-command-here")
    assert missing.exit_code == 127


async def test_cwd(sandbox: SandboxHandle) -> None:
    (sandbox.workspace / "a" / "b").mkdir(parents=True)
    assert (await sandbox.exec_shell("pwd")).stdout == "/workspace\n"
    assert (await sandbox.exec_shell("pwd", cwd="a/b")).stdout == "/workspace/a/b\n"
    assert (await sandbox.exec_shell("pwd", cwd="/workspace/a")).stdout == "/workspace/a\n"
    assert (await sandbox.exec_shell("pwd", cwd="./a/../a/b")).stdout == "/workspace/a/b\n"
    for bad in ("../", "/etc", "nope", "a/../../x"):
        with pytest.raises(InvalidInput) as info:
            await sandbox.exec_shell("pwd", cwd=bad)
        assert info.value.code == "invalid_path"


async def test_cwd_symlink_escape_refused(sandbox: SandboxHandle) -> None:
    await sandbox.exec_shell("ln -s /etc link")
    with pytest.raises(InvalidInput):
        await sandbox.exec_shell("pwd", cwd="link")


async def test_env_and_shell_sees_kernel_files(sandbox: SandboxHandle) -> None:
    r = await sandbox.exec_shell('echo "$GREETING $HOME $PORTSIDE_SANDBOX_ID"', env={"GREETING": "hi"})
    assert r.stdout == "hi /workspace sbx_sbx\n"
    await sandbox.exec_python("open('k.txt','w').write('k')")
    assert (await sandbox.exec_shell("cat k.txt")).stdout == "k"
    with pytest.raises(InvalidInput):
        await sandbox.exec_shell("true", env={"BAD-NAME": "x"})


async def test_timeout_kills_process_group(sandbox: SandboxHandle) -> None:
    started = time.monotonic()
    r = await sandbox.exec_shell("sleep 100 & sleep 100; echo never", timeout=0.5)
    assert time.monotonic() - started < 3
    assert r.timed_out and not r.success and r.exit_code != 0
    assert "never" not in r.stdout
    await asyncio.sleep(0.1)
    ps = await sandbox.exec_shell("ls /proc | grep -c '^[0-9]'; cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "sleep 100" not in ps.stdout


async def test_background_process_does_not_block(sandbox: SandboxHandle) -> None:
    started = time.monotonic()
    r = await sandbox.exec_shell("(sleep 30 &) ; echo started", timeout=10)
    assert r.success and r.stdout == "started\n"
    assert time.monotonic() - started < 2


async def test_large_output_truncated(sandbox: SandboxHandle) -> None:
    r = await sandbox.exec_shell("head -c 3000000 /dev/zero | tr '\\0' x")
    assert r.success and r.truncated
    assert len(r.stdout) == 1 << 20


async def test_concurrent_commands(sandbox: SandboxHandle) -> None:
    started = time.monotonic()
    results = await asyncio.gather(*(sandbox.exec_shell(f"sleep 0.5; echo {i}") for i in range(4)))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(4)]
    assert time.monotonic() - started < 1.5


async def test_interrupt_kills_running_commands(sandbox: SandboxHandle) -> None:
    task = asyncio.create_task(sandbox.exec_shell("sleep 30", timeout=60))
    await asyncio.sleep(0.3)
    await sandbox.interrupt()
    r = await asyncio.wait_for(task, 5)
    assert not r.success and r.exit_code == -9
