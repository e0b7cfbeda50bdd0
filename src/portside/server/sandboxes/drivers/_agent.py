"""In-sandbox exec agent (runs INSIDE the sandbox; stdlib only, Python 3.10+).

Started once per sandbox as ``python -s agent.py <config.json>`` (a file, so that environment values stay
out of host ``ps`` listings). It

* applies the sandbox rlimits to itself (inherited by everything it starts),
* starts one ipykernel (``-f <connection file>``) and keeps it alive,
* serves JSON-lines requests on its stdin and answers on its stdout:

  ``{"id": 1, "op": "exec", "cmd": "...", "cwd": "/workspace", "env": {}, "timeout": 5.0,
  "max_output": 1048576}`` -> ``{"id": 1, "ok": true, "exit_code": 0, "stdout": "...", ...}``

  other ops: ``ping``, ``signal_kernel`` (``sig``), ``restart_kernel``, ``kill_execs``, ``stats``.
  Unsolicited events carry ``"event"`` instead of ``"id"``: ``ready`` and ``kernel_exit``.

Process hygiene:

* The agent makes itself non-dumpable (``PR_SET_DUMPABLE 0``), so sandbox code, which runs as the same uid
  without capabilities, cannot ptrace it, read its memory or open its protocol pipes through ``/proc``.
* Each shell command runs under its own *reaper*: a fork of the agent that is a child subreaper
  (``PR_SET_CHILD_SUBREAPER``) and the parent of ``bash``. Whatever the command starts, even with ``setsid``,
  ``nohup ... &`` or a double fork, stays a descendant of that reaper, so an exec's timeout (or an interrupt)
  SIGKILLs the whole tree. A command that exits normally leaves its background jobs running; the reaper
  lingers until they end. (A process that kills its own reaper escapes this bookkeeping but not the
  sandbox's CPU, memory and pids limits.)
* Without a cpu cgroup (``cpu_watchdog`` in the config) a watchdog puts ``RLIMIT_CPU`` on every process
  but the agent, its reapers and the kernel, and kills those past ``cpu_seconds``.

This file must not import anything from Portside: it is bind-mounted alone into the sandbox.

Start-up is on the critical path of a cold sandbox create, so the agent spawns the kernel before it even
imports asyncio (about 30 ms), and the kernel starts through :data:`KERNEL_LAUNCHER` rather than
``-m ipykernel_launcher``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterator

KERNEL_LAUNCHER = """\
import sys
if sys.path and sys.path[0] == "":
    del sys.path[0]
sys.modules["debugpy"] = None
try:
    import ipykernel.debugger
finally:
    del sys.modules["debugpy"]
from ipykernel.kernelapp import IPKernelApp
IPKernelApp.launch_instance()
"""
"""What ``python -m ipykernel_launcher`` does, except that ipykernel's debugger is left off: importing debugpy
and pydevd is about a third of the kernel's start-up (~130 ms) and Portside never speaks the Jupyter debug
protocol (no control channel is exposed). ``debugpy`` is blocked only while ``ipykernel.debugger`` loads, so
user code can still import it. ``sys.argv[0]`` becomes ``-c`` instead of the launcher's path."""

KERNEL_OPTIONS = (
    "--HistoryManager.enabled=False",
    "--IPKernelApp.quiet=True",
    # ipykernel sleeps 0.5 ms after each execution before replying, a workaround for clients that stop reading
    # iopub at the reply. The host reads iopub until the kernel reports "idle", which comes after all output.
    "--Kernel._execute_sleep=0",
)

_CONFIG: dict[str, Any] = {}
_OUT_FD = -1
_KERNEL: subprocess.Popen[bytes] | None = None
_KERNEL_WANTED = True
_EXECS: dict[int, int] = {}
"""exec request id -> pid of its reaper, while the exec runs."""
_REAPERS: set[int] = set()
"""Every live reaper (including those lingering for background jobs)."""
_LIBC: Any = None
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _send(msg: dict[str, Any]) -> None:
    data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
    view = memoryview(data)
    while view:
        n = os.write(_OUT_FD, view)
        view = view[n:]


def _apply_rlimits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        rlim = getattr(resource, name, None)
        if rlim is None or value is None:
            continue
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(rlim, (value, value))


def _prctl(option: int, value: int) -> int:
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
    return int(_LIBC.prctl(option, value, 0, 0, 0))


def _child_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(_CONFIG.get("env") or {})
    env.pop("JPY_PARENT_PID", None)
    if extra:
        env.update(extra)
    return env


def _open_log(path: str | None) -> Any:
    return open(path or os.devnull, "ab")


def _spawn_kernel() -> subprocess.Popen[bytes]:
    """Start the kernel (synchronous, so that it can run before the event loop exists)."""
    global _KERNEL
    prefix = _CONFIG.get("ipc_prefix")
    if prefix:
        for i in range(1, 6):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{prefix}-{i}")
    with _open_log(_CONFIG.get("kernel_log")) as log:
        _KERNEL = subprocess.Popen(
            [sys.executable, "-s", "-c", KERNEL_LAUNCHER, "-f", _CONFIG["connection_file"], *KERNEL_OPTIONS],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=_CONFIG["workspace"],
            env=_child_env(None),
        )
    return _KERNEL


def _watch_kernel(proc: subprocess.Popen[bytes]) -> None:
    """Report the kernel's exit (seen on a pidfd) unless it was asked to stop."""
    import asyncio

    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(proc.pid)

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        code = proc.wait()
        if proc is _KERNEL and _KERNEL_WANTED:
            _send({"event": "kernel_exit", "code": code, "pid": proc.pid})

    loop.add_reader(pidfd, on_exit)


async def _start_kernel() -> int:
    proc = _spawn_kernel()
    _watch_kernel(proc)
    return proc.pid


async def _stop_kernel() -> None:
    import asyncio

    proc = _KERNEL
    if proc is None or proc.poll() is not None:
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()
    pidfd = os.pidfd_open(proc.pid)

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_exit)
    try:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(exited, 5)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    proc.poll()


def _limit_cpu() -> None:  # runs in the forked child before exec
    cpu = _CONFIG.get("cpu_seconds")
    if cpu:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CPU, (int(cpu), int(cpu) + 1))


class _Capture:
    """Reads a non-blocking pipe into a capped buffer from the event loop."""

    def __init__(self, fd: int, cap: int) -> None:
        self.fd = fd
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.open = True
        os.set_blocking(fd, False)

    def on_readable(self) -> None:
        while self.open:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                return
            if self.size < self.cap:
                self.chunks.append(chunk[: self.cap - self.size])
            self.size += len(chunk)

    def close(self) -> None:
        import asyncio

        if self.open:
            self.open = False
            asyncio.get_running_loop().remove_reader(self.fd)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")

    @property
    def truncated(self) -> bool:
        return self.size > self.cap


def _proc_stats() -> Iterator[tuple[int, list[bytes]]]:
    """``(pid, fields)`` of every visible process; ``fields[0]`` is field 3 of ``/proc/<pid>/stat`` (state), so
    ppid = 1, utime = 11, stime = 12, num_threads = 17, starttime = 19, rss = 21."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                yield int(entry), fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, cpu seconds) of every visible process."""
    return {pid: (int(st[1]), (int(st[11]) + int(st[12])) / _CLK_TCK) for pid, st in _proc_stats()}


def _descendants(root: int, table: dict[int, tuple[int, float]]) -> set[int]:
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier and pid not in found}
        found |= frontier
    return found


def _started_since(since_ticks: int) -> set[int]:
    """Processes started at or after ``since_ticks`` (clock ticks since boot) that no shell command owns.

    Spared: pid 1, the agent, the kernel, every reaper and everything under one (shell commands and the
    background jobs they leave running)."""
    table = _proc_table()
    spared = {1, os.getpid(), *_REAPERS}
    if _KERNEL is not None:
        spared.add(_KERNEL.pid)
    for reaper in _REAPERS:
        spared |= _descendants(reaper, table)
    # Without a pid namespace of its own (the process driver) the agent sees the host: only its descendants.
    mine = _descendants(os.getpid(), table) if _CONFIG.get("stats_scope") == "descendants" else set(table)
    return {pid for pid, st in _proc_stats() if pid in mine and pid not in spared and int(st[19]) >= since_ticks}


def _kill_started_since(since_ticks: int) -> int:
    """SIGKILL what a Python execution started (see :func:`_started_since`), until nothing is left."""
    killed: set[int] = set()
    for _ in range(100):
        victims = _started_since(since_ticks)
        if not victims:
            break
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed |= victims
        time.sleep(0.002)
    return len(killed)


def _kill_tree(reaper: int) -> None:
    """SIGKILL every descendant of ``reaper``: orphans re-parent to it, so a few passes catch them all."""
    for _ in range(100):
        victims = _descendants(reaper, _proc_table())
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)


def _reaper_main(argv: list[str], cwd: str, env: dict[str, str], out_w: int, err_w: int, st_w: int) -> None:
    """Body of the forked reaper: start bash, report its wait status on ``st_w``, reap until no child is left."""
    os.setsid()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    child = os.fork()
    if child == 0:
        try:
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(sig, signal.SIG_DFL)
            _limit_cpu()
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        except BaseException as exc:  # report and leave: never return into the agent's event loop
            with contextlib.suppress(OSError):
                os.write(2, f"{type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(127)
    # Keep only the status pipe: the agent's protocol pipes and other commands' pipes must not stay open here.
    os.dup2(st_w, 3)
    os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    os.closerange(0, 3)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            with contextlib.suppress(OSError):
                os.write(3, status.to_bytes(4, "little", signed=True))
                os.close(3)


def _spawn(req: dict[str, Any]) -> tuple[int, int, int, int]:
    """Fork a reaper that runs the command; returns (reaper pid, stdout fd, stderr fd, status fd)."""
    argv = [_CONFIG.get("shell", "/bin/bash"), "-c", req["cmd"]]
    cwd = req.get("cwd") or _CONFIG["workspace"]
    env = _child_env(req.get("env"))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    st_r, st_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _reaper_main(argv, cwd, env, out_w, err_w, st_w)
        finally:
            os._exit(0)
    for fd in (out_w, err_w, st_w):
        os.close(fd)
    _REAPERS.add(pid)
    return pid, out_r, err_r, st_r


def _reap_reaper(pid: int) -> None:
    """Collect a reaper's exit status whenever it ends (it lingers while background jobs run)."""
    import asyncio

    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        _REAPERS.discard(pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        _REAPERS.discard(pid)

    loop.add_reader(pidfd, on_exit)


async def _op_exec(req: dict[str, Any]) -> dict[str, Any]:
    """Run one command under its own reaper; bash's exit (not pipe EOF) ends the call, so background jobs
    that keep stdout open do not block it. A timeout SIGKILLs everything the command started."""
    import asyncio

    started = time.monotonic()
    loop = asyncio.get_running_loop()
    timeout = float(req.get("timeout") or 30.0)
    cap = int(req.get("max_output") or 1 << 20)
    try:
        reaper, out_fd, err_fd, st_fd = _spawn(req)
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    _EXECS[req["id"]] = reaper
    out = _Capture(out_fd, cap)
    err = _Capture(err_fd, cap)
    exited: asyncio.Future[bytes] = loop.create_future()

    def on_status() -> None:
        loop.remove_reader(st_fd)
        data = b""
        with contextlib.suppress(OSError):
            data = os.read(st_fd, 4)
        if not exited.done():
            exited.set_result(data)

    loop.add_reader(out.fd, out.on_readable)
    loop.add_reader(err.fd, err.on_readable)
    loop.add_reader(st_fd, on_status)
    timed_out = False
    try:
        try:
            raw = await asyncio.wait_for(asyncio.shield(exited), timeout)
        except asyncio.TimeoutError:
            timed_out = True
            _kill_tree(reaper)
            raw = await exited
    finally:
        _EXECS.pop(req["id"], None)
        os.close(st_fd)
        _reap_reaper(reaper)
    # status missing: the reaper itself was killed (with everything, or by the command)
    code = os.waitstatus_to_exitcode(int.from_bytes(raw, "little", signed=True)) if len(raw) == 4 else -9
    # What the command wrote before exiting is in the pipes: drain it, do not wait for EOF.
    for cap_ in (out, err):
        cap_.on_readable()
        cap_.close()
        os.close(cap_.fd)
    return {
        "ok": True,
        "exit_code": code,
        "stdout": out.text,
        "stderr": err.text,
        "timed_out": timed_out,
        "truncated": out.truncated or err.truncated,
        "duration_ms": int((time.monotonic() - started) * 1000),
    }


def _enforce_cpu() -> None:
    """Fallback without a cpu cgroup: RLIMIT_CPU on every sandbox process (but the agent, its reapers and the
    kernel), and SIGKILL for one past its budget (e.g. one that raced the limit)."""
    cpu = int(_CONFIG.get("cpu_seconds") or 0)
    if not cpu:
        return
    spared = {1, os.getpid(), *_REAPERS}
    if _KERNEL is not None:
        spared.add(_KERNEL.pid)
    for pid, (_, used) in _proc_table().items():
        if pid in spared:
            continue
        with contextlib.suppress(OSError):
            if used > cpu + 1:
                os.kill(pid, signal.SIGKILL)
                continue
            _soft, hard = resource.prlimit(pid, resource.RLIMIT_CPU)
            if hard == resource.RLIM_INFINITY or hard > cpu + 1:
                resource.prlimit(pid, resource.RLIMIT_CPU, (cpu, cpu + 1))


async def _cpu_watchdog(interval: float = 1.0) -> None:
    import asyncio

    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(Exception):
            _enforce_cpu()


def _op_stats() -> dict[str, Any]:
    """Usage of every process in the sandbox (pid namespace), or of the agent's descendants only."""
    procs = {
        pid: (int(st[1]), (int(st[11]) + int(st[12])) / _CLK_TCK, int(st[17]), int(st[21]) * _PAGE)
        for pid, st in _proc_stats()
    }
    if _CONFIG.get("stats_scope") == "descendants":
        keep = {os.getpid()}
        changed = True
        while changed:
            changed = False
            for pid, info in procs.items():
                if pid not in keep and info[0] in keep:
                    keep.add(pid)
                    changed = True
        procs = {pid: info for pid, info in procs.items() if pid in keep}
    return {
        "ok": True,
        "rss_bytes": sum(p[3] for p in procs.values()),
        "cpu_seconds": round(sum(p[1] for p in procs.values()), 3),
        "pids": len(procs),
        "threads": sum(p[2] for p in procs.values()),
    }


async def _handle(req: dict[str, Any]) -> None:
    op = req.get("op")
    try:
        if op == "exec":
            reply = await _op_exec(req)
        elif op == "ping":
            reply = {"ok": True, "kernel_pid": _KERNEL.pid if _KERNEL else None}
        elif op == "signal_kernel":
            if _KERNEL is not None and _KERNEL.poll() is None:
                _KERNEL.send_signal(int(req.get("sig", signal.SIGINT)))
            reply = {"ok": True}
        elif op == "restart_kernel":
            global _KERNEL_WANTED
            _KERNEL_WANTED = False
            await _stop_kernel()
            _KERNEL_WANTED = True
            reply = {"ok": True, "kernel_pid": await _start_kernel()}
        elif op == "kill_started_since":
            reply = {"ok": True, "killed": _kill_started_since(int(req["since_ticks"]))}
        elif op == "kill_execs":
            for pid in list(_EXECS.values()):
                _kill_tree(pid)
            reply = {"ok": True}
        elif op == "stats":
            reply = _op_stats()
        else:
            reply = {"ok": False, "error": f"unknown op {op!r}"}
    except Exception as exc:  # report, never die
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    reply["id"] = req.get("id")
    _send(reply)


def _prepare() -> int:
    """Set up fds, limits and cwd, and start the kernel; returns the protocol input fd."""
    global _OUT_FD
    # Keep the protocol pipes private: children get /dev/null as fds 0/1.
    in_fd = os.dup(0)
    _OUT_FD = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    _apply_rlimits(_CONFIG.get("rlimits") or {})
    with contextlib.suppress(OSError):
        os.chdir(_CONFIG["workspace"])
    _spawn_kernel()
    return in_fd


async def _main(in_fd: int) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=256 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(in_fd, "rb", 0))
    assert _KERNEL is not None
    _watch_kernel(_KERNEL)
    # Before any sandbox code can run: no ptrace, /proc/<agent>/mem or /proc/<agent>/fd for it.
    _prctl(PR_SET_DUMPABLE, 0)
    _send({"event": "ready", "kernel_pid": _KERNEL.pid, "agent_pid": os.getpid()})
    tasks: set[asyncio.Task[None]] = set()
    if _CONFIG.get("cpu_watchdog"):
        tasks.add(loop.create_task(_cpu_watchdog()))
    while True:
        line = await reader.readline()
        if not line:
            break
        try:
            req = json.loads(line)
        except ValueError:
            continue
        task = loop.create_task(_handle(req))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    # Host went away: take everything down.
    global _KERNEL_WANTED
    _KERNEL_WANTED = False
    for pid in list(_REAPERS):
        _kill_tree(pid)
    await _stop_kernel()


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as fh:
        _CONFIG.update(json.load(fh))
    _input_fd = _prepare()  # the kernel imports while asyncio loads
    import asyncio

    asyncio.run(_main(_input_fd))
