"""Host side of a running sandbox: the agent process, its JSON-lines RPC and the kernel client.

Both drivers share this: the bwrap driver wraps the agent command in bubblewrap, the process driver runs it
bare. One agent process per sandbox starts the kernel and runs shell commands, so no call spawns a sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import signal
import stat
import time
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.adapter import adapt
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.session import Session

from portside.server.errors import InvalidInput, Unavailable

from . import safefs
from .base import WORKSPACE_MOUNT, PythonResult, SandboxHandle, SandboxSpec, SandboxStats, ShellResult
from .limits import Cgroup
from .paths import workspace_relative

log = logging.getLogger(__name__)

AGENT_SOURCE = Path(__file__).with_name("_agent.py")
IPC_PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INTERRUPT_GRACE_S = 3.0
MAX_OUTPUT = 1 << 20
_CLK_TCK = os.sysconf("SC_CLK_TCK")
AGENT_LINE_LIMIT = 32 * 1024 * 1024
"""Longest agent reply line the host buffers. Replies carry at most 2 x MAX_OUTPUT of (JSON-escaped) output;
sandbox code can reach the agent's stdout through /proc/1/fd/1, so an endless line must not grow the server:
past this the sandbox is treated as gone and cleaned up."""
LOG_TAIL = 8192
"""Bytes of the agent's stderr kept in memory for start-failure diagnostics (nothing goes to the host disk)."""


def boot_ticks() -> int:
    """Now, in the clock of ``/proc/<pid>/stat`` start times (clock ticks since boot), shared with every sandbox."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * _CLK_TCK)


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks are coloured)."""
    return _ANSI.sub("", text)


def new_runtime_dir(root: Path) -> Path:
    """A fresh private directory for one sandbox's connection file and ipc sockets (short path: AF_UNIX).

    ``root`` must be a real directory owned by this user and closed to others (e.g. not a ``/tmp`` path that
    another user created first), or someone else could swap the sandbox's ipc sockets.
    """
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise Unavailable(
            f"sandbox runtime dir {root} must be a directory owned by uid {os.geteuid()} with mode 0700",
            code="sandbox_start_failed",
        )
    path = root / secrets.token_hex(5)
    path.mkdir(mode=0o700)
    (path / "owner").write_text(str(os.getpid()))
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_runtime_dirs(root: Path, min_age_s: float = 60.0) -> list[str]:
    """Remove runtime dirs left by server processes that died without stopping their sandboxes.

    A dir is stale when the pid in its ``owner`` file is gone (or it has none) and it is older than
    ``min_age_s``. Returns the names removed (their cgroups, if any, carry the same names).
    """
    removed: list[str] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        try:
            if not entry.is_dir() or entry.is_symlink() or now - entry.stat().st_mtime < min_age_s:
                continue
            owner = int((entry / "owner").read_text())
        except (OSError, ValueError):
            owner = 0
        if owner and _pid_alive(owner):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return removed


def real_path(path: Path) -> Path:
    """``path`` with symlinks resolved (non-strict)."""
    return Path(os.path.realpath(path))


def connection_info(ipc_prefix: str, key: str) -> dict[str, Any]:
    return {"transport": "ipc", "ip": ipc_prefix, "key": key, "signature_scheme": "hmac-sha256", **IPC_PORTS}


class LeanSession(Session):
    """A Session that leaves header dates as strings.

    jupyter_client parses every ISO date of every header with dateutil (~60 us a message, five messages an
    execution); nothing here reads them. Everything else (the HMAC signature and replay checks, unpacking,
    protocol adaptation) is the stock behaviour of ``Session.deserialize``.
    """

    def deserialize(self, msg_list: list[bytes] | list[Any], content: bool = True, copy: bool = True) -> dict[str, Any]:
        if not copy or len(msg_list) < 5:
            return super().deserialize(msg_list, content=content, copy=copy)
        if self.auth is not None:
            signature = msg_list[0]
            if not signature:
                raise ValueError("Unsigned Message")
            if signature in self.digest_history:
                raise ValueError(f"Duplicate Signature: {signature!r}")
            if content:
                self._add_digest(signature)
            if not hmac.compare_digest(signature, self.sign(msg_list[1:5])):
                raise ValueError(f"Invalid Signature: {signature!r}")
        header = self.unpack(msg_list[1])
        return adapt(
            {
                "header": header,
                "msg_id": header["msg_id"],
                "msg_type": header["msg_type"],
                "parent_header": self.unpack(msg_list[2]),
                "metadata": self.unpack(msg_list[3]),
                "content": self.unpack(msg_list[4]) if content else msg_list[4],
                "buffers": [memoryview(b) for b in msg_list[5:]],
            }
        )


def check_env(env: dict[str, str] | None) -> dict[str, str]:
    """Validate caller-supplied environment variables."""
    out: dict[str, str] = {}
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name) or "\x00" in str(value):
            raise InvalidInput(f"invalid environment variable {name!r}", code="invalid_env")
        out[name] = str(value)
    return out


class AgentSandbox(SandboxHandle):
    """A sandbox run by one agent process (bwrap-wrapped or bare)."""

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        argv: list[str],
        runtime_dir: Path,
        inside_workspace: str,
        host_ipc_prefix: str,
        key: str,
        cgroup: Cgroup | None = None,
        process_env: dict[str, str] | None = None,
        graceful_stop: bool = False,
        pass_fds: tuple[int, ...] = (),
        info_fd: int | None = None,
        inside_runtime: str | None = None,
        inside_ipc_prefix: str | None = None,
    ) -> None:
        self.spec = spec
        self._argv = argv
        self._runtime_dir = runtime_dir
        self._inside_workspace = inside_workspace
        self._host_ipc_prefix = host_ipc_prefix
        self._key = key
        self._cgroup = cgroup
        self._process_env = process_env
        self._graceful_stop = graceful_stop
        self._pass_fds = pass_fds
        self._info_fd = info_fd
        self._inside_runtime = inside_runtime
        self._inside_ipc_prefix = inside_ipc_prefix
        self._runtime_fd: int | None = None
        self._stderr_tail = bytearray()
        self._stderr_task: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._kernel_dead = asyncio.Event()
        self._kc: AsyncKernelClient | None = None
        self._py_lock = asyncio.Lock()
        self._stopped = False
        self._started_at = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------------------------
    async def launch(self, timeout: float = 30.0) -> None:
        """Start the agent and wait until the kernel answers; cleans up on failure."""
        try:
            await asyncio.wait_for(self._launch(), timeout)
        except BaseException as exc:
            kernel_log = self._kernel_log_tail()
            await self.stop()
            if self._stderr_task is not None:  # the agent's last words, up to EOF
                with contextlib.suppress(asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(asyncio.shield(self._stderr_task), 2)
            detail = (self._stderr_tail.decode("utf-8", "replace") + kernel_log).strip() or "no diagnostics"
            if isinstance(exc, asyncio.TimeoutError):
                raise Unavailable(
                    f"sandbox did not start within {timeout:.0f}s: {detail}", code="sandbox_start_failed"
                ) from exc
            if isinstance(exc, Exception):
                raise Unavailable(f"sandbox failed to start: {exc}; {detail}", code="sandbox_start_failed") from exc
            raise

    async def _launch(self) -> None:
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        spawn = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                # A pipe, not a file: sandbox code that reaches an inherited stderr cannot fill the host disk.
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env=self._process_env,
                limit=AGENT_LINE_LIMIT,
                pass_fds=self._pass_fds,
            )
        )
        try:
            # Shielded: a cancelled start must still learn the pid, or stop() could not kill the sandbox.
            self._proc = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                self._proc = await spawn
            raise
        finally:
            for fd in self._pass_fds:
                os.close(fd)
            self._pass_fds = ()
        self._started_at = time.monotonic()
        self._reader = loop.create_task(self._read_loop())
        self._stderr_task = loop.create_task(self._read_stderr())
        await self._ready
        if self._inside_runtime is not None:
            await self._open_inside_runtime()
        await self._connect_kernel()

    async def _open_inside_runtime(self) -> None:
        """Reach the sandbox's private runtime tmpfs from the host through its pid 1's root.

        The ipc sockets live on a size-limited tmpfs inside the sandbox (nothing the sandbox writes there
        touches the host disk). bwrap reports the host pid of the sandbox's pid 1 on its info fd; an
        ``O_PATH`` descriptor of ``/proc/<pid>/root/<runtime>`` pins that mount, and the kernel client uses
        ``/proc/self/fd/<fd>/k-N`` paths, short enough for AF_UNIX and immune to pid reuse.
        """
        assert self._info_fd is not None and self._inside_runtime is not None
        fd, self._info_fd = self._info_fd, None
        try:
            os.set_blocking(fd, False)
            raw = os.read(fd, 65536)  # written by bwrap right after it cloned pid 1, long before "ready"
            found = re.search(rb'"child-pid"\s*:\s*(\d+)', raw)
            if found is None:
                raise ValueError(raw[:200].decode("utf-8", "replace"))
            pid = int(found.group(1))
        except (OSError, ValueError) as exc:
            raise Unavailable(f"bwrap reported no sandbox pid: {exc}", code="sandbox_start_failed") from exc
        finally:
            os.close(fd)
        path = f"/proc/{pid}/root{self._inside_runtime}"
        self._runtime_fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if not self.alive:  # pid reuse guard: the sandbox must still be the one that reported the pid
            raise Unavailable("sandbox exited during start", code="sandbox_start_failed")
        prefix = self._inside_ipc_prefix or f"{self._inside_runtime}/k"
        rel = prefix.removeprefix(self._inside_runtime).lstrip("/")
        self._host_ipc_prefix = f"/proc/self/fd/{self._runtime_fd}/{rel}"

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        stream = self._proc.stderr
        with contextlib.suppress(Exception):
            while chunk := await stream.read(65536):
                self._stderr_tail += chunk
                del self._stderr_tail[:-LOG_TAIL]

    async def _connect_kernel(self) -> None:
        # ipc sockets appear when the kernel binds; connecting earlier costs a 100 ms zmq reconnect.
        sockets = [Path(f"{self._host_ipc_prefix}-{p}") for p in IPC_PORTS.values() if p != 3]
        while not all(s.exists() for s in sockets):
            if self._kernel_dead.is_set() or not self.alive:
                raise Unavailable("kernel exited during start", code="sandbox_start_failed")
            await asyncio.sleep(0.005)
        kc = AsyncKernelClient(session=LeanSession())
        kc.load_connection_info(connection_info(self._host_ipc_prefix, self._key))  # type: ignore[arg-type]
        kc.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        self._kc = kc
        # kernel_info until the shell answers and iopub (slow joiner) delivers status messages. Replies may
        # come late under load, so any of our requests counts.
        sent: set[str] = set()
        while True:
            if self._kernel_dead.is_set() or not self.alive:
                raise Unavailable("kernel exited during start", code="sandbox_start_failed")
            sent.add(kc.kernel_info())
            try:
                reply = await kc.get_shell_msg(timeout=0.5)
            except Empty:
                continue
            if reply["parent_header"].get("msg_id") not in sent:
                continue
            try:
                while True:
                    msg = await kc.get_iopub_msg(timeout=0.1)
                    if msg["parent_header"].get("msg_id") in sent:
                        break
            except Empty:
                continue
            break
        with contextlib.suppress(Empty):
            while True:  # drop what already arrived; later strays are filtered by parent msg_id anyway
                await kc.get_iopub_msg(timeout=0)
        self._send_identity()

    def _send_identity(self) -> None:
        """Queue a silent cell that puts the sandbox identity into the kernel's environment.

        Not awaited: the kernel runs requests in order, so it takes effect before any later execution, and
        its replies are skipped by msg_id. Being a fresh kernel's first cell, it also takes the first-cell
        cost (15-35 ms) off the caller's first execution.
        """
        if self._kc is not None:
            code = f"import os as _o; _o.environ.update({self._identity_env()!r}); del _o"
            self._kc.execute(code, silent=True, store_history=False, allow_stdin=False, stop_on_error=False)

    async def _read_loop(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        try:
            while True:
                line = await stdout.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if "event" in msg:
                    self._on_event(msg)
                    continue
                fut = self._pending.pop(msg.get("id", -1), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        finally:
            err = Unavailable("sandbox agent exited", code="sandbox_gone")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(err)
            self._pending.clear()
            self._kernel_dead.set()
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(err)
            if not self._stopped:  # the agent died (OOM kill, killed from inside): clean up now
                log.info("sandbox %s: agent exited; cleaning up", self.sandbox_id)
                self._begin_stop()

    def _on_event(self, msg: dict[str, Any]) -> None:
        if msg["event"] == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(msg)
        elif msg["event"] == "kernel_exit":
            log.info("sandbox %s: kernel exited (%s)", self.sandbox_id, msg.get("code"))
            self._kernel_dead.set()

    async def _call(self, op: str, rpc_timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdin is None or not self.alive:
            raise Unavailable("sandbox is not running", code="sandbox_gone")
        self._next_id += 1
        req_id = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        proc.stdin.write(json.dumps({"id": req_id, "op": op, **params}).encode() + b"\n")
        try:
            await proc.stdin.drain()
            return await asyncio.wait_for(fut, rpc_timeout)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise Unavailable("sandbox is not running", code="sandbox_gone") from exc
        except asyncio.TimeoutError as exc:
            raise Unavailable(f"sandbox agent did not answer {op!r}", code="sandbox_unresponsive") from exc
        finally:
            self._pending.pop(req_id, None)

    @property
    def runtime_dir(self) -> Path:
        """The host runtime dir (removed on stop)."""
        return self._runtime_dir

    @property
    def cgroup(self) -> Cgroup | None:
        """The sandbox's cgroup, if the host lets us make one."""
        return self._cgroup

    @property
    def alive(self) -> bool:
        return not self._stopped and self._proc is not None and self._proc.returncode is None

    async def stop(self) -> None:
        """Kill every process, remove the cgroup and the runtime dir. Idempotent; concurrent calls all wait."""
        await asyncio.shield(self._begin_stop())

    def _begin_stop(self) -> asyncio.Task[None]:
        self._stopped = True
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self._stop())
        return self._stop_task

    async def _stop(self) -> None:
        self._stopped = True
        if not self._py_lock.locked():  # else the running execution closes them (within 0.25 s)
            self._close_kernel_client()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if self._graceful_stop and proc.stdin is not None:
                # No pid namespace or cgroup to sweep (process driver): let the agent reap its children.
                proc.stdin.close()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), 3)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        current = asyncio.current_task()
        for task in (self._reader, self._stderr_task):
            if task is not None and task is not current:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._cgroup is not None:
            await asyncio.to_thread(self._cgroup.remove)
        for fd in (self._runtime_fd, self._info_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._runtime_fd = self._info_fd = None
        await asyncio.to_thread(shutil.rmtree, self._runtime_dir, True)

    def _close_kernel_client(self) -> None:
        if self._kc is not None:
            self._kc.stop_channels()
            self._kc = None

    def _kernel_log_tail(self) -> str:
        if self._runtime_fd is not None:
            path = f"/proc/self/fd/{self._runtime_fd}/kernel.log"
        elif self._inside_runtime is None:
            path = str(self._runtime_dir / "kernel.log")
        else:
            return ""
        try:
            with open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 2000))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- python --------------------------------------------------------------------------------------
    async def _restart_kernel(self) -> None:
        if self._kc is not None:
            self._kc.stop_channels()
            self._kc = None
        self._kernel_dead.clear()
        # The agent removes the old ipc sockets before it starts the new kernel.
        await self._call("restart_kernel", rpc_timeout=15)
        await asyncio.wait_for(self._connect_kernel(), 30)

    async def exec_python(self, code: str, timeout: float = 30.0) -> PythonResult:
        async with self._py_lock:
            if not self.alive:
                raise Unavailable("sandbox is not running", code="sandbox_gone")
            try:
                if self._kernel_dead.is_set() or self._kc is None:
                    await self._restart_kernel()
                return await self._exec_python(code, timeout)
            finally:
                if self._stopped:
                    self._close_kernel_client()

    async def _exec_python(self, code: str, timeout: float) -> PythonResult:
        kc = self._kc
        assert kc is not None
        started = time.monotonic()
        started_ticks = boot_ticks()
        msg_id = kc.execute(code, allow_stdin=False, stop_on_error=True)
        stdout: list[str] = []
        stderr: list[str] = []
        displays: list[dict[str, Any]] = []
        data: dict[str, Any] = {}
        result_text: str | None = None
        count: int | None = None
        ename = evalue = None
        traceback = ""
        timed_out = False
        truncated = False
        captured = 0
        note = ""
        deadline = started + timeout
        idle = False
        while not idle:
            if self._stopped:
                raise Unavailable("the sandbox was stopped during the execution", code="sandbox_gone")
            if self._kernel_dead.is_set():
                note = "the kernel died (out of memory?) and was restarted; Python state was lost"
                await self._restart_kernel()
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if not timed_out:
                    timed_out = True
                    await self._signal_kernel(signal.SIGINT)
                    await self._kill_started_since(started_ticks)
                    deadline = time.monotonic() + INTERRUPT_GRACE_S
                    continue
                note = "the kernel did not stop after an interrupt and was restarted; Python state was lost"
                await self._restart_kernel()
                break
            try:
                msg = await kc.get_iopub_msg(timeout=min(remaining, 0.25))
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            content = msg["content"]
            if kind == "stream":
                text = str(content.get("text", ""))
                if captured + len(text) > MAX_OUTPUT:
                    text = text[: max(0, MAX_OUTPUT - captured)]
                    truncated = True
                captured += len(text)
                (stdout if content.get("name") == "stdout" else stderr).append(text)
            elif kind in ("execute_result", "display_data"):
                bundle = dict(content.get("data") or {})
                displays.append(bundle)
                data = bundle
                if kind == "execute_result":
                    result_text = bundle.get("text/plain")
                    count = content.get("execution_count")
            elif kind == "error":
                ename, evalue = content.get("ename"), content.get("evalue")
                traceback = strip_ansi("\n".join(content.get("traceback") or []))
            elif kind == "execute_input":
                count = content.get("execution_count", count)
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
        if idle and self._kc is kc:
            with contextlib.suppress(Empty):
                while True:  # consume the matching execute_reply so the shell queue stays empty
                    reply = await kc.get_shell_msg(timeout=1.0)
                    if reply["parent_header"].get("msg_id") == msg_id:
                        count = reply["content"].get("execution_count", count)
                        break
        errors: list[str] = []
        if stderr:
            errors.append("".join(stderr))
        if timed_out:
            errors.append(f"TimeoutError: execution exceeded {timeout:g}s and was interrupted")
            ename, evalue = "TimeoutError", f"execution exceeded {timeout:g}s"
        elif traceback:
            errors.append(traceback)
        if note:
            errors.append(note)
            ename = ename or "KernelDied"
            evalue = evalue or note
        failed = timed_out or bool(note) or ename is not None
        images = [str(d["image/png"]) for d in displays if "image/png" in d]
        return PythonResult(
            success=not failed,
            output="".join(stdout),
            error="\n".join(e.rstrip("\n") for e in errors) or None,
            stderr="".join(stderr),
            data=data,
            displays=displays,
            images=images,
            result=result_text,
            execution_count=count,
            ename=ename,
            evalue=evalue,
            timed_out=timed_out,
            truncated=truncated,
            execution_time_ms=int((time.monotonic() - started) * 1000),
        )

    async def _kill_started_since(self, since_ticks: int) -> None:
        """End every process the timed-out execution started (shell commands' trees are not touched)."""
        with contextlib.suppress(Unavailable):
            await self._call("kill_started_since", since_ticks=since_ticks)

    async def _signal_kernel(self, sig: int) -> None:
        with contextlib.suppress(Unavailable):
            await self._call("signal_kernel", sig=int(sig))

    # -- shell ---------------------------------------------------------------------------------------
    def _inside_cwd(self, cwd: str | None) -> str:
        if cwd is None or cwd.strip() in ("", ".", self._inside_workspace):
            return self._inside_workspace
        rel = workspace_relative(cwd)
        # Checked through directory fds without following links (the sandbox may swap any of them).
        if not safefs.is_dir(self.spec.workspace, rel):
            raise InvalidInput(f"cwd {cwd!r} is not a directory in the workspace", code="invalid_path")
        return f"{self._inside_workspace}/{rel}" if rel else self._inside_workspace

    async def exec_shell(
        self,
        command: str,
        cwd: str | None = None,
        timeout: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> ShellResult:
        if "\x00" in command:
            raise InvalidInput("command contains a NUL byte", code="validation_error")
        inside = self._inside_cwd(cwd)
        started = time.monotonic()
        reply = await self._call(
            "exec",
            rpc_timeout=timeout + 15,
            cmd=command,
            cwd=inside,
            env={**self._identity_env(), **check_env(env)},
            timeout=timeout,
            max_output=MAX_OUTPUT,
        )
        if not reply.get("ok"):
            return ShellResult(
                exit_code=127,
                stderr=str(reply.get("error", "exec failed")),
                success=False,
                execution_time_ms=int((time.monotonic() - started) * 1000),
            )
        code = int(reply["exit_code"])
        timed_out = bool(reply.get("timed_out"))
        return ShellResult(
            exit_code=code,
            stdout=reply.get("stdout", ""),
            stderr=reply.get("stderr", ""),
            success=code == 0 and not timed_out,
            timed_out=timed_out,
            truncated=bool(reply.get("truncated")),
            execution_time_ms=int((time.monotonic() - started) * 1000),
        )

    def _identity_env(self) -> dict[str, str]:
        env = {"PORTSIDE_SANDBOX_ID": self.sandbox_id}
        if self._inside_workspace != WORKSPACE_MOUNT:
            env["PORTSIDE_WORKSPACE"] = self._inside_workspace
        return env

    async def adopt(self, sandbox_id: str, workspace: Path) -> None:
        old = self.spec.workspace
        await super().adopt(sandbox_id, real_path(workspace))
        if self._inside_workspace == str(old):  # unisolated: the inside path is the host path
            self._inside_workspace = str(self.spec.workspace)
        # No lock, no wait: queued ahead of any execution; a kernel (re)connecting later sends it itself.
        self._send_identity()

    # -- control -------------------------------------------------------------------------------------
    async def interrupt(self) -> None:
        if not self.alive:
            return
        await self._signal_kernel(signal.SIGINT)
        with contextlib.suppress(Unavailable):
            await self._call("kill_execs")

    async def stats(self) -> SandboxStats:
        uptime = time.monotonic() - self._started_at
        if not self.alive:
            return SandboxStats(alive=False, kernel_alive=False, uptime_s=uptime)
        reply = await self._call("stats")
        return SandboxStats(
            alive=self.alive,
            kernel_alive=not self._kernel_dead.is_set(),
            memory_bytes=int(reply.get("rss_bytes", 0)),
            cpu_seconds=float(reply.get("cpu_seconds", 0.0)),
            processes=int(reply.get("pids", 0)),
            threads=int(reply.get("threads", 0)),
            uptime_s=uptime,
            cgroup_memory_bytes=self._cgroup.memory_usage() if self._cgroup else None,
            cgroup_version=self._cgroup.version if self._cgroup else None,
        )
