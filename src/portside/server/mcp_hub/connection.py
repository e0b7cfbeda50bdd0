"""One live client connection to an MCP server, owned by a background task.

The official ``mcp`` client (``mcp.Client``) is entered and exited inside one asyncio task (its
anyio task groups require that); request handlers call tools on it from their own tasks. The read
stream of the transport is wrapped so that its end (a stdio server that exited, a closed SSE
stream) is noticed at once: the connection then shows ``disconnected`` with the reason in
``last_error`` and stays so until someone asks to connect again.

A stdio server runs as a child process in its own session; its pid is found by an environment
marker (``PORTSIDE_MCP_HUB_CONNECTION``) and its stderr goes to a log file whose tail explains
crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import anyio
import httpx2
import mcp_types as types
import psutil
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcp import Client
from portside import __version__
from portside.server.clock import utcnow

log = logging.getLogger("portside.mcp_hub")

MARKER_ENV = "PORTSIDE_MCP_HUB_CONNECTION"
STDIO, STREAMABLE_HTTP, SSE = "stdio", "streamable_http", "sse"
TRANSPORTS = (STDIO, STREAMABLE_HTTP, SSE)
CONNECTED, CONNECTING, DISCONNECTED, ERROR = "connected", "connecting", "disconnected", "error"
_STDERR_TAIL = 2000
_MAX_PAGES = 50
_ERRORISH = re.compile(r"error|exception|traceback|fatal|panic|killed", re.IGNORECASE)


class ConnectFailed(Exception):
    """The server could not be reached or did not complete the MCP handshake."""


class NotConnected(Exception):
    """A call was made on a connection that is not (or no longer) up."""


@dataclass(frozen=True)
class Target:
    """Where and how to reach a server (secrets already decrypted)."""

    transport: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 30.0


def describe(exc: BaseException) -> str:
    """A one-line reason, unwrapping exception groups to their first leaf."""
    inner = getattr(exc, "exceptions", None)  # an exception group (3.11+ builtin, backport on 3.10)
    while isinstance(inner, tuple) and inner and isinstance(inner[0], BaseException):
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    if isinstance(exc, MCPError):
        return f"MCP error {exc.error.code}: {exc.error.message}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _WatchedReadStream:
    """Delegates to a transport's read stream and reports when it ends."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedReadStream:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        result: bool | None = await self._inner.__aexit__(exc_type, exc, tb)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@asynccontextmanager
async def _watched(transport: Any, on_end: Callable[[], None]) -> AsyncIterator[tuple[Any, Any]]:
    async with transport as (read_stream, write_stream):
        yield _WatchedReadStream(read_stream, on_end), write_stream


def _find_child(marker: str) -> int | None:
    """The pid of our direct child whose environment carries ``marker``."""
    try:
        children = psutil.Process().children(recursive=False)
    except psutil.Error:
        return None
    for child in children:
        try:
            if child.environ().get(MARKER_ENV) == marker:
                return int(child.pid)
        except (psutil.Error, OSError):
            continue
    return None


def _open_log(path: Path) -> TextIO:
    return open(path, "w", encoding="utf-8")


def _exited(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _tail(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _STDERR_TAIL))
            return fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


StateHook = Callable[["LiveConnection"], Awaitable[None]]


class LiveConnection:
    """The state and the client of one connected (or recently connected) server."""

    def __init__(
        self, name: str, target: Target, *, stderr_path: Path | None = None, on_state: StateHook | None = None
    ) -> None:
        self.name = name
        self.target = target
        self.stderr_path = stderr_path
        self._on_state = on_state
        self.status = DISCONNECTED
        self.pid: int | None = None
        self.connected_at: datetime | None = None
        self.last_error: str | None = None
        self.tools: list[types.Tool] = []
        self.resources: list[types.Resource] = []
        self.server_info: dict[str, Any] | None = None
        self.protocol_version: str | None = None
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def is_connected(self) -> bool:
        return self.status == CONNECTED and self._client is not None

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Connect (a no-op when connected); raises :class:`ConnectFailed` with the reason."""
        async with self._lock:
            if self.is_connected:
                return
            await self._halt()
            self._stop = asyncio.Event()
            self.status, self.last_error, self.pid = CONNECTING, None, None
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(ready), name=f"mcp-hub:{self.name}")
            try:
                await asyncio.wait_for(asyncio.shield(ready), self.target.timeout_seconds)
            except asyncio.TimeoutError:
                await self._halt(cancel=True)
                self.status = ERROR
                self.last_error = f"timed out after {self.target.timeout_seconds:g}s waiting for the MCP handshake"
                self._append_stderr()
                await self._notify()
                raise ConnectFailed(self.last_error) from None
            except ConnectFailed:
                await self._halt()
                raise

    async def disconnect(self) -> None:
        """Close the session (and stop a stdio server's process)."""
        async with self._lock:
            await self._halt()
            self.status = DISCONNECTED
            self.pid = None

    async def _halt(self, *, cancel: bool = False) -> None:
        task = self._task
        if task is None:
            return
        self._stop.set()
        if not cancel:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), 15.0)
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._task = None

    async def _notify(self) -> None:
        if self._on_state is None:
            return
        try:
            await self._on_state(self)
        except Exception:  # the hook records state; never let it break the connection
            log.exception("MCP hub state hook failed for %s", self.name)

    def _append_stderr(self, *, errors_only: bool = False) -> None:
        """Add the last line of the server's stderr to ``last_error`` (after a crash: only if it reads as one)."""
        line = _last_line(_tail(self.stderr_path))
        if not line or not self.last_error or line in self.last_error:
            return
        if errors_only and not _ERRORISH.search(line):
            return
        self.last_error = f"{self.last_error}; stderr: {line}"

    # ------------------------------------------------------------------ the owning task

    async def _run(self, ready: asyncio.Future[None]) -> None:
        lost = asyncio.Event()
        lost_reason: str | None = None
        failure: str | None = None
        errlog: TextIO | None = None
        marker = secrets.token_hex(8)
        try:
            async with AsyncExitStack() as stack:
                if self.target.transport == STDIO and self.stderr_path is not None:
                    self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
                    errlog = stack.enter_context(await asyncio.to_thread(_open_log, self.stderr_path))
                transport = await self._transport(stack, marker, errlog)
                client = Client(
                    _watched(transport, lost.set),
                    read_timeout_seconds=self.target.timeout_seconds,
                    client_info=types.Implementation(name="portside-mcp-hub", version=__version__),
                )
                await stack.enter_async_context(client)
                if self.target.transport == STDIO:
                    self.pid = await asyncio.to_thread(_find_child, marker)
                await self._list(client)
                self.protocol_version = client.protocol_version
                info = client.server_info
                self.server_info = info.model_dump(mode="json", exclude_none=True) if info else None
                self._client = client
                self.status, self.connected_at, self.last_error = CONNECTED, utcnow(), None
                ready.set_result(None)
                await self._notify()
                stop = asyncio.create_task(self._stop.wait())
                gone = asyncio.create_task(lost.wait())
                try:
                    await asyncio.wait({stop, gone}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop.cancel()
                    gone.cancel()
                self._client = None
                if lost.is_set() and not self._stop.is_set():
                    lost_reason = await self._lost_reason()
        except asyncio.CancelledError:
            failure = failure or "cancelled"
            raise
        except BaseException as exc:  # every failure becomes the connection's error
            failure = describe(exc)
        finally:
            self._client = None
            if not ready.done():
                self.status = ERROR
                self.last_error = failure or "the server closed the connection during the handshake"
                self._append_stderr()
                self.pid = None
                ready.set_exception(ConnectFailed(self.last_error))
                ready.exception()  # mark retrieved: connect() may already have timed out
            elif lost_reason is not None or (failure is not None and not self._stop.is_set()):
                self.status = DISCONNECTED
                self.last_error = lost_reason or f"connection lost: {failure}"
                self._append_stderr(errors_only=True)
                self.pid = None
                log.warning("MCP server %s disconnected: %s", self.name, self.last_error)
                await self._notify()
            else:
                self.status = DISCONNECTED
                self.pid = None

    async def _lost_reason(self) -> str:
        pid = self.pid
        if self.target.transport == STDIO:
            if pid is not None:
                for _ in range(20):
                    if _exited(pid):
                        return f"connection lost: the server process (pid {pid}) exited"
                    await asyncio.sleep(0.05)
            return "connection lost: the server closed its output"
        return "connection lost: the server closed the stream"

    async def _transport(self, stack: AsyncExitStack, marker: str, errlog: TextIO | None) -> Any:
        t = self.target
        if t.transport == STDIO:
            if not t.command:
                raise ConnectFailed("a stdio server needs a command")
            params = StdioServerParameters(
                command=t.command, args=list(t.args), env={**t.env, MARKER_ENV: marker}, cwd=t.cwd
            )
            return stdio_client(params, errlog=errlog) if errlog is not None else stdio_client(params)
        if not t.url:
            raise ConnectFailed(f"a {t.transport} server needs a url")
        if t.transport == SSE:
            return sse_client(t.url, headers=dict(t.headers), timeout=t.timeout_seconds)
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=dict(t.headers), timeout=httpx2.Timeout(t.timeout_seconds, read=300.0))
        )
        return streamable_http_client(t.url, http_client=http)

    async def _list(self, client: Client, *, fresh: bool = False) -> None:
        mode: Any = "refresh" if fresh else "use"
        caps = client.server_capabilities
        tools: list[types.Tool] = []
        if caps.tools is not None:
            cursor: str | None = None
            for _ in range(_MAX_PAGES):
                page = await client.list_tools(cursor=cursor, cache_mode=mode)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
        resources: list[types.Resource] = []
        if caps.resources is not None:
            cursor = None
            for _ in range(_MAX_PAGES):
                rpage = await client.list_resources(cursor=cursor, cache_mode=mode)
                resources.extend(rpage.resources)
                cursor = rpage.next_cursor
                if not cursor:
                    break
        self.tools, self.resources = tools, resources

    # ------------------------------------------------------------------ calls

    def _live_client(self) -> Client:
        client = self._client
        if client is None or self.status != CONNECTED:
            raise NotConnected(self.last_error or f"MCP server '{self.name}' is not connected")
        return client

    async def refresh(self) -> None:
        """List the server's tools and resources again."""
        await self._list(self._live_client(), fresh=True)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], read_timeout: float | None = None
    ) -> types.CallToolResult:
        """Call a tool; MCP-level failures raise :class:`MCPError`, a dead link :class:`NotConnected`."""
        client = self._live_client()
        return await client.call_tool(name, arguments, read_timeout_seconds=read_timeout or self.target.timeout_seconds)

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        return await self._live_client().read_resource(uri)

    def stderr_tail(self) -> str:
        return _tail(self.stderr_path)
