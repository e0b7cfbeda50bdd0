"""``portside flow ...`` and ``portside agent ...``: flows, executions and the agent registry.

``portside flow run FILE --input '{"text": "hi"}' --wait`` registers the file's agents, saves its
flow (a new revision only when it changed), starts an execution and shows its nodes live.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from portside.cli.common import KeyOpt, UrlOpt, as_json, console, emit, err, exit_with, fit_table, print_json
from portside.cli.common import client_from as _client

flow_app = typer.Typer(help="Flows: save, validate, run and watch DAGs of agents and tasks.", no_args_is_help=True)
agent_app = typer.Typer(help="The agent registry (HTTP endpoints or worker capabilities).", no_args_is_help=True)

JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table (same as --output json).")

STATUS_STYLE = {
    "pending": "dim",
    "running": "yellow",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "magenta",
    "skipped": "cyan",
}


def _fail(exc: Exception) -> typer.Exit:
    failure = exit_with(exc)
    details = getattr(exc, "details", None)
    if isinstance(details, dict):
        for issue in details.get("errors", [])[:20]:
            err.print(f"  - {issue.get('message', issue)}")
    return failure


def read_flow_file(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(flow definition, agents) from a YAML or JSON flow file."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(doc, dict):
        raise typer.BadParameter(f"{path} does not hold a mapping")
    agents = doc.pop("agents", None) or []
    if not isinstance(agents, list) or not all(isinstance(a, dict) for a in agents):
        raise typer.BadParameter(f"{path}: 'agents' must be a list of mappings")
    return doc, agents


def _agent_fields(raw: dict[str, Any]) -> dict[str, Any]:
    data = dict(raw)
    if "agent_id" in data:
        data.setdefault("id", data.pop("agent_id"))
    if "agent_type" in data:
        data.setdefault("type", data.pop("agent_type"))
    data.setdefault("name", data.get("id"))
    return data


def push_file(client: Any, path: Path) -> Any:
    """Register a file's agents (create or update) and upsert its flow; returns the Flow."""
    from portside import ConflictError

    definition, agents = read_flow_file(path)
    for raw in agents:
        fields = _agent_fields(raw)
        try:
            try:
                client.agents.create(**fields)
            except ConflictError:
                agent_id = fields.pop("id")
                client.agents.update(agent_id, **fields)
        except TypeError as exc:  # an unknown or missing field in the file's agent
            raise typer.BadParameter(f"{path}: agent {fields.get('id')!r}: {exc}") from None
    return client.flows.upsert(definition)


def _parse_input(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"--input is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter("--input must be a JSON object")
    return data


def node_table(execution: Any) -> Table:
    """A table of an execution's nodes."""
    table = Table(title=f"{execution.execution_id}  [{execution.flow_id}]", title_justify="left")
    for col in ("node", "kind", "status", "attempts", "ms", "error"):
        table.add_column(col, no_wrap=col != "error")
    for node in execution.nodes:
        name = f"  {node.node_id}" if node.parent_id else node.node_id
        ms = f"{node.execution_time_ms:.0f}" if node.execution_time_ms is not None else ""
        table.add_row(
            name,
            node.kind,
            Text(node.status, style=STATUS_STYLE.get(node.status, "")),
            str(node.attempts),
            ms,
            (node.error_message or "")[:120],
        )
    return table


def _view(execution: Any, started: float) -> Group:
    status = Text(
        f"{execution.status}  {time.monotonic() - started:.1f}s", style=STATUS_STYLE.get(execution.status, "")
    )
    return Group(node_table(execution), status)


def watch(client: Any, execution_id: str, *, live: bool = True) -> Any:
    """Follow an execution over SSE: a live node table on a terminal, one line per change otherwise."""
    started = time.monotonic()
    execution = client.executions.get(execution_id)
    if not live:
        for event in client.executions.events(execution_id):
            data = event.data
            if event.event == "node":
                ms = f" {data['duration_ms']:.0f}ms" if data.get("duration_ms") is not None else ""
                error = f"  {data['error_message']}" if data.get("error_message") else ""
                err.print(f"  {data['node_id']:<24} {data['status']:<10} attempt {data['attempts']}{ms}{error}")
        return client.executions.get(execution_id)
    with Live(_view(execution, started), console=err, refresh_per_second=8, transient=False) as view:
        for _event in client.executions.events(execution_id):
            execution = client.executions.get(execution_id)
            view.update(_view(execution, started))
        execution = client.executions.get(execution_id)
        view.update(_view(execution, started))
    return execution


def _finish(execution: Any) -> None:
    if as_json():
        print_json(execution)
        if execution.status != "completed":
            raise typer.Exit(1)
        return
    if execution.status == "completed":
        console.print_json(json.dumps(execution.output_data, default=str))
        return
    err.print(f"[red]{execution.status}[/red]: {execution.error_message or ''}")
    raise typer.Exit(1)


@flow_app.command("run")
def run(
    target: str = typer.Argument(..., help="A flow file (YAML/JSON, may list its agents) or a saved flow id."),
    input: str = typer.Option(None, "--input", "-i", help="Input JSON object, or @file.json."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the execution and print its output."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Live node table while waiting."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Run a flow: save it from FILE (agents too) if given a file, start it, optionally follow it."""
    from portside import PortsideError

    payload = _parse_input(input)
    try:
        with _client(url, api_key) as c:
            path = Path(target)
            if path.is_file():
                flow = push_file(c, path)
                err.print(f"flow {flow.flow_id} revision {flow.revision} ({'saved' if flow.changed else 'unchanged'})")
                flow_id = flow.flow_id
            else:
                flow_id = target
            execution = c.flows.execute(flow_id, payload)
            if not wait:
                emit(execution, execution.execution_id)
                return
            err.print(f"execution {execution.execution_id}")
            final = watch(c, execution.execution_id, live=progress and err.is_terminal and not as_json())
    except PortsideError as exc:
        raise _fail(exc) from None
    _finish(final)


@flow_app.command("push")
def push(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False), url: str = UrlOpt, api_key: str = KeyOpt
) -> None:
    """Save flow files (and their agents) on the server."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            pushed = []
            for path in files:
                flow = push_file(c, path)
                pushed.append(flow)
                if not as_json():
                    console.print(
                        f"{flow.flow_id}: revision {flow.revision} ({'saved' if flow.changed else 'unchanged'})"
                    )
    except PortsideError as exc:
        raise _fail(exc) from None
    if as_json():
        emit(pushed)


@flow_app.command("validate")
def validate(
    file: Path = typer.Argument(..., exists=True, dir_okay=False), url: str = UrlOpt, api_key: str = KeyOpt
) -> None:
    """Check a flow file on the server without saving it (its agents must be registered)."""
    from portside import PortsideError

    definition, _ = read_flow_file(file)
    try:
        with _client(url, api_key) as c:
            result = c.flows.validate(definition)
    except PortsideError as exc:
        raise _fail(exc) from None
    emit(result, f"[green]valid[/green]: {result['flow_id']} ({result['nodes']} nodes)")


@flow_app.command("list")
def list_flows(as_json: bool = JsonOpt, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """List flows."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            flows = c.flows.list()
    except PortsideError as exc:
        raise _fail(exc) from None
    rows = [(f.flow_id, f.name, f.version, f.revision, len(f.nodes), f.source or "") for f in flows]
    emit(flows, fit_table(("flow_id", "name", "version", "revision", "nodes", "source"), rows, keep=("flow_id",)))


@flow_app.command("get")
def get_flow(
    flow_id: str, version: int = typer.Option(None, "--version"), url: str = UrlOpt, api_key: str = KeyOpt
) -> None:
    """Print a flow definition."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            flow = c.flows.get(flow_id, version=version)
    except PortsideError as exc:
        raise _fail(exc) from None
    emit(flow)


@flow_app.command("executions")
def executions(
    flow_id: str = typer.Option(None, "--flow"),
    status: str = typer.Option(None, "--status"),
    limit: int = typer.Option(20, "--limit"),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List executions, newest first."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            page = c.executions.list(flow_id=flow_id, status=status, limit=limit)
    except PortsideError as exc:
        raise _fail(exc) from None
    rows = [
        (
            e.execution_id,
            e.flow_id,
            Text(e.status, style=STATUS_STYLE.get(e.status, "")),
            e.created_at or "",
            f"{e.duration_ms:.0f}" if e.duration_ms is not None else "",
            (e.error_message or "")[:80],
        )
        for e in page.items
    ]
    columns = ("execution_id", "flow", "status", "created", "ms", "error")
    emit(page, fit_table(columns, rows, keep=("execution_id",)))


@flow_app.command("status")
def status(
    execution_id: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Follow until it finishes."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Show an execution's nodes (live with --follow)."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            live = err.is_terminal and not as_json()
            execution = watch(c, execution_id, live=live) if follow else c.executions.get(execution_id)
    except PortsideError as exc:
        raise _fail(exc) from None
    if as_json():
        emit(execution)
        return
    console.print(node_table(execution))
    console.print(Text(execution.status, style=STATUS_STYLE.get(execution.status, "")))


@flow_app.command("cancel")
def cancel(execution_id: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Cancel an execution."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            execution = c.executions.cancel(execution_id)
    except PortsideError as exc:
        raise _fail(exc) from None
    emit(
        execution,
        f"{execution.execution_id}: {execution.status}{' (cancelling)' if execution.status == 'running' else ''}",
    )


@agent_app.command("list")
def list_agents(as_json: bool = JsonOpt, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """List registered agents."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            agents = c.agents.list()
    except PortsideError as exc:
        raise _fail(exc) from None
    rows = [
        (a.agent_id, a.name, a.type, a.backing, a.endpoint or a.capability or "", "yes" if a.is_active else "no")
        for a in agents
    ]
    emit(agents, fit_table(("agent_id", "name", "type", "backing", "target", "active"), rows, keep=("agent_id",)))


@agent_app.command("create")
def create_agent(
    name: str = typer.Option(..., "--name"),
    agent_id: str = typer.Option(None, "--id"),
    endpoint: str = typer.Option(None, "--endpoint", help="Base URL; Portside POSTs to <endpoint>/execute."),
    capability: str = typer.Option(None, "--capability", help="Serve the agent by this worker capability."),
    type: str = typer.Option("processor", "--type"),
    description: str = typer.Option("", "--description"),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Register an agent."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            agent = c.agents.create(
                id=agent_id, name=name, endpoint=endpoint, capability=capability, type=type, description=description
            )
    except PortsideError as exc:
        raise _fail(exc) from None
    emit(agent, agent.agent_id)


@agent_app.command("delete")
def delete_agent(agent_id: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Delete an agent."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            c.agents.delete(agent_id)
    except PortsideError as exc:
        raise _fail(exc) from None
    emit({"deleted": agent_id}, f"deleted {agent_id}")
