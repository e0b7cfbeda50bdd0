"""What every ``portside`` command group shares: consoles, the URL/key options, the client, error exits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err = Console(stderr=True)

UrlOpt = typer.Option(None, "--url", envvar="PORTSIDE_URL", help="Server URL.")
KeyOpt = typer.Option(None, "--api-key", envvar="PORTSIDE_API_KEY", help="API key.")


def local_admin_key() -> str | None:
    """The admin key saved by ``portside serve`` in the data dir, if readable."""
    path = Path(os.environ.get("PORTSIDE_DATA_DIR", ".portside")) / "admin_key"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def client_from(url: str | None, api_key: str | None) -> Any:
    """A sync SDK client from flags, env, or the local data dir's admin key."""
    from portside import Client

    return Client(base_url=url, api_key=api_key or local_admin_key())


def exit_with(exc: Exception | str) -> typer.Exit:
    """Print an error (markup-escaped) and return the non-zero exit to raise."""
    err.print(f"[red]error:[/red] {escape(str(exc))}")
    return typer.Exit(1)
