"""Process hardening of the bwrap driver (issue 13, part proc): CPU caps, exec timeouts that end the whole
tree, a bounded runtime dir, cleanup after the agent dies, seccomp, and a clean pid-1 environment."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from portside.server.errors import Unavailable
from portside.server.sandboxes.drivers import Resources, SandboxHandle
from portside.server.sandboxes.drivers._runtime import AgentSandbox
from portside.server.sandboxes.drivers.bwrap import BwrapConfig, BwrapDriver
from portside.server.sandboxes.runtime import RuntimeManager
from tests.drivers.fixtures import StartSandbox, require_bwrap

SPIN = "python -c 'while True: pass'"


def agent(handle: SandboxHandle) -> AgentSandbox:
    assert isinstance(handle, AgentSandbox)
    return handle


async def cpu_of(sb: SandboxHandle, pattern: str) -> dict[int, float]:
    """CPU seconds of the sandbox's processes whose command line contains ``pattern`` (read inside)."""
    script = (
        "import os\n"
        "for p in filter(str.isdigit, os.listdir('/proc')):\n"
        "  try:\n"
        "    cmd = open(f'/proc/{p}/cmdline','rb').read().replace(b'\\0', b' ').decode()\n"
        "    st = open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()\n"
        "  except OSError: continue\n"
        f"  if {pattern!r} in cmd and 'import os' not in cmd:\n"
        "    print(p, (int(st[11]) + int(st[12])) / os.sysconf('SC_CLK_TCK'))\n"
    )
    r = await sb.exec_shell(f"python - <<'EOF'\n{script}EOF")
    out: dict[int, float] = {}
    for line in r.stdout.split("\n"):
        if line.strip():
            pid, cpu = line.split()
            out[int(pid)] = float(cpu)
    return out


async def test_detached_cpu_spinners_are_throttled_to_the_profile_cpus(start_sandbox: StartSandbox) -> None:
    sb = await start_sandbox("cpu", Resources(cpus=0.2))
    cg = agent(sb).cgroup
    if cg is None or cg.cpu_dir is None:
        pytest.skip("no writable cpu cgroup here (the watchdog fallback is tested separately)")
    # Two spinners detached from the kernel and from a shell exec: neither exec bounds them.
    await sb.exec_python(f"import subprocess; p = subprocess.Popen({SPIN!r}, shell=True, start_new_session=True)")
    await sb.exec_shell(f"setsid nohup {SPIN} >/dev/null 2>&1 &")
    await asyncio.sleep(0.5)
    before, t0 = await cpu_of(sb, "while True"), time.monotonic()
    assert len(before) >= 2, before
    await asyncio.sleep(3)
    after, t1 = await cpu_of(sb, "while True"), time.monotonic()
    used = sum(after.get(pid, 0.0) - cpu for pid, cpu in before.items())
    # Unthrottled they would take ~2 cores (or whatever a loaded host gives them); the cap is 0.2 of one.
    assert used / (t1 - t0) < 0.45, f"spinners used {used:.2f}s of CPU in {t1 - t0:.2f}s"
    assert (await sb.exec_shell("echo alive")).stdout == "alive\n"


async def test_cpu_watchdog_bounds_detached_processes_without_cgroups(tmp_path: Path) -> None:
    require_bwrap()
    driver = BwrapDriver(BwrapConfig(use_cgroups=False))
    ws = tmp_path / "ws"
    ws.mkdir()
    from portside.server.sandboxes.drivers import SandboxSpec

    sb = await driver.start(SandboxSpec(sandbox_id="sbx_wd", workspace=ws, resources=Resources(cpu_seconds=1)))
    try:
        await sb.exec_python(f"import subprocess; p = subprocess.Popen({SPIN!r}, shell=True, start_new_session=True)")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if not await cpu_of(sb, "while True"):
                break
        assert not await cpu_of(sb, "while True"), "the detached spinner outlived its CPU budget"
        assert (await sb.exec_python("1 + 1")).result == "2"  # the kernel itself is spared
    finally:
        await sb.stop()


async def test_exec_timeout_kills_everything_the_exec_started(sandbox: SandboxHandle) -> None:
    kept = await sandbox.exec_shell("sleep 302 >/dev/null 2>&1 &")  # finishes normally: its job may stay
    assert kept.exit_code == 0
    r = await sandbox.exec_shell(
        f"setsid {SPIN} & nohup sleep 300 >/dev/null 2>&1 & (setsid sleep 301 >/dev/null 2>&1 &); sleep 60",
        timeout=1.5,
    )
    assert r.timed_out
    await asyncio.sleep(0.3)
    left = await sandbox.exec_shell("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "while True" not in left.stdout
    assert "sleep 300" not in left.stdout and "sleep 301" not in left.stdout and "sleep 60" not in left.stdout
    assert "sleep 302" in left.stdout
    assert (await sandbox.exec_shell("echo ok")).stdout == "ok\n"


async def test_python_exec_timeout_kills_what_that_execution_started(sandbox: SandboxHandle) -> None:
    """The issue's own example: ``subprocess.Popen(..., start_new_session=True)`` from Python code, plus a
    double fork. A timed-out execution ends them; what an earlier execution started and shell jobs stay;
    the kernel keeps its state."""
    await sandbox.exec_python("import subprocess, os; keep = subprocess.Popen(['sleep', '305'])")
    await sandbox.exec_shell("sleep 306 >/dev/null 2>&1 &")
    r = await sandbox.exec_python(
        "spin = subprocess.Popen(['python', '-c', 'while True: pass'], start_new_session=True)\n"
        "os.system('(setsid sleep 307 >/dev/null 2>&1 &)')\n"
        "import time; time.sleep(60)",
        timeout=1.5,
    )
    assert r.timed_out
    await asyncio.sleep(0.3)
    left = (await sandbox.exec_shell("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")).stdout
    assert "while True" not in left and "sleep 307" not in left
    assert "sleep 305" in left and "sleep 306" in left
    assert (await sandbox.exec_python("keep.poll() is None")).result == "True"


async def test_interrupt_kills_the_running_exec_tree(sandbox: SandboxHandle) -> None:
    task = asyncio.create_task(sandbox.exec_shell("(setsid sleep 303 &); sleep 60", timeout=30))
    await asyncio.sleep(1.0)
    await sandbox.interrupt()
    r = await asyncio.wait_for(task, 10)
    assert r.exit_code != 0
    left = await sandbox.exec_shell("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "sleep 303" not in left.stdout


async def test_runtime_dir_cannot_fill_the_host_disk(sandbox: SandboxHandle) -> None:
    r = await sandbox.exec_shell("head -c 16M /dev/zero > /run/portside/fill; echo rc=$?")
    assert "No space left" in r.stderr and "rc=1" in r.stdout
    host = agent(sandbox).runtime_dir
    size = sum(f.stat().st_size for f in host.rglob("*") if f.is_file())
    assert size < 64 * 1024, f"{size} bytes of sandbox writes reached the host runtime dir"
    # stderr of the sandbox's pid 1 (a host pipe, not a file) cannot grow a host file either
    await sandbox.exec_shell("head -c 4M /dev/zero > /proc/1/fd/2 2>/dev/null; true")
    size = sum(f.stat().st_size for f in host.rglob("*") if f.is_file())
    assert size < 64 * 1024
    assert (await sandbox.exec_python("1 + 1")).result == "2"


async def test_owner_file_and_host_runtime_files_are_not_writable_from_inside(sandbox: SandboxHandle) -> None:
    host = agent(sandbox).runtime_dir
    owner = (host / "owner").read_text()
    kernel = (host / "kernel.json").read_text()
    await sandbox.exec_shell(
        "echo 1 > /run/portside/owner; echo 1 > /run/portside/../portside/owner; "
        "echo '{}' > /run/portside/kernel.json; echo '{}' > /run/portside/agent.json; "
        "rm -f /run/portside/owner /run/portside/kernel.json"
    )
    assert (host / "owner").read_text() == owner == str(os.getpid())
    assert (host / "kernel.json").read_text() == kernel
    assert (await sandbox.exec_python("2 + 2")).result == "4"


async def test_endless_line_on_the_agent_pipe_cannot_grow_the_server(start_sandbox: StartSandbox) -> None:
    """bwrap's pid 1 holds the agent's reply pipe; sandbox code can write to it through /proc/1/fd/1.

    A line with no end must not make the server buffer it: past ``AGENT_LINE_LIMIT`` the sandbox is treated as
    gone and cleaned up (before: buffered up to 256 MiB per sandbox).
    """
    from portside.server.sandboxes.drivers._runtime import AGENT_LINE_LIMIT

    sb = agent(await start_sandbox("endless"))
    size_mb = AGENT_LINE_LIMIT // (1024 * 1024) + 16
    await sb.exec_shell(f"(setsid sh -c 'head -c {size_mb}M /dev/zero > /proc/1/fd/1' &) ; true")  # NULs, no newline
    for _ in range(300):  # up to 30 s on a busy machine
        if not sb.alive:
            break
        await asyncio.sleep(0.1)
    assert not sb.alive, "the server kept buffering an endless line from the sandbox"


async def _kill_agent(sb: SandboxHandle) -> None:
    with pytest.raises(Unavailable):  # the agent dies with the call
        await asyncio.wait_for(sb.exec_shell("kill -9 2; sleep 5", timeout=10), 20)


def _bwrap_pids(cgroup_pids: list[int]) -> list[int]:
    return [p for p in cgroup_pids if Path(f"/proc/{p}").exists()]


async def test_agent_death_then_stop_removes_processes_runtime_dir_and_cgroup(
    bwrap_driver: BwrapDriver, tmp_path: Path
) -> None:
    manager = RuntimeManager(bwrap_driver)
    sb = agent(await manager.start("sbx_oom", tmp_path / "ws", Resources()))
    await sb.exec_shell("(setsid sleep 304 &) ; head -c 1M /dev/zero > /run/portside/junk")
    runtime, cgroup = sb.runtime_dir, sb.cgroup
    await _kill_agent(sb)
    assert manager.get("sbx_oom") is None  # what the service sees next: not running
    await manager.stop("sbx_oom")  # delete / expiry / stop
    assert not runtime.exists()
    if cgroup is not None:
        assert not any(d.exists() for d in cgroup.dirs)
    ps = await asyncio.to_thread(lambda: [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline")])
    assert not any(b"sleep\x00304" in c for c in ps)


async def test_agent_death_cleans_up_by_itself(start_sandbox: StartSandbox) -> None:
    sb = agent(await start_sandbox("died"))
    runtime, cgroup = sb.runtime_dir, sb.cgroup
    await _kill_agent(sb)
    for _ in range(100):  # polls host state: up to 10 s
        if not runtime.exists() and not (cgroup and any(d.exists() for d in cgroup.dirs)):
            break
        await asyncio.sleep(0.1)
    assert not runtime.exists()
    if cgroup is not None:
        assert not any(d.exists() for d in cgroup.dirs)


SYSCALLS_X86_64 = {
    "bpf": 321,
    "perf_event_open": 298,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "userfaultfd": 323,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "unshare": 272,
    "setns": 308,
}


async def test_seccomp_denies_dangerous_syscalls_with_eperm(sandbox: SandboxHandle) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("syscall numbers below are x86_64")
    script = (
        "import ctypes, os, json, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "out = {}\n"
        f"for name, nr in {SYSCALLS_X86_64!r}.items():\n"
        "  ctypes.set_errno(0)\n"
        "  args = [0] * 6\n"
        "  if name == 'io_uring_setup': args = [8, ctypes.addressof(ctypes.create_string_buffer(120))] + [0] * 4\n"
        "  if name == 'perf_event_open':\n"
        "    attr = ctypes.create_string_buffer(128); attr[4] = 128; attr[8] = 9\n"  # software, cpu-clock
        "    args = [ctypes.addressof(attr), 0, -1, -1, 0, 0]\n"
        "  if name == 'keyctl': args = [0, -3, 0, 0, 0, 0]\n"  # KEYCTL_GET_KEYRING_ID of the session keyring
        "  if name == 'unshare': args = [0x00020000] + [0] * 5\n"
        "  if name == 'userfaultfd': args = [1] + [0] * 5\n"  # UFFD_USER_MODE_ONLY
        "  rc = libc.syscall(nr, *[ctypes.c_long(a) for a in args])\n"
        "  out[name] = [rc, ctypes.get_errno()]\n"
        "CLONE_NEWUSER = 0x10000000\n"
        "rc = libc.syscall(56, ctypes.c_long(CLONE_NEWUSER | 17), 0, 0, 0, 0)\n"  # clone
        "if rc == 0: os._exit(0)\n"
        "out['clone_newuser'] = [rc, ctypes.get_errno()]\n"
        "out['ptrace_pid1'] = [libc.ptrace(16, 1, 0, 0), ctypes.get_errno()]\n"
        "out['ptrace_agent'] = [libc.ptrace(16, 2, 0, 0), ctypes.get_errno()]\n"
        "out['seize_agent'] = [libc.ptrace(0x4206, 2, 0, 0), ctypes.get_errno()]\n"
        "out['seccomp'] = open('/proc/self/status').read().split('Seccomp:')[1].split()[0]\n"
        "def opens(path):\n"
        "  try: open(path, 'rb').close(); return True\n"
        "  except OSError: return False\n"
        "out['agent_mem'] = opens('/proc/2/mem') or opens('/proc/2/fd/1') or opens('/proc/2/environ')\n"
        "print(json.dumps(out))\n"
    )
    r = await sandbox.exec_shell(f"python - <<'EOF'\n{script}EOF")
    import json

    out = json.loads(r.stdout)
    assert out.pop("seccomp") == "2"
    assert out.pop("agent_mem") is False
    for name, (rc, err) in out.items():
        assert rc == -1 and err == 1, f"{name}: rc={rc} errno={err} (want EPERM)"
    # the sandbox is not wedged
    assert (await sandbox.exec_shell("echo ok")).stdout == "ok\n"
    assert (await sandbox.exec_python("1 + 1")).result == "2"


async def test_everyday_programs_still_work_under_seccomp(sandbox: SandboxHandle) -> None:
    r = await sandbox.exec_shell(
        "python -c 'import subprocess, threading, multiprocessing as m; "
        't = threading.Thread(target=print, args=("thread",)); t.start(); t.join(); '
        'print(subprocess.run(["echo", "child"], capture_output=True, text=True).stdout.strip()); '
        "p = m.Pool(2); print(sum(p.map(abs, [-1, -2]))); p.close()' && (echo sub; bash -c 'echo nested') | cat"
    )
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == ["thread", "child", "3", "sub", "nested"]


async def test_pid1_environment_is_clean(sandbox: SandboxHandle) -> None:
    r = await sandbox.exec_shell("tr '\\0' '\\n' < /proc/1/environ")
    assert r.exit_code == 0
    assert r.stdout.strip() == "", r.stdout
    cmd = await sandbox.exec_shell("tr '\\0' ' ' < /proc/1/cmdline")
    assert "cgroup" not in cmd.stdout and "/sys/fs" not in cmd.stdout
