"""``portside secret ...``: per-agent secrets from the shell (values only from ``get``)."""

from __future__ import annotations

import sys

import typer

from portside.cli.common import KeyOpt, UrlOpt, emit, fit_table, report
from portside.cli.common import client_from as _client
from portside.cli.common import exit_with as _fail

secret_app = typer.Typer(help="Per-agent secrets: set, get, ls, rm.", no_args_is_help=True)


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
    report({"stored": f"{agent_id}/{name}"}, f"stored {agent_id}/{name}")


@secret_app.command("get")
def get_secret(agent_id: str, name: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Print a secret's value (the read is audited)."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            secret = c.secrets.get(agent_id, name)
    except PortsideError as exc:
        raise _fail(exc) from exc
    emit(secret, lambda: sys.stdout.write(secret.value + "\n"))


@secret_app.command("ls")
def list_secrets(agent_id: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """List an agent's secret names (never values)."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            listing = c.secrets.list(agent_id)
    except PortsideError as exc:
        raise _fail(exc) from exc
    meta = {i.secret_name: i for i in listing.items}
    rows = []
    for n in listing.secrets:
        info = meta.get(n)
        rows.append((n, (info.description or "") if info else "", (info.updated_at or "") if info else ""))
    emit(listing, fit_table(("name", "description", "updated"), rows, keep=("name",)))


@secret_app.command("rm")
def remove_secret(agent_id: str, name: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Delete a secret."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            c.secrets.delete(agent_id, name)
    except PortsideError as exc:
        raise _fail(exc) from exc
    report({"deleted": f"{agent_id}/{name}"}, f"deleted {agent_id}/{name}")
