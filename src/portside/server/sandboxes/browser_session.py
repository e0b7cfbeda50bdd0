"""The server's side of a sandbox's browser agent: start it inside the sandbox, talk to it, hang up.

The agent (``_browser_agent.py``) is started detached (``setsid``) through the sandbox's own exec agent, so it
shares the sandbox's namespaces, cgroup, rlimits and workspace. The server listens on a unix socket in
``<workspace>/.browser/`` (bound through a directory fd opened with ``O_NOFOLLOW``, unlinked once the agent is
connected) and the agent connects out with a one-time token: the server never connects to, or reads or
writes through, a path the sandbox could have swapped for a link. Requests and replies are JSON lines.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import os
import secrets
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

from portside.server.errors import DomainError, InvalidInput, Unavailable
from portside.server.sandboxes import files
from portside.server.sandboxes.browser_egress import EgressPolicy, EgressProxy
from portside.server.sandboxes.drivers.base import SandboxHandle

AGENT_SOURCE = Path(__file__).with_name("_browser_agent.py")
STATE_DIR = ".browser"
"""Workspace directory of the browser's own files: agent log, traces (sockets only while starting)."""
CHROMIUM_CANDIDATES = (
    "/usr/lib/chromium/chromium",  # Debian's binary; /usr/bin/chromium is a wrapper reading /etc/chromium.d
    "/usr/bin/chromium",
    "/usr/lib/chromium-browser/chromium-browser",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
)
CHROMIUM_ARGS = (
    # The sandbox is the isolation: Chromium's own sandbox needs user namespaces or a setuid helper,
    # neither of which exists inside it.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disk-cache-size=1",
)
AGENT_HOME = "/tmp/.portside-browser"
WATCH_INTERVAL_S = 2.0
_BOOT = (
    "import base64,sys;exec(compile(base64.b64decode(sys.argv[1]),'portside-browser-agent','exec'),"
    "{'__name__':'__main__'})"
)


class BrowserUnavailable(Unavailable):
    """No Chromium on this server, or the browser agent could not start (503)."""

    code = "browser_unavailable"


def find_chromium() -> str | None:
    """The Chromium executable to use, if one is installed."""
    return next((path for path in CHROMIUM_CANDIDATES if os.access(path, os.X_OK)), None)


def _boot_arg() -> str:
    return base64.b64encode(AGENT_SOURCE.read_bytes()).decode()


class AgentSession:
    """The server's connection to one sandbox's browser agent."""

    def __init__(
        self,
        handle: SandboxHandle,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        agent_pid: int | None,
        proxy: EgressProxy | None,
    ) -> None:
        self.handle = handle
        self.reader = reader
        self.writer = writer
        self.agent_pid = agent_pid
        self.proxy = proxy
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._read())
        self._watch_task = asyncio.get_running_loop().create_task(self._watch())

    @property
    def alive(self) -> bool:
        return not self._closed and not self._task.done() and self.handle.alive

    async def _read(self) -> None:
        try:
            while line := await self.reader.readline():
                with contextlib.suppress(ValueError):
                    msg = json.loads(line)
                    fut = self._pending.pop(int(msg.get("id", -1)), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except (OSError, ValueError):
            pass
        finally:
            err = BrowserUnavailable("the browser agent exited", code="browser_gone")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(err)
            self._pending.clear()

    async def _watch(self) -> None:
        """Hang up once the sandbox runtime is gone (the process driver has no pid namespace to sweep)."""
        while not self._closed:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if not self.handle.alive:
                await self.close()
                return

    async def call(self, op: str, rpc_timeout: float, **params: Any) -> dict[str, Any]:
        if not self.alive:
            raise BrowserUnavailable("the browser agent is not running", code="browser_gone")
        self._next += 1
        req_id = self._next
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            self.writer.write(json.dumps({"id": req_id, "op": op, **params}).encode() + b"\n")
            await self.writer.drain()
            return await asyncio.wait_for(fut, rpc_timeout)
        except (OSError, ConnectionError) as exc:
            raise BrowserUnavailable("the browser agent is not running", code="browser_gone") from exc
        except asyncio.TimeoutError as exc:
            raise BrowserUnavailable(f"the browser agent did not answer {op!r}", code="browser_unresponsive") from exc
        finally:
            self._pending.pop(req_id, None)

    async def close(self) -> None:
        """Hang up: the agent then closes Chromium and kills its process tree."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.writer.close()
        for task in (self._task, self._watch_task):
            if task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.proxy is not None:
            await self.proxy.close()


def open_state_dir(workspace: Path) -> int:
    """A directory fd of ``<workspace>/.browser``, created if needed and never through a symlink."""
    ws_fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(STATE_DIR, 0o755, dir_fd=ws_fd)
        try:
            return os.open(STATE_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=ws_fd)
        except OSError as exc:
            raise InvalidInput(
                f"the workspace entry {STATE_DIR!r} must be a directory (it is reserved for the browser)",
                code="invalid_path",
                details={"path": STATE_DIR},
            ) from exc
    finally:
        os.close(ws_fd)


def _unlink_at(dir_fd: int, name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


async def start_agent(
    handle: SandboxHandle, *, executable: str, egress: list[str], start_timeout: float = 20.0
) -> AgentSession:
    """Start the browser agent inside ``handle``'s sandbox and return once it has connected."""
    workspace = Path(handle.workspace)
    dir_fd = await asyncio.to_thread(open_state_dir, workspace)
    token = secrets.token_hex(12)
    name = f"h-{secrets.token_hex(6)}.sock"
    hello: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]]
    hello = asyncio.get_running_loop().create_future()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            msg = json.loads(await asyncio.wait_for(reader.readline(), 10))
        except (asyncio.TimeoutError, ValueError, OSError):
            writer.close()
            return
        if hello.done() or not hmac.compare_digest(str(msg.get("token")), token):
            writer.close()
            return
        hello.set_result((reader, writer, msg))

    proxy: EgressProxy | None = None
    server: asyncio.AbstractServer | None = None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Bind through the directory fd: short path, and no symlink in the workspace is followed.
            sock.bind(f"/proc/self/fd/{dir_fd}/{name}")
            sock.listen(4)
        except OSError:
            sock.close()
            raise
        server = await asyncio.start_unix_server(on_connect, sock=sock, limit=256 * 1024 * 1024)
        config: dict[str, Any] = {
            "socket": f"{STATE_DIR}/{name}",
            "token": token,
            "executable": executable,
            "args": list(CHROMIUM_ARGS),
            "env": {"HOME": AGENT_HOME, "XDG_CONFIG_HOME": f"{AGENT_HOME}/config",
                    "XDG_CACHE_HOME": f"{AGENT_HOME}/cache"},
        }  # fmt: skip
        policy = EgressPolicy(egress)
        if policy:
            proxy_name = f"p-{secrets.token_hex(6)}.sock"
            proxy = EgressProxy(policy)
            await proxy.start(f"/proc/self/fd/{dir_fd}/{proxy_name}")
            config["proxy_socket"] = f"{STATE_DIR}/{proxy_name}"
        command = (
            f"setsid -f {shlex.quote(sys.executable)} -s -c {shlex.quote(_BOOT)} {_boot_arg()} "
            f"> {STATE_DIR}/agent.log 2>&1 < /dev/null"
        )
        res = await handle.exec_shell(command, timeout=20, env={"PORTSIDE_BROWSER_AGENT": json.dumps(config)})
        if res.exit_code != 0:
            raise BrowserUnavailable(f"could not start the browser agent: {res.stderr.strip()[:2000]}")
        reader, writer, msg = await _await_hello(hello, workspace, start_timeout)
    except BaseException:
        if proxy is not None:
            await proxy.close()
        raise
    finally:
        if server is not None:
            server.close()
        _unlink_at(dir_fd, name)
        os.close(dir_fd)
    pid = msg.get("pid")
    return AgentSession(handle, reader, writer, int(pid) if isinstance(pid, int) else None, proxy)


async def _await_hello(
    hello: asyncio.Future[Any], workspace: Path, start_timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
    deadline = time.monotonic() + start_timeout
    while True:
        try:
            result: tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]] = await asyncio.wait_for(
                asyncio.shield(hello), 0.25
            )
            return result
        except asyncio.TimeoutError:
            pass
        tail = await asyncio.to_thread(_log_tail, workspace)
        if "Traceback" in tail or time.monotonic() > deadline:
            hello.cancel()
            raise BrowserUnavailable(
                "the browser agent did not start" + (f": {tail}" if tail else ""),
                details={"log": f"{STATE_DIR}/agent.log"},
            )


def _log_tail(workspace: Path) -> str:
    try:
        data = files.read_bytes(workspace, f"{STATE_DIR}/agent.log", 1 << 20)
    except (DomainError, OSError):
        return ""
    return data[-2000:].decode("utf-8", "replace").strip()
