"""Sandbox escape attempts against the bwrap driver: each must fail and leave the host fine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

from portside.server.errors import InvalidInput
from portside.server.sandboxes.drivers import Resources, SandboxHandle, safefs
from tests.drivers.fixtures import StartSandbox

PROJECT_DIR = Path(__file__).resolve().parents[2]


def host_can_fork() -> bool:
    return subprocess.run(["true"], check=False, timeout=10).returncode == 0


async def test_host_files_are_invisible(sandbox: SandboxHandle) -> None:
    hidden = ["/etc/shadow", "/root/.bashrc", "/root/.ssh", "/home", "/var", "/srv", "/boot", "/sys/fs/cgroup"]
    hidden += [str(PROJECT_DIR / "src"), str(PROJECT_DIR / "pyproject.toml"), str(PROJECT_DIR / ".git")]
    hidden += ["/work/shared", "/run/portside/../../run/postgresql"]
    for path in hidden:
        r = await sandbox.exec_shell(f"ls -la {path} || cat {path}")
        assert r.exit_code != 0, f"{path} is visible: {r.stdout[:200]}"
    # Only the Python installation is bound in: /root holds nothing but the path down to it.
    root = await sandbox.exec_shell("ls -A /root")
    assert root.stdout.split() in ([], [".pyenv"])
    py = await sandbox.exec_python("open('/etc/shadow').read()")
    assert not py.success and py.ename == "FileNotFoundError"
    passwd = await sandbox.exec_shell("cat /etc/passwd")
    assert "root:x:0:0" in passwd.stdout and len(passwd.stdout.splitlines()) == 3  # generated, not the host's


async def test_root_is_read_only(sandbox: SandboxHandle) -> None:
    for target in ("/usr/evil", "/etc/evil", "/evil", "/opt/portside/agent.py", "/bin/evil"):
        r = await sandbox.exec_shell(f"echo x > {target}")
        assert r.exit_code != 0, target
    venv_python = (await sandbox.exec_shell("command -v python")).stdout.strip()
    r = await sandbox.exec_shell(f"echo x >> {venv_python}")
    assert r.exit_code != 0
    ok = await sandbox.exec_shell("echo x > /tmp/fine && echo y > /workspace/fine && cat /tmp/fine")
    assert ok.success


async def test_host_processes_are_invisible(sandbox: SandboxHandle) -> None:
    r = await sandbox.exec_shell("ls /proc | grep -E '^[0-9]+$'")
    pids = {int(p) for p in r.stdout.split()}
    assert len(pids) < 10, pids
    cmdlines = await sandbox.exec_shell("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "pytest" not in cmdlines.stdout  # neither host processes nor host paths (bwrap --args)
    kill = await sandbox.exec_shell(f"kill -0 {os.getpid()}")
    # the test runner's pid either does not exist inside or is a sandbox process, never this process
    if kill.exit_code == 0:
        assert os.getpid() in pids


async def test_no_network(sandbox: SandboxHandle) -> None:
    code = """
import socket
results = {}
for host, port in [("127.0.0.1", 5432), ("127.0.0.1", 6379), ("192.0.2.2", 5432), ("1.1.1.1", 53), ("8.8.8.8", 443)]:
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        results[(host, port)] = "connected"
    except OSError as exc:
        results[(host, port)] = type(exc).__name__
    finally:
        s.close()
(results, socket.if_nameindex())
"""
    r = await sandbox.exec_python(code)
    assert r.success, r.error
    assert "connected" not in (r.result or "")
    assert "ConnectionRefusedError" in (r.result or "")  # loopback is the sandbox's own
    assert "[(1, 'lo')]" in (r.result or "")
    dns = await sandbox.exec_python("import socket; socket.getaddrinfo('example.com', 80)")
    assert not dns.success


async def test_network_is_opt_in(start_sandbox: StartSandbox) -> None:
    sb = await start_sandbox("net", Resources(network=True))
    r = await sb.exec_python("import socket\nlen(socket.if_nameindex()) > 1")
    assert r.result == "True"


async def test_no_privileges(sandbox: SandboxHandle) -> None:
    caps = await sandbox.exec_shell("grep -E 'CapEff|CapPrm|NoNewPrivs' /proc/self/status")
    assert "CapEff:\t0000000000000000" in caps.stdout
    for cmd in ("unshare -U true", "unshare -r true", "mount -t tmpfs none /tmp", "chroot / true"):
        r = await sandbox.exec_shell(cmd)
        assert r.exit_code != 0, cmd
    ident = await sandbox.exec_shell("id -u")
    assert ident.stdout.strip() == "1000"


async def test_fork_bomb_contained(start_sandbox: StartSandbox) -> None:
    sb = await start_sandbox("bomb", Resources(max_processes=64, memory_mb=512))
    if (await sb.stats()).cgroup_version is None:
        pytest.skip("no writable pids cgroup on this host: fork bombs are only bounded by host limits")
    bomb = asyncio.create_task(
        sb.exec_shell("python -c 'import os\nwhile True:\n  try: os.fork()\n  except OSError: pass'", timeout=3)
    )
    shell_bomb = asyncio.create_task(sb.exec_shell(":(){ :|:& };:", timeout=3))
    await asyncio.sleep(1.0)
    during = await sb.stats()
    assert during.threads <= 64
    started = time.monotonic()
    assert host_can_fork()  # the host can still fork
    assert time.monotonic() - started < 2
    r = await bomb
    assert r.timed_out
    await shell_bomb
    await asyncio.sleep(0.2)
    assert (await sb.exec_shell("echo alive")).stdout == "alive\n"
    assert (await sb.exec_python("1 + 1")).result == "2"


async def test_memory_bomb_contained(start_sandbox: StartSandbox) -> None:
    sb = await start_sandbox("mem", Resources(memory_mb=256))
    big = await sb.exec_python("hog = bytearray(2 * 1024**3)")
    assert not big.success and big.ename == "MemoryError"
    sh = await sb.exec_shell("python -c 'x = bytearray(1 << 30)'")
    assert sh.exit_code != 0 and "MemoryError" in sh.stderr
    stats = await sb.stats()
    if stats.cgroup_version is not None:
        # many processes under the per-process limit: the memory cgroup stops the sum
        r = await sb.exec_shell(
            "for i in 1 2 3 4; do python -c \"x = b'x' * (200 << 20); import time; time.sleep(3)\" & done; wait",
            timeout=30,
        )
        assert "Killed" in r.stderr
        after = await sb.stats()
        assert after.cgroup_memory_bytes is not None and after.cgroup_memory_bytes < 256 * 1024 * 1024
    assert sb.alive
    assert (await sb.exec_python("1 + 1")).result == "2"


async def test_two_sandboxes_cannot_see_each_other(start_sandbox: StartSandbox) -> None:
    a = await start_sandbox("a")
    b = await start_sandbox("b")
    await a.exec_shell("echo secret-a > secret.txt; (sleep 123 &)")
    await a.exec_python("marker_a = 'only in a'")
    listing = await b.exec_shell("ls -a /workspace; cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "secret.txt" not in listing.stdout
    assert "sleep 123" not in listing.stdout
    r = await b.exec_shell(f"ls {a.workspace} || cat {a.workspace}/secret.txt")
    assert r.exit_code != 0
    keys = [await s.exec_shell("cat /run/portside/kernel.json") for s in (a, b)]
    assert keys[0].stdout != keys[1].stdout
    assert not (await b.exec_python("marker_a")).success
    find = await b.exec_shell("find / -xdev -name 'secret.txt' 2>/dev/null | head -1")
    assert find.stdout == ""


async def test_symlinks_made_inside_do_not_leak_host_files(sandbox: SandboxHandle) -> None:
    await sandbox.exec_shell("ln -s /etc/shadow shadow; ln -s / rootfs; ln -s /root roothome")
    for name in ("shadow", "rootfs/etc/passwd", "roothome/.bashrc"):
        with pytest.raises(InvalidInput):
            safefs.read_file(sandbox.workspace, name, 1 << 20)


async def test_killing_everything_inside_only_ends_the_sandbox(start_sandbox: StartSandbox) -> None:
    sb = await start_sandbox("kill")
    try:
        await asyncio.wait_for(sb.exec_shell("kill -9 -1", timeout=5), 20)
    except Exception as exc:  # the agent died with everything else: the call fails, it does not hang
        assert "sandbox" in str(exc)
    await asyncio.sleep(0.3)
    assert not sb.alive
    assert host_can_fork()


async def test_cpu_time_limit_per_command(start_sandbox: StartSandbox) -> None:
    sb = await start_sandbox("cpu", Resources(cpu_seconds=1))
    started = time.monotonic()
    r = await sb.exec_shell("python -c 'while True: pass'", timeout=20)
    assert not r.success and not r.timed_out
    assert r.exit_code in (-24, -9, 152, 137)  # SIGXCPU (soft limit) or SIGKILL (hard limit)
    assert time.monotonic() - started < 5
    assert (await sb.exec_python("1 + 1")).result == "2"  # the kernel is not bound by it
