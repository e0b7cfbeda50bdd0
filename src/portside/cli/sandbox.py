"""``portside sandbox ...`` and ``portside cargo ...``: sandboxes and cargo volumes from the shell."""

from __future__ import annotations

import typer

from portside.cli.common import KeyOpt, UrlOpt, as_json, console, emit, err, fit_table
from portside.cli.common import client_from as _client
from portside.cli.common import exit_with as _fail
from portside.cli.common import when as _when

sandbox_app = typer.Typer(
    help="Create sandboxes, run code in them, list their history, remove them.", no_args_is_help=True
)
cargo_app = typer.Typer(help="Manage cargo volumes that outlive sandboxes.", no_args_is_help=True)
profile_app = typer.Typer(help="The sandbox profiles (presets) the server offers.", no_args_is_help=True)


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
    emit(sb.info, sb.id)
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
    """Run --python CODE or --shell CMD; print its output, then its execution id (on stderr).
    Exits non-zero when it fails."""
    from portside import ExecutionTimeoutError, PortsideError

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
    except ExecutionTimeoutError as exc:
        failure = _fail(exc)
        err.print(f"execution {exc.execution_id} (see: portside sandbox history {sandbox_id})")
        raise failure from exc
    except PortsideError as exc:
        raise _fail(exc) from exc
    if as_json():
        emit(result)
        raise typer.Exit(exit_code)
    if result.output:
        typer.echo(result.output, nl=not result.output.endswith("\n"))
    if python is not None and result.data:
        text = (result.data.get("output") or {}).get("text")
        if text:
            typer.echo(text)
    if result.error:
        typer.echo(result.error, err=True, nl=not result.error.endswith("\n"))
    if result.execution_id:
        err.print(f"execution {result.execution_id}")
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
    rows = [(s.id, s.status, s.profile, s.cargo_id, _when(s.created_at), _when(s.expires_at)) for s in page.items]
    emit(page, fit_table(("id", "status", "profile", "cargo", "created", "expires"), rows, keep=("id", "cargo")))


@sandbox_app.command("history")
def sandbox_history(
    sandbox_id: str = typer.Argument(..., help="The sandbox."),
    exec_type: str = typer.Option(None, "--type", help="python or shell."),
    success_only: bool = typer.Option(False, "--success-only", help="Only executions that succeeded."),
    tag: list[str] = typer.Option(None, "--tag", help="Only executions carrying this tag; repeat for any of several."),
    limit: int = typer.Option(20, "--limit", help="At most this many (newest first)."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List a sandbox's recorded executions, newest first (their ids feed `skill create --exec`)."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            history = c.sandboxes.get(sandbox_id).history(
                exec_type=exec_type, success_only=success_only, tags=tag or None, limit=limit
            )
    except PortsideError as exc:
        raise _fail(exc) from exc
    rows = [
        (
            e.id,
            e.exec_type,
            "yes" if e.success else "no",
            f"{e.execution_time_ms}",
            _when(e.created_at),
            e.code if len(e.code) <= 60 else e.code[:57] + "...",
        )
        for e in history.entries
    ]
    emit(history, fit_table(("id", "type", "ok", "ms", "created", "code"), rows))
    if not as_json():
        err.print(f"{len(history.entries)} of {history.total}")


@sandbox_app.command("rm")
def sandbox_rm(
    sandbox_ids: list[str] = typer.Argument(..., help="Sandboxes to delete."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Delete sandboxes (and their own cargo; an external cargo stays)."""
    from portside import PortsideError

    failed = False
    deleted: list[str] = []
    with _client(url, api_key) as c:
        for sid in sandbox_ids:
            try:
                c.sandboxes.get(sid).delete()
            except PortsideError as exc:
                err.print(f"[red]error:[/red] {sid}: {exc}")
                failed = True
                continue
            if not as_json():
                console.print(f"deleted {sid}")
            deleted.append(sid)
    if as_json():
        emit({"deleted": deleted})
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
    emit(cargo, cargo.id)
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
    rows = [
        (cg.id, cg.size_limit_mb, _when(cg.created_at), _when(cg.last_accessed_at), cg.managed_by_sandbox_id or "-")
        for cg in page.items
    ]
    columns = ("id", "size MB", "created", "last used", "managed by")
    emit(page, fit_table(columns, rows, keep=("id", "managed by")))


@cargo_app.command("rm")
def cargo_rm(
    cargo_ids: list[str] = typer.Argument(..., help="Cargos to delete (with their files)."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Delete cargos; one still used by a sandbox is refused."""
    from portside import PortsideError

    failed = False
    deleted: list[str] = []
    with _client(url, api_key) as c:
        for cid in cargo_ids:
            try:
                c.cargos.delete(cid)
            except PortsideError as exc:
                err.print(f"[red]error:[/red] {cid}: {exc}")
                failed = True
                continue
            if not as_json():
                console.print(f"deleted {cid}")
            deleted.append(cid)
    if as_json():
        emit({"deleted": deleted})
    if failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------- profiles


@profile_app.command("ls")
def profile_ls(
    detail: bool = typer.Option(False, "--detail", help="Include resources and containers."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List the profiles `sandbox create --profile` accepts."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            profiles = c.sandboxes.profiles(detail=detail)
    except PortsideError as exc:
        raise _fail(exc) from exc
    rows = [(p.id, ",".join(p.capabilities), f"{p.idle_timeout}s", p.description or "") for p in profiles]
    emit(profiles, fit_table(("id", "capabilities", "idle timeout", "description"), rows))
