"""``portside secret ...``: per-agent secrets from the shell (values only from ``get``)."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

secret_app = typer.Typer(help="Per-agent secrets: set, get, ls, rm.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

UrlOpt = typer.Option(None, "--url", envvar="PORTSIDE_URL", help="Server URL.")
KeyOpt = typer.Option(None, "--api-key", envvar="PORTSIDE_API_KEY", help="API key.")


def _client(url: str | None, api_key: str | None) -> Any:
    from portside.cli.main import client_from

    return client_from(url, api_key)


def _fail(exc: Exception | str) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


@secret_app.command("set")
def set_secret(
    agent_id: str,
    name: str,
    value: str = typer.Argument(None, help="The value; omit to read it from standard input."),
    description: str = typer.Option(None, "--description", "-d"),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Store a secret for an agent (prefer stdin: values on the command line land in shell history)."""
    from portside import PortsideError

    if value is None:
        value = sys.stdin.read().rstrip("\n")
    try:
        with _client(url, api_key) as c:
            c.secrets.set(agent_id, name, value, description=description)
    except PortsideError as exc:
        raise _fail(exc) from exc
    err.print(f"stored {agent_id}/{name}")


@secret_app.command("get")
def get_secret(agent_id: str, name: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Print a secret's value (the read is audited)."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            secret = c.secrets.get(agent_id, name)
    except PortsideError as exc:
        raise _fail(exc) from exc
    sys.stdout.write(secret.value + "\n")


@secret_app.command("ls")
def list_secrets(agent_id: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """List an agent's secret names (never values)."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            listing = c.secrets.list(agent_id)
    except PortsideError as exc:
        raise _fail(exc) from exc
    table = Table("name", "description", "updated")
    meta = {i.secret_name: i for i in listing.items}
    for n in listing.secrets:
        info = meta.get(n)
        table.add_row(n, (info.description or "") if info else "", (info.updated_at or "") if info else "")
    console.print(table)


@secret_app.command("rm")
def remove_secret(agent_id: str, name: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Delete a secret."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            c.secrets.delete(agent_id, name)
    except PortsideError as exc:
        raise _fail(exc) from exc
    err.print(f"deleted {agent_id}/{name}")
