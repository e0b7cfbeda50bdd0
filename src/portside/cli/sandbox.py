"""``portside sandbox ...`` and ``portside cargo ...``: sandboxes and cargo volumes from the shell."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from portside.cli.common import KeyOpt, UrlOpt, console, err
from portside.cli.common import client_from as _client
from portside.cli.common import exit_with as _fail

sandbox_app = typer.Typer(help="Create sandboxes, run code in them, remove them.", no_args_is_help=True)
cargo_app = typer.Typer(help="Manage cargo volumes that outlive sandboxes.", no_args_is_help=True)


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


# ---------------------------------------------------------------- sandboxes


@sandbox_app.command("create")
def sandbox_create(
    profile: str = typer.Option("python-default", "--profile", "-p", help="Profile (see the server's /v1/profiles)."),
    ttl: int = typer.Option(None, "--ttl", help="Seconds until the sandbox expires (default: never)."),
    cargo: str = typer.Option(None, "--cargo", help="Mount this external cargo at /workspace."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Create a sandbox and print its id."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            sb = c.sandboxes.create(profile=profile, ttl=ttl, cargo_id=cargo)
    except PortsideError as exc:
        raise _fail(exc) from exc
    console.print(sb.id)
    err.print(f"status {sb.status}, profile {sb.profile}, cargo {sb.cargo_id}, expires {_when(sb.info.expires_at)}")


@sandbox_app.command("exec")
def sandbox_exec(
    sandbox_id: str = typer.Argument(..., help="The sandbox."),
    python: str = typer.Option(None, "--python", help="Python code to run in the sandbox's kernel."),
    shell: str = typer.Option(None, "--shell", help="A shell command to run in the workspace."),
    cwd: str = typer.Option(None, "--cwd", help="Working directory of --shell, relative to /workspace."),
    timeout: int = typer.Option(30, "--timeout", help="Seconds before the execution is interrupted."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Run --python CODE or --shell CMD; print its output. Exits non-zero when it fails."""
    from portside import PortsideError

    if (python is None) == (shell is None):
        err.print("[red]error:[/red] give exactly one of --python or --shell")
        raise typer.Exit(2)
    try:
        with _client(url, api_key) as c:
            sb = c.sandboxes.get(sandbox_id)
            if python is not None:
                result = sb.python.exec(python, timeout=timeout)
                exit_code = 0 if result.success else 1
            else:
                result = sb.shell.exec(shell, cwd=cwd, timeout=timeout)
                exit_code = 0 if result.success else (result.exit_code or 1)
    except PortsideError as exc:
        raise _fail(exc) from exc
    if result.output:
        typer.echo(result.output, nl=not result.output.endswith("\n"))
    if python is not None and result.data:
        text = (result.data.get("output") or {}).get("text")
        if text:
            typer.echo(text)
    if result.error:
        typer.echo(result.error, err=True, nl=not result.error.endswith("\n"))
    if exit_code:
        raise typer.Exit(exit_code)


@sandbox_app.command("ls")
def sandbox_ls(
    status: str = typer.Option(None, "--status", help="idle, starting, ready, failed or expired."),
    limit: int = typer.Option(50, "--limit", help="At most this many (1-200)."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List sandboxes, newest first."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            page = c.sandboxes.list(limit=limit, status=status)
    except PortsideError as exc:
        raise _fail(exc) from exc
    table = Table("status", "profile", "created", "expires")
    table.add_column("id", no_wrap=True, min_width=30)
    table.add_column("cargo", no_wrap=True, min_width=32)
    for s in page.items:
        table.add_row(s.status, s.profile, _when(s.created_at), _when(s.expires_at), s.id, s.cargo_id)
    console.print(table)


@sandbox_app.command("rm")
def sandbox_rm(
    sandbox_ids: list[str] = typer.Argument(..., help="Sandboxes to delete."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Delete sandboxes (and their own cargo; an external cargo stays)."""
    from portside import PortsideError

    failed = False
    with _client(url, api_key) as c:
        for sid in sandbox_ids:
            try:
                c.sandboxes.get(sid).delete()
            except PortsideError as exc:
                err.print(f"[red]error:[/red] {sid}: {exc}")
                failed = True
                continue
            console.print(f"deleted {sid}")
    if failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------- cargos


@cargo_app.command("create")
def cargo_create(
    size_mb: int = typer.Option(None, "--size-mb", help="Size limit in MB (default: the server's)."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Create an external cargo and print its id."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            cargo = c.cargos.create(size_limit_mb=size_mb)
    except PortsideError as exc:
        raise _fail(exc) from exc
    console.print(cargo.id)
    err.print(f"size limit {cargo.size_limit_mb} MB")


@cargo_app.command("ls")
def cargo_ls(
    managed: bool = typer.Option(False, "--managed", help="List sandboxes' own cargos instead of external ones."),
    limit: int = typer.Option(50, "--limit", help="At most this many (1-200)."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List cargos."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            page = c.cargos.list(limit=limit, managed=managed)
    except PortsideError as exc:
        raise _fail(exc) from exc
    table = Table("size limit (MB)", "created", "last used")
    table.add_column("id", no_wrap=True, min_width=32)
    table.add_column("managed by", no_wrap=True)
    for cg in page.items:
        table.add_row(
            str(cg.size_limit_mb),
            _when(cg.created_at),
            _when(cg.last_accessed_at),
            cg.id,
            cg.managed_by_sandbox_id or "-",
        )
    console.print(table)


@cargo_app.command("rm")
def cargo_rm(
    cargo_ids: list[str] = typer.Argument(..., help="Cargos to delete (with their files)."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Delete cargos; one still used by a sandbox is refused."""
    from portside import PortsideError

    failed = False
    with _client(url, api_key) as c:
        for cid in cargo_ids:
            try:
                c.cargos.delete(cid)
            except PortsideError as exc:
                err.print(f"[red]error:[/red] {cid}: {exc}")
                failed = True
                continue
            console.print(f"deleted {cid}")
    if failed:
        raise typer.Exit(1)
