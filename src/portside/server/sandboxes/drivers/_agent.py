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


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _spawn(req: dict[str, Any]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [_CONFIG.get("shell", "/bin/bash"), "-c", req["cmd"]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=req.get("cwd") or _CONFIG["workspace"],
        env=_child_env(req.get("env")),
        start_new_session=True,
        preexec_fn=_limit_cpu,
    )


async def _op_exec(req: dict[str, Any]) -> dict[str, Any]:
    """Run one command in its own session; its exit (not pipe EOF) ends the call, so background jobs
    that keep stdout open do not block it. Timeouts SIGKILL the whole process group."""
    import asyncio

    started = time.monotonic()
    loop = asyncio.get_running_loop()
    timeout = float(req.get("timeout") or 30.0)
    cap = int(req.get("max_output") or 1 << 20)
    try:
        proc = _spawn(req)
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    assert proc.stdout is not None and proc.stderr is not None
    _EXECS[req["id"]] = proc.pid
    out = _Capture(proc.stdout.fileno(), cap)
    err = _Capture(proc.stderr.fileno(), cap)
    exited = loop.create_future()
    pidfd = os.pidfd_open(proc.pid)

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(out.fd, out.on_readable)
    loop.add_reader(err.fd, err.on_readable)
    loop.add_reader(pidfd, on_exit)
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(exited), timeout)
    except asyncio.TimeoutError:
        timed_out = True
        _killpg(proc.pid)
        await exited
    finally:
        _EXECS.pop(req["id"], None)
        loop.remove_reader(pidfd)
        os.close(pidfd)
    code = proc.wait()
    # What the command wrote before exiting is in the pipes: drain it, do not wait for EOF.
    for cap_ in (out, err):
        cap_.on_readable()
        cap_.close()
    proc.stdout.close()
    proc.stderr.close()
    return {
        "ok": True,
        "exit_code": code,
        "stdout": out.text,
        "stderr": err.text,
        "timed_out": timed_out,
        "truncated": out.truncated or err.truncated,
        "duration_ms": int((time.monotonic() - started) * 1000),
    }


def _op_stats() -> dict[str, Any]:
    """Usage of every process in the sandbox (pid namespace), or of the agent's descendants only."""
    procs: dict[int, tuple[int, float, int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # stat[0] is field 3 (state): ppid=1, utime=11, stime=12, num_threads=17, rss=21
        cpu = (int(stat[11]) + int(stat[12])) / _CLK_TCK
        procs[int(entry)] = (int(stat[1]), cpu, int(stat[17]), int(stat[21]) * _PAGE)
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
        elif op == "kill_execs":
            for pid in list(_EXECS.values()):
                _killpg(pid)
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
    _send({"event": "ready", "kernel_pid": _KERNEL.pid, "agent_pid": os.getpid()})
    tasks: set[asyncio.Task[None]] = set()
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
    for pid in list(_EXECS.values()):
        _killpg(pid)
    await _stop_kernel()


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as fh:
        _CONFIG.update(json.load(fh))
    _input_fd = _prepare()  # the kernel imports while asyncio loads
    import asyncio

    asyncio.run(_main(_input_fd))
