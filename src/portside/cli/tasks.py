"""``portside task ...`` and ``portside worker ls``: tasks for typed capabilities from the shell."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.table import Table

from portside.cli.common import KeyOpt, UrlOpt, console, err
from portside.cli.common import client_from as _client
from portside.cli.common import exit_with as _fail

task_app = typer.Typer(help="Tasks for typed capabilities: submit, get, ls, cancel.", no_args_is_help=True)
worker_app = typer.Typer(help="Workers serving capabilities.", no_args_is_help=True)


def _print_task(task: Any) -> None:
    console.print_json(task.model_dump_json())


@task_app.command("submit")
def submit(
    capability: str = typer.Argument(..., help="Capability type, e.g. acme/images/resize."),
    input_json: str = typer.Option(None, "--input", "-i", help="JSON input; '-' reads standard input."),
    on_behalf_of: str = typer.Option(None, "--on-behalf-of", help="User the task acts for (scope routing)."),
    idempotency_key: str = typer.Option(None, "--idempotency-key", help="Same key: same task."),
    timeout: float = typer.Option(None, "--timeout", help="Fail the task if not done within this many seconds."),
    max_attempts: int = typer.Option(None, "--max-attempts", help="Deliveries before giving up."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Wait for the result."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Queue a task (and optionally wait for its result)."""
    from portside import PortsideError

    raw = sys.stdin.read() if input_json == "-" else input_json
    try:
        value = json.loads(raw) if raw else None
    except ValueError as exc:
        raise _fail(f"--input is not JSON: {exc}") from exc
    try:
        with _client(url, api_key) as c:
            task = c.tasks.submit(
                capability,
                value,
                on_behalf_of=on_behalf_of,
                idempotency_key=idempotency_key,
                timeout=timeout,
                max_attempts=max_attempts,
            )
            if wait:
                with console.status(f"waiting for {task.id} ..."):
                    task = c.tasks.wait(task.id, timeout=timeout)
    except PortsideError as exc:
        raise _fail(exc) from exc
    _print_task(task)
    if wait and task.status != "succeeded":
        raise typer.Exit(1)


@task_app.command("get")
def get(
    task_id: str,
    wait: float = typer.Option(0.0, "--wait", "-w", help="Wait up to this many seconds for it to finish."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Show a task (status, output or error, progress)."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            task = c.tasks.wait(task_id, timeout=wait) if wait > 0 else c.tasks.get(task_id)
    except PortsideError as exc:
        raise _fail(exc) from exc
    _print_task(task)


@task_app.command("ls")
def ls(
    status: str = typer.Option(None, help="queued, running, succeeded, failed or cancelled."),
    capability: str = typer.Option(None, help="Only this capability type."),
    limit: int = typer.Option(20, help="How many (newest first)."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List tasks, newest first."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            page = c.tasks.list(status=status, capability=capability, limit=limit)
    except PortsideError as exc:
        raise _fail(exc) from exc
    table = Table("id", "capability", "status", "attempt", "worker", "created")
    for t in page.items:
        table.add_row(t.id, t.capability, t.status, f"{t.attempt}/{t.max_attempts}", t.worker_id or "", t.created_at)
    console.print(table)


@task_app.command("cancel")
def cancel(
    task_id: str,
    reason: str = typer.Option(None, help="Why (shown on the task)."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Cancel a task; a running handler is told."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            task = c.tasks.cancel(task_id, reason=reason)
    except PortsideError as exc:
        raise _fail(exc) from exc
    err.print(f"{task.id}: {task.status}")


@worker_app.command("ls")
def workers_ls(url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """List workers, their capabilities and active leases."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            workers = c.workers.list()
    except PortsideError as exc:
        raise _fail(exc) from exc
    table = Table("id", "kind", "status", "capabilities", "leases", "last heartbeat")
    for w in workers:
        caps = ", ".join(f"{c['type']}x{c.get('concurrency', 1)}" for c in w.capabilities)
        table.add_row(w.id, w.kind, w.status, caps, str(w.active_leases), w.last_heartbeat_at or "")
    console.print(table)
