"""The ``portside`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from portside._version import __version__
from portside.cli.common import (
    KeyOpt,
    UrlOpt,
    add_output_option,
    as_json,
    client_from,
    console,
    emit,
    err,
    exit_with,
    fit_table,
)
from portside.cli.flows import agent_app, flow_app
from portside.cli.gc import gc_command
from portside.cli.kb import kb_app
from portside.cli.mcp import mcp_command
from portside.cli.mcp_hub import mcp_server_app
from portside.cli.sandbox import cargo_app, profile_app, sandbox_app
from portside.cli.secrets import secret_app
from portside.cli.skill import skill_app
from portside.cli.tasks import task_app, worker_app
from portside.cli.tools import tool_app

if TYPE_CHECKING:
    from portside.server.auth import AdminKeyStatus

app = typer.Typer(help="Portside: a self-hosted runtime for AI agents.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys (needs an admin key).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(cargo_app, name="cargo")
app.add_typer(profile_app, name="profile")
app.add_typer(skill_app, name="skill")
app.add_typer(tool_app, name="tool")
app.add_typer(secret_app, name="secret")
app.add_typer(flow_app, name="flow")
app.add_typer(agent_app, name="agent")
app.add_typer(kb_app, name="kb")
app.add_typer(mcp_server_app, name="mcp-server")
app.add_typer(task_app, name="task")
app.add_typer(worker_app, name="worker")
app.command("mcp")(mcp_command)
app.command("gc")(gc_command)


def fail(exc: Exception) -> None:
    """Print an SDK error and exit non-zero."""
    raise exit_with(exc)


@app.command()
def version() -> None:
    """Print the Portside version."""
    emit({"version": __version__}, __version__)


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (PORTSIDE_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (PORTSIDE_PORT, default 8321)."),
    data_dir: Path = typer.Option(None, help="Data directory (PORTSIDE_DATA_DIR, default ./.portside)."),
    database_url: str = typer.Option(None, help="SQLAlchemy URL (PORTSIDE_DATABASE_URL)."),
    log_level: str = typer.Option(None, help="Log level (PORTSIDE_LOG_LEVEL)."),
) -> None:
    """Run the Portside server."""
    import uvicorn

    from portside.server.app import create_app
    from portside.server.settings import Settings

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "data_dir": data_dir,
            "database_url": database_url,
            "log_level": log_level,
        }.items()
        if v is not None
    }
    settings = Settings(**overrides)
    app_ = create_app(settings, configure_logs=True)

    url = f"http://{settings.host}:{settings.port}"
    config = uvicorn.Config(
        app_,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=10,
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def _startup(sockets: Any = None) -> None:
        await original_startup(sockets)
        console.print(f"[bold green]Portside {__version__}[/bold green] serving on [bold]{url}[/bold]")
        console.print(f"  docs:  {url}/docs    data: {settings.data_dir.resolve()}")
        for line in admin_key_banner(app_.state.admin_key_status):
            console.print(line, highlight=False)
        sys.stdout.flush()

    server.startup = _startup  # type: ignore[method-assign]
    server.run()


def admin_key_banner(status: AdminKeyStatus | None) -> list[str]:
    """What the start banner says about the admin key: the key itself only when this start
    generated it (and where it was written); never a configured ``PORTSIDE_API_KEY``."""
    if status is None:
        return []
    if status.source == "generated":
        return [f"  admin API key: [bold]{status.plaintext}[/bold]  (generated now; saved to {status.path})"]
    if status.source == "configured":
        return ["  admin API key: the one in PORTSIDE_API_KEY (not shown, not written to disk)"]
    if status.path is not None:
        return [f"  admin API key: see {status.path}"]
    return ["  admin API key: keys already exist (none saved in the data directory); use yours or PORTSIDE_API_KEY"]


@app.command()
def health(url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Check that a server is up."""
    from portside import PortsideError

    try:
        with client_from(url, api_key) as c:
            result = c.health()
    except PortsideError as exc:
        fail(exc)
        return
    emit(result)


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="A label for the key."),
    scope: list[str] = typer.Option(["read", "write"], "--scope", "-s", help="Scope; repeat for several."),
    owner: str = typer.Option(None, help="Owner (principal) of the key; default: the name."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Create an API key; its secret is printed once."""
    from portside import PortsideError

    try:
        with client_from(url, api_key) as c:
            key = c.keys.create(name=name, scopes=scope, owner=owner)
    except PortsideError as exc:
        fail(exc)
        return
    if as_json():
        emit(key)
    else:
        console.print(f"[bold]{key.key}[/bold]")
    err.print(f"id {key.id}, scopes {','.join(key.scopes)} — store it now, it is not shown again")


@keys_app.command("list")
def keys_list(url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """List API keys."""
    from portside import PortsideError

    try:
        with client_from(url, api_key) as c:
            keys = c.keys.list()
    except PortsideError as exc:
        fail(exc)
        return
    rows = [(k.id, k.name, k.prefix, ",".join(k.scopes), k.owner, "yes" if k.revoked else "") for k in keys]
    emit(keys, fit_table(("id", "name", "prefix", "scopes", "owner", "revoked"), rows))


@keys_app.command("revoke")
def keys_revoke(key_id: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Revoke an API key."""
    from portside import PortsideError

    try:
        with client_from(url, api_key) as c:
            c.keys.revoke(key_id)
    except PortsideError as exc:
        fail(exc)
    emit({"revoked": key_id}, f"revoked {key_id}")


add_output_option(app, skip=("serve", "mcp"))


def main() -> None:
    """Entry point of the ``portside`` script."""
    app()


if __name__ == "__main__":
    main()
