"""``portside mcp-server ...``: the MCP hub from the shell — register servers, list their tools, call tools."""

from __future__ import annotations

import json
import sys

import typer

from portside.cli.common import KeyOpt, UrlOpt, as_json, emit, fit_table, report
from portside.cli.common import client_from as _client
from portside.cli.common import exit_with as _fail

mcp_server_app = typer.Typer(help="MCP servers Portside connects to: add, ls, tools, call.", no_args_is_help=True)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"{what} must look like KEY=VALUE, got {item!r}")
        out[key] = value
    return out


@mcp_server_app.command("add", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A unique name for the server."),
    url_target: str = typer.Option(None, "--server-url", help="Streamable HTTP (or SSE) URL instead of a command."),
    sse: bool = typer.Option(False, "--sse", help="The URL speaks the older SSE transport."),
    env: list[str] = typer.Option([], "--env", "-e", help="KEY=VALUE for a stdio server; repeat."),
    header: list[str] = typer.Option([], "--header", "-H", help="KEY=VALUE HTTP header; repeat."),
    cwd: str = typer.Option(None, "--cwd", help="Working directory of a stdio server."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for the handshake and each call."),
    connect: bool = typer.Option(True, "--connect/--no-connect", help="Connect right away."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Register a server: `portside mcp-server add fs -- npx @modelcontextprotocol/server-filesystem /tmp`."""
    from portside import PortsideError

    command = list(ctx.args)
    if not command and not url_target:
        raise _fail("give the command after '--', or --server-url")
    try:
        with _client(url, api_key) as c:
            server = c.mcp.add(
                name,
                command=command or None,
                url=url_target,
                transport="sse" if sse else None,
                env=_pairs(env, "--env"),
                headers=_pairs(header, "--header"),
                cwd=cwd,
                timeout_seconds=timeout,
                connect=connect,
            )
    except PortsideError as exc:
        raise _fail(exc) from exc
    report(server, f"added {server.name} ({server.transport}): {server.status}, {server.tools_count} tool(s)")


@mcp_server_app.command("ls")
def list_servers(url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """List registered servers and their state."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            servers = c.mcp.list()
    except PortsideError as exc:
        raise _fail(exc) from exc
    rows = []
    for s in servers:
        target = s.url or " ".join([s.command or "", *s.args]).strip()
        rows.append(
            (s.name, s.transport, s.status, s.pid or "", s.tools_count, s.resources_count, target, s.last_error or "")
        )
    columns = ("name", "transport", "status", "pid", "tools", "resources", "target", "last error")
    emit(servers, fit_table(columns, rows, keep=("name",)))


@mcp_server_app.command("connect")
def connect(name: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Connect a server (again, after a crash)."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            server = c.mcp.connect(name)
    except PortsideError as exc:
        raise _fail(exc) from exc
    report(server, f"{server.name}: {server.status} (pid {server.pid or '-'}), {server.tools_count} tool(s)")


@mcp_server_app.command("disconnect")
def disconnect(name: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Disconnect a server (a stdio server's process is stopped)."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            server = c.mcp.disconnect(name)
    except PortsideError as exc:
        raise _fail(exc) from exc
    report(server, f"{server.name}: {server.status}")


@mcp_server_app.command("rm")
def remove(name: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Disconnect and delete a server."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            c.mcp.delete(name)
    except PortsideError as exc:
        raise _fail(exc) from exc
    report({"deleted": name}, f"deleted {name}")


@mcp_server_app.command("tools")
def tools(
    name: str = typer.Argument(None, help="One server; default: every connected server."),
    refresh: bool = typer.Option(False, "--refresh", help="Ask the server(s) again."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with input schemas); same as --output json."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List tools."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            found = c.mcp.tools(name, refresh=refresh)
    except PortsideError as exc:
        raise _fail(exc) from exc
    rows = [
        (t.server_name, t.name, "yes" if t.verified else "", ((t.description or "").splitlines() or [""])[0][:80])
        for t in found
    ]
    emit(found, fit_table(("server", "tool", "verified", "description"), rows, keep=("server", "tool")))


@mcp_server_app.command("call")
def call(
    name: str = typer.Argument(..., help="The server."),
    tool: str = typer.Argument(..., help="The tool."),
    arguments: str = typer.Argument("{}", help="Arguments as a JSON object ('-' reads standard input)."),
    timeout: float = typer.Option(None, "--timeout", help="Seconds to wait for the tool."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Call a tool through Portside (audited); prints its text, or JSON for structured results."""
    from portside import PortsideError

    raw = sys.stdin.read() if arguments == "-" else arguments
    try:
        args = json.loads(raw or "{}")
    except ValueError as exc:
        raise _fail(f"arguments are not JSON: {exc}") from exc
    if not isinstance(args, dict):
        raise _fail("arguments must be a JSON object")
    try:
        with _client(url, api_key) as c:
            result = c.mcp.call(name, tool, args, timeout_seconds=timeout)
    except PortsideError as exc:
        raise _fail(exc) from exc
    if as_json():
        emit(result)
    elif result.structured_content is not None:
        sys.stdout.write(json.dumps(result.structured_content) + "\n")
    else:
        sys.stdout.write(result.text + "\n")
    if result.is_error:
        raise typer.Exit(2)
