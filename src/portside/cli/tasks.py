"""``portside task ...`` and ``portside worker ls``: tasks for typed capabilities from the shell."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import typer

from portside.cli.common import KeyOpt, UrlOpt, emit, err, fit_table
from portside.cli.common import client_from as _client
from portside.cli.common import exit_with as _fail

#: Seconds between checks for progress while ``--wait`` follows a task.
POLL_S = 1.0

task_app = typer.Typer(help="Tasks for typed capabilities: submit, get, ls, cancel.", no_args_is_help=True)
worker_app = typer.Typer(help="Workers serving capabilities.", no_args_is_help=True)


def _print_task(task: Any) -> None:
    emit(task)


def _serves(worker: Any, capability: str) -> bool:
    return worker.status == "connected" and any(c.get("type") == capability for c in worker.capabilities)


def _warn_if_unserved(client: Any, capability: str) -> None:
    """Say so on stderr when no connected worker serves ``capability`` (silent if workers can't be listed)."""
    from portside import PortsideError

    try:
        workers = client.workers.list()
    except PortsideError:
        return
    if not any(_serves(w, capability) for w in workers):
        err.print(f"no connected worker serves {capability} yet: the task stays queued until one does")


def _progress_line(progress: dict[str, Any] | None) -> str | None:
    if not progress:
        return None
    percent = progress.get("percent")
    parts = [f"{percent:g}%" if isinstance(percent, (int, float)) else "", str(progress.get("message") or "")]
    text = " ".join(p for p in parts if p)
    return f"progress {text}" if text else None


def follow(client: Any, task: Any, timeout: float | None) -> Any:
    """Wait for a task, printing its status changes and reported progress on stderr."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last_status, last_progress = task.status, None
    while not task.done:
        step = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.monotonic()))
        task = client.tasks.wait(task.id, timeout=step)
        if task.status != last_status:
            worker = f" on {task.worker_id}" if task.worker_id and task.status == "running" else ""
            err.print(f"{task.id}: {task.status}{worker}")
            last_status = task.status
        line = _progress_line(task.progress)
        if line and line != last_progress:
            err.print(f"{task.id}: {line}")
            last_progress = line
        if deadline is not None and time.monotonic() >= deadline:
            break
    return task


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
    """Queue a task (and optionally wait for its result, showing its progress)."""
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
                err.print(f"task {task.id} {task.status} ({capability}); waiting (Ctrl-C stops waiting, not the task)")
                _warn_if_unserved(c, capability)
                try:
                    task = follow(c, task, timeout)
                except KeyboardInterrupt:
                    err.print(f"stopped waiting; the task is still queued or running: portside task get {task.id}")
                    raise typer.Exit(130) from None
    except PortsideError as exc:
        raise _fail(exc) from exc
    _print_task(task)
    if wait and task.status != "succeeded":
        if not task.done:
            err.print(f"{task.id} is still {task.status} after {timeout or 0:g}s: portside task get {task.id}")
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
    rows = [
        (t.id, t.capability, t.status, f"{t.attempt}/{t.max_attempts}", t.worker_id or "", t.created_at or "")
        for t in page.items
    ]
    emit(page, fit_table(("id", "capability", "status", "attempt", "worker", "created"), rows))


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
    emit(task, f"{task.id}: {task.status}")


@worker_app.command("ls")
def workers_ls(url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """List workers, their capabilities and active leases."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            workers = c.workers.list()
    except PortsideError as exc:
        raise _fail(exc) from exc
    rows = [
        (
            w.id,
            w.kind,
            w.status,
            "\n".join(f"{c['type']} (concurrency {c.get('concurrency', 1)})" for c in w.capabilities),
            w.active_leases,
            w.last_heartbeat_at or "",
        )
        for w in workers
    ]
    emit(workers, fit_table(("id", "kind", "status", "capabilities", "leases", "last heartbeat"), rows))
