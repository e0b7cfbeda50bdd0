"""The MCP hub service: register servers, connect to them, list their tools and resources, call tools.

Registrations live in the store (``mcp_servers``; ``env`` and ``headers`` encrypted). Connections
live in this process: every replica holds its own. A server whose wanted state is ``connected`` is
reconnected when the server starts, and connected on first use by a replica that never tried it.
A server that dropped (a crashed stdio process) stays ``disconnected`` with its error until someone
connects it again. Every tool call leaves one row in ``mcp_tool_calls``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INVALID_PARAMS, METHOD_NOT_FOUND, REQUEST_TIMEOUT
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portside.server.auth import Principal
from portside.server.clock import utcnow
from portside.server.errors import Conflict, DomainError, InvalidInput, NotFound, Unavailable, UpstreamTimeout
from portside.server.ids import new_id
from portside.server.mcp_hub.connection import (
    CONNECTED,
    DISCONNECTED,
    STDIO,
    ConnectFailed,
    LiveConnection,
    NotConnected,
    Target,
    describe,
)
from portside.server.mcp_hub.models import McpServerRow, McpToolCallRow
from portside.server.mcp_hub.spec import ServerPatch, ServerSpec
from portside.server.secrets.crypto import SecretCipher
from portside.server.store import Database

log = logging.getLogger("portside.mcp_hub")

MAX_ARGUMENT_BYTES = 1024 * 1024
AUDIT_ARGUMENT_BYTES = 16 * 1024
PREVIEW_CHARS = 1000


def _server_not_found(name: str) -> NotFound:
    return NotFound(f"MCP server '{name}' not found", code="mcp_server_not_found", details={"server_name": name})


@dataclass(frozen=True)
class ServerView:
    """A registered server and its live state in this process."""

    row: McpServerRow
    status: str
    pid: int | None
    connected_at: datetime | None
    last_error: str | None
    tools_count: int
    resources_count: int
    server_info: dict[str, Any] | None
    protocol_version: str | None


@dataclass(frozen=True)
class ToolInfo:
    server_name: str
    tool: types.Tool
    verified: bool = False
    verification_hash: str | None = None


@dataclass(frozen=True)
class ResourceInfo:
    server_name: str
    resource: types.Resource


@dataclass(frozen=True)
class CallOutcome:
    """The result of a tool call and its audit row id."""

    call_id: str
    server_name: str
    tool: str
    result: types.CallToolResult
    duration_ms: float


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str, separators=(",", ":")))


def _preview(result: types.CallToolResult) -> str:
    parts: list[str] = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{block.type}]")
    return "\n".join(parts)[:PREVIEW_CHARS]


class McpHubService:
    """Registered MCP servers and this process's connections to them."""

    def __init__(self, db: Database, cipher: SecretCipher, data_dir: Path) -> None:
        self.db = db
        self.cipher = cipher.derive("mcp-hub")
        self.logs_dir = data_dir / "mcp-hub"
        self._live: dict[str, LiveConnection] = {}
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Reconnect, in the background, the servers that were connected when the server stopped."""
        async with self.db.session() as s:
            rows = (await s.execute(select(McpServerRow).where(McpServerRow.desired_state == CONNECTED))).scalars()
            wanted = list(rows)
        for row in wanted:
            task = asyncio.create_task(self._quiet_connect(row), name=f"mcp-hub-start:{row.name}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        """Disconnect every server (stdio processes are stopped)."""
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
        await asyncio.gather(*(c.disconnect() for c in self._live.values()), return_exceptions=True)

    async def _quiet_connect(self, row: McpServerRow) -> None:
        try:
            await self._connection(row).connect()
        except ConnectFailed as exc:
            log.warning("could not reconnect MCP server %s: %s", row.name, exc)

    # ------------------------------------------------------------------ registry

    def _seal(self, server_id: str, env: dict[str, str], headers: dict[str, str]) -> str | None:
        if not env and not headers:
            return None
        return self.cipher.encrypt_text(json.dumps({"env": env, "headers": headers}), aad=server_id)

    def _unseal(self, row: McpServerRow) -> tuple[dict[str, str], dict[str, str]]:
        if not row.secrets:
            return {}, {}
        data = json.loads(self.cipher.decrypt_text(row.secrets, aad=row.id))
        return dict(data.get("env") or {}), dict(data.get("headers") or {})

    def _target(self, row: McpServerRow) -> Target:
        env, headers = self._unseal(row)
        return Target(
            transport=row.transport,
            command=row.command,
            args=tuple(str(a) for a in row.args or []),
            env=env,
            cwd=row.cwd,
            url=row.url,
            headers=headers,
            timeout_seconds=float(row.timeout_seconds),
        )

    def _connection(self, row: McpServerRow) -> LiveConnection:
        """This process's connection object of ``row`` (created on first use; re-targeted when idle)."""
        conn = self._live.get(row.id)
        target = self._target(row)
        if conn is None:
            conn = LiveConnection(
                row.name,
                target,
                stderr_path=self.logs_dir / f"{row.id}.stderr.log" if row.transport == STDIO else None,
                on_state=self._state_hook(row.id),
            )
            self._live[row.id] = conn
        elif not conn.is_connected:
            conn.target = target
            conn.name = row.name
        return conn

    def _state_hook(self, server_id: str) -> Any:
        async def hook(conn: LiveConnection) -> None:
            async with self.db.transaction() as s:
                row = await s.get(McpServerRow, server_id)
                if row is None:
                    return
                row.last_error = conn.last_error
                if conn.status == CONNECTED:
                    row.last_connected_at = conn.connected_at

        return hook

    def view(self, row: McpServerRow) -> ServerView:
        conn = self._live.get(row.id)
        if conn is None:
            return ServerView(row, DISCONNECTED, None, None, row.last_error, 0, 0, None, None)
        connected = conn.status == CONNECTED
        return ServerView(
            row=row,
            status=conn.status,
            pid=conn.pid,
            connected_at=conn.connected_at if connected else None,
            last_error=conn.last_error,
            tools_count=len(conn.tools) if connected else 0,
            resources_count=len(conn.resources) if connected else 0,
            server_info=conn.server_info,
            protocol_version=conn.protocol_version,
        )

    async def _row(self, name: str) -> McpServerRow:
        async with self.db.session() as s:
            row = (await s.execute(select(McpServerRow).where(McpServerRow.name == name))).scalar_one_or_none()
        if row is None:
            raise _server_not_found(name)
        return row

    async def create(self, caller: Principal, spec: ServerSpec) -> ServerView:
        """Register a server (409 when the name is taken); optionally connect it."""
        now = utcnow()
        server_id = new_id("mcps")
        row = McpServerRow(
            id=server_id,
            name=spec.name,
            owner=caller.owner,
            transport=spec.transport or STDIO,
            command=spec.command,
            args=list(spec.args),
            cwd=spec.cwd,
            url=spec.url,
            env_keys=sorted(spec.env),
            header_keys=sorted(spec.headers),
            secrets=self._seal(server_id, spec.env, spec.headers),
            timeout_seconds=spec.timeout_seconds,
            description=spec.description,
            desired_state=DISCONNECTED,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self.db.transaction() as s:
                exists = (await s.execute(select(McpServerRow.id).where(McpServerRow.name == spec.name))).first()
                if exists is not None:
                    raise Conflict(
                        f"MCP server '{spec.name}' already exists",
                        code="mcp_server_exists",
                        details={"server_name": spec.name},
                    )
                s.add(row)
        except IntegrityError:
            raise Conflict(
                f"MCP server '{spec.name}' already exists", code="mcp_server_exists", details={"server_name": spec.name}
            ) from None
        log.info("registered MCP server %s (%s)", row.name, row.transport)
        if spec.connect:
            return await self.connect(caller, row.name)
        return self.view(row)

    async def update(self, caller: Principal, name: str, patch: ServerPatch) -> ServerView:
        """Change a registration; a connected server is reconnected with the new settings."""
        changes = patch.model_dump(exclude_unset=True)
        async with self.db.transaction() as s:
            row = (await s.execute(select(McpServerRow).where(McpServerRow.name == name))).scalar_one_or_none()
            if row is None:
                raise _server_not_found(name)
            env, headers = self._unseal(row)
            if changes.get("env") is not None:
                env = dict(changes.pop("env"))
            if changes.get("headers") is not None:
                headers = dict(changes.pop("headers"))
            changes.pop("env", None)
            changes.pop("headers", None)
            for key, value in changes.items():
                if key == "args":
                    row.args = list(value or [])
                elif key in {"command", "cwd", "url"}:
                    setattr(row, key, value or None)
                elif value is not None:
                    setattr(row, key, value)
            self._check_shape(row)
            row.env_keys, row.header_keys = sorted(env), sorted(headers)
            row.secrets = self._seal(row.id, env, headers)
            row.updated_at = utcnow()
        conn = self._live.get(row.id)
        if conn is not None and conn.is_connected:
            await conn.disconnect()
            return await self.connect(caller, row.name)
        return self.view(row)

    @staticmethod
    def _check_shape(row: McpServerRow) -> None:
        if row.transport == STDIO:
            if not row.command:
                raise InvalidInput("a stdio server needs a command", code="invalid_mcp_server")
            row.url = None
        else:
            if not row.url:
                raise InvalidInput(f"a {row.transport} server needs a url", code="invalid_mcp_server")
            row.command, row.args, row.cwd = None, [], None

    async def delete(self, caller: Principal, name: str) -> None:
        """Disconnect and forget a server (its call audit stays)."""
        row = await self._row(name)
        conn = self._live.pop(row.id, None)
        if conn is not None:
            await conn.disconnect()
        async with self.db.transaction() as s:
            fresh = await s.get(McpServerRow, row.id)
            if fresh is not None:
                await s.delete(fresh)
        with contextlib.suppress(OSError):
            await asyncio.to_thread((self.logs_dir / f"{row.id}.stderr.log").unlink, missing_ok=True)
        log.info("deleted MCP server %s", name)

    async def get(self, name: str) -> ServerView:
        return self.view(await self._row(name))

    async def list(self) -> builtins.list[ServerView]:
        async with self.db.session() as s:
            rows = (await s.execute(select(McpServerRow).order_by(McpServerRow.name))).scalars().all()
        return [self.view(r) for r in rows]

    # ------------------------------------------------------------------ connections

    async def _set_desired(self, server_id: str, state: str) -> None:
        async with self.db.transaction() as s:
            row = await s.get(McpServerRow, server_id)
            if row is not None and row.desired_state != state:
                row.desired_state = state

    async def connect(self, caller: Principal, name: str) -> ServerView:
        """Connect (or reconnect after a crash); 502 ``mcp_connect_failed`` with the reason when it fails."""
        row = await self._row(name)
        await self._set_desired(row.id, CONNECTED)
        conn = self._connection(row)
        try:
            await conn.connect()
        except ConnectFailed as exc:
            raise DomainError(
                f"cannot connect to MCP server '{name}': {exc}",
                code="mcp_connect_failed",
                status=502,
                details={"server_name": name, "last_error": str(exc)},
            ) from None
        log.info("connected MCP server %s (pid %s)", name, conn.pid)
        return self.view(await self._row(name))

    async def disconnect(self, caller: Principal, name: str) -> ServerView:
        row = await self._row(name)
        await self._set_desired(row.id, DISCONNECTED)
        conn = self._live.get(row.id)
        if conn is not None:
            await conn.disconnect()
        return self.view(await self._row(name))

    async def _ready(self, row: McpServerRow) -> LiveConnection:
        """The live connection of ``row``; connects on first use here when the wanted state is connected."""
        conn = self._live.get(row.id)
        if conn is not None and conn.is_connected:
            return conn
        if conn is None and row.desired_state == CONNECTED:
            conn = self._connection(row)
            with contextlib.suppress(ConnectFailed):
                await conn.connect()
            if conn.is_connected:
                return conn
        reason = conn.last_error if conn is not None else row.last_error
        raise Conflict(
            f"MCP server '{row.name}' is not connected" + (f" ({reason})" if reason else "") + "; connect it first",
            code="mcp_server_not_connected",
            details={"server_name": row.name, "last_error": reason},
        )

    async def stderr_tail(self, name: str) -> str:
        """The end of a stdio server's stderr log (empty when it never ran here)."""
        row = await self._row(name)
        conn = self._live.get(row.id)
        return await asyncio.to_thread(conn.stderr_tail) if conn is not None else ""

    def connected_count(self) -> int:
        return sum(1 for c in self._live.values() if c.is_connected)

    # ------------------------------------------------------------------ tools and resources

    async def _selected(self, name: str | None) -> builtins.list[tuple[McpServerRow, LiveConnection]]:
        rows = [await self._row(name)] if name else [v.row for v in await self.list()]
        out = []
        for row in rows:
            conn = self._live.get(row.id)
            if conn is not None and conn.is_connected:
                out.append((row, conn))
        return out

    async def tools(self, name: str | None = None, *, refresh: bool = False) -> builtins.list[ToolInfo]:
        """Tools of one server or of every connected one (a disconnected server lists none)."""
        out: list[ToolInfo] = []
        for row, conn in await self._selected(name):
            if refresh:
                await self._refresh(conn)
            verified = await self._verified(conn.tools)
            for tool in conn.tools:
                digest = verified.get(tool.name)
                out.append(ToolInfo(row.name, tool, digest is not None, digest))
        return out

    async def resources(self, name: str | None = None, *, refresh: bool = False) -> builtins.list[ResourceInfo]:
        out: list[ResourceInfo] = []
        for row, conn in await self._selected(name):
            if refresh:
                await self._refresh(conn)
            out.extend(ResourceInfo(row.name, r) for r in conn.resources)
        return out

    async def _refresh(self, conn: LiveConnection) -> None:
        try:
            await conn.refresh()
        except (MCPError, NotConnected) as exc:
            log.warning("refreshing MCP server %s failed: %s", conn.name, describe(exc))

    async def _verified(self, tools: builtins.list[types.Tool]) -> dict[str, str]:
        """Tools matching a signed tool review (name, description, schema type/properties/required): name -> hash."""
        if not tools:
            return {}
        try:
            from portside.server.reviews.canonical import schema_hash
            from portside.server.reviews.service import normalize_tool
            from portside.server.reviews.tables import ToolReviewRow
        except ImportError:  # pragma: no cover - trust area absent
            return {}
        names = {t.name for t in tools}
        try:
            async with self.db.session() as s:
                stmt = select(ToolReviewRow.tool).where(
                    ToolReviewRow.status == "signed", ToolReviewRow.tool_name.in_(names)
                )
                signed = [t for t in (await s.execute(stmt)).scalars() if isinstance(t, dict)]
        except Exception:  # the table may not exist in a stripped build
            return {}
        out: dict[str, str] = {}
        for tool in tools:
            try:
                mine = normalize_tool(
                    {"name": tool.name, "description": tool.description or "", "schema": tool.input_schema}
                )
            except DomainError:
                continue
            for stored in signed:
                if (
                    stored.get("name") == mine["name"]
                    and stored.get("description") == mine["description"]
                    and _schema_core(stored.get("schema")) == _schema_core(mine["schema"])
                ):
                    out[tool.name] = schema_hash(stored)
                    break
        return out

    async def read_resource(self, caller: Principal, name: str, uri: str) -> types.ReadResourceResult:
        conn = await self._ready(await self._row(name))
        try:
            return await conn.read_resource(uri)
        except NotConnected as exc:
            raise Unavailable(str(exc), code="mcp_connection_lost") from None
        except MCPError as exc:
            raise _mcp_error(exc, name) from None

    async def call_tool(
        self,
        caller: Principal,
        name: str,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> CallOutcome:
        """Call ``tool`` on server ``name``; every call (successful or not) is written to the audit log.

        A tool that reports an error (``is_error``) is a normal result; protocol failures raise.
        """
        args = dict(arguments or {})
        if _json_size(args) > MAX_ARGUMENT_BYTES:
            raise InvalidInput(f"arguments are larger than {MAX_ARGUMENT_BYTES} bytes", code="arguments_too_large")
        row = await self._row(name)
        conn = await self._ready(row)
        if tool not in {t.name for t in conn.tools}:
            await self._refresh(conn)
            if tool not in {t.name for t in conn.tools}:
                raise NotFound(
                    f"MCP server '{name}' has no tool '{tool}'",
                    code="mcp_tool_not_found",
                    details={"server_name": name, "tool": tool, "available": sorted(t.name for t in conn.tools)},
                )
        started = time.perf_counter()
        result: types.CallToolResult | None = None
        error: DomainError | None = None
        try:
            result = await conn.call_tool(tool, args, timeout)
        except NotConnected as exc:
            error = Unavailable(f"MCP server '{name}' dropped: {exc}", code="mcp_connection_lost")
        except MCPError as exc:
            error = _mcp_error(exc, name)
        except Exception as exc:  # a transport failure in the middle of the call
            error = Unavailable(f"calling '{tool}' on '{name}' failed: {describe(exc)}", code="mcp_call_failed")
        duration = round((time.perf_counter() - started) * 1000, 3)
        call_id = new_id("mcpc")
        if result is not None:
            outcome, message, preview = ("tool_error" if result.is_error else "ok"), None, _preview(result)
        else:
            outcome, message, preview = "failed", error.message if error else None, None
        audit_args = (
            args if _json_size(args) <= AUDIT_ARGUMENT_BYTES else {"_truncated": True, "bytes": _json_size(args)}
        )
        async with self.db.transaction() as s:
            s.add(
                McpToolCallRow(
                    id=call_id,
                    server_id=row.id,
                    server_name=row.name,
                    tool=tool,
                    owner=caller.owner,
                    key_id=caller.key_id,
                    arguments=audit_args,
                    outcome=outcome,
                    error=message,
                    result_preview=preview,
                    duration_ms=duration,
                    request_id=request_id,
                    created_at=utcnow(),
                )
            )
        if error is not None:
            error.details.setdefault("call_id", call_id)
            raise error
        assert result is not None
        return CallOutcome(call_id, row.name, tool, result, duration)

    async def calls(
        self, caller: Principal, *, server: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[builtins.list[McpToolCallRow], int]:
        """The audit log of tool calls, newest first (admins see every caller's)."""
        conds = []
        if not caller.has("admin"):
            conds.append(McpToolCallRow.owner == caller.owner)
        if server:
            conds.append(McpToolCallRow.server_name == server)
        stmt = select(McpToolCallRow).where(*conds).order_by(McpToolCallRow.created_at.desc(), McpToolCallRow.id.desc())
        async with self.db.session() as s:
            total = (await s.execute(select(func.count()).select_from(McpToolCallRow).where(*conds))).scalar_one()
            rows = (await s.execute(stmt.limit(limit).offset(offset))).scalars().all()
        return list(rows), int(total)

    async def counts(self) -> dict[str, Any]:
        """Registered servers, live connections, calls by outcome (for metrics)."""
        async with self.db.session() as s:
            servers = (await s.execute(select(func.count()).select_from(McpServerRow))).scalar_one()
            by_outcome = dict(
                (await s.execute(select(McpToolCallRow.outcome, func.count()).group_by(McpToolCallRow.outcome))).all()
            )
        return {
            "servers": int(servers),
            "connected": self.connected_count(),
            "tool_calls": {str(k): int(v) for k, v in by_outcome.items()},
        }


def _schema_core(schema: Any) -> Any:
    """What a review signs of an input schema: ``type``, ``properties``, ``required`` (titles aside)."""
    if not isinstance(schema, dict):
        return schema
    return {k: schema.get(k) for k in ("type", "properties", "required")}


def _mcp_error(exc: MCPError, name: str) -> DomainError:
    code, message = exc.error.code, exc.error.message
    details = {"server_name": name, "mcp_code": code}
    if code == INVALID_PARAMS:
        return InvalidInput(
            f"MCP server '{name}' rejected the arguments: {message}", code="mcp_invalid_params", details=details
        )
    if code == METHOD_NOT_FOUND:
        return NotFound(f"MCP server '{name}': {message}", code="mcp_method_not_found", details=details)
    if code == REQUEST_TIMEOUT:
        return UpstreamTimeout(f"MCP server '{name}' timed out: {message}", code="mcp_timeout", details=details)
    if code == CONNECTION_CLOSED:
        return Unavailable(f"MCP server '{name}' closed the connection", code="mcp_connection_lost", details=details)
    return DomainError(f"MCP server '{name}' failed: {message}", code="mcp_error", status=502, details=details)
