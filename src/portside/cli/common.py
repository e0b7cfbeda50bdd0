"""What every ``portside`` command group shares: consoles, the URL/key/output options, the client,
tables that fit the terminal, and error exits."""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

console = Console()
err = Console(stderr=True)

UrlOpt = typer.Option(None, "--url", envvar="PORTSIDE_URL", help="Server URL.")
KeyOpt = typer.Option(None, "--api-key", envvar="PORTSIDE_API_KEY", help="API key.")

OUTPUT_FORMATS = ("table", "json")
#: The ``--output`` of the running command.
_output: ContextVar[str] = ContextVar("portside_output", default="table")

NO_KEY_HINT = (
    "no API key: set PORTSIDE_API_KEY or pass --api-key "
    "(run next to the server's data dir and the saved .portside/admin_key is used)"
)


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


# ---------------------------------------------------------------- errors


def _hints(exc: Exception) -> list[str]:
    """Extra lines for an error: the valid choices the server listed, why a key was refused."""
    from portside import AuthenticationError

    lines: list[str] = []
    details = getattr(exc, "details", None)
    if isinstance(details, dict):
        for name in ("allowed", "available", "valid"):
            choices = details.get(name)
            if isinstance(choices, list) and choices:
                lines.append(f"valid: {', '.join(str(c) for c in choices)}")
    if isinstance(exc, AuthenticationError) and "missing" not in str(exc):
        lines.append("the API key was refused: check PORTSIDE_API_KEY or --api-key")
    return lines


def error_text(exc: Exception | str) -> str:
    """One line for an error; a missing key says which variable or flag to set."""
    from portside import AuthenticationError

    if isinstance(exc, AuthenticationError) and "missing" in str(exc):
        return NO_KEY_HINT
    return str(exc)


def exit_with(exc: Exception | str) -> typer.Exit:
    """Print an error (markup-escaped, with the valid choices when the server listed them) and
    return the non-zero exit to raise."""
    err.print(f"[red]error:[/red] {escape(error_text(exc))}")
    if isinstance(exc, Exception):
        for line in _hints(exc):
            err.print(f"  {escape(line)}")
    return typer.Exit(1)


# ---------------------------------------------------------------- --output


def output_format() -> str:
    """``table`` or ``json``: the ``--output`` of the running command."""
    return _output.get()


def as_json() -> bool:
    """True when the running command was given ``--output json`` (or ``--json``)."""
    return _output.get() == "json"


def jsonable(data: Any) -> Any:
    """Models, pages and lists of models as plain JSON values."""
    if hasattr(data, "model_dump"):
        return data.model_dump(mode="json")
    if isinstance(data, dict):
        return {str(k): jsonable(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [jsonable(v) for v in data]
    return data


def print_json(data: Any) -> None:
    """Print ``data`` as one JSON document on standard output."""
    typer.echo(json.dumps(jsonable(data), indent=2, default=str, ensure_ascii=False))


def emit(data: Any, human: Callable[[], object] | RenderableType | str | None = None) -> None:
    """Print a command's result: JSON with ``--output json``, else ``human`` (a callable, a
    renderable or a line; default: the JSON)."""
    if as_json() or human is None:
        print_json(data)
    elif callable(human):
        human()
    else:
        console.print(human)


def report(data: Any, message: str) -> None:
    """An action's outcome: JSON on stdout with ``--output json``, else ``message`` on stderr."""
    if as_json():
        print_json(data)
    else:
        err.print(message)


def _validate_output(value: str) -> str:
    if value not in OUTPUT_FORMATS:
        raise typer.BadParameter(f"use one of: {', '.join(OUTPUT_FORMATS)}")
    return value


def _output_param() -> inspect.Parameter:
    option = typer.Option(
        "table", "--output", "-o", help="Output format: table or json.", callback=_validate_output, show_default=True
    )
    return inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, default=option, annotation=str)


def with_output(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command ``--output json|table``; an existing ``--json`` flag (``as_json``) is its alias."""
    sig = inspect.signature(fn, eval_str=True)
    if "output" in sig.parameters:
        return fn
    has_json_flag = "as_json" in sig.parameters

    @functools.wraps(fn)
    def wrapper(*args: Any, output: str = "table", **kwargs: Any) -> Any:
        if has_json_flag:
            if kwargs.get("as_json"):
                output = "json"
            kwargs["as_json"] = output == "json"
        token = _output.set(output)
        try:
            return fn(*args, **kwargs)
        finally:
            _output.reset(token)

    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), _output_param()])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**getattr(fn, "__annotations__", {}), "output": str}
    return wrapper


def add_output_option(app: typer.Typer, *, skip: Iterable[str] = ()) -> None:
    """Add ``--output`` to every command of ``app`` and its sub-apps (except the names in ``skip``)."""
    skipped = set(skip)
    for info in app.registered_commands:
        name = info.name or (info.callback.__name__ if info.callback else "")
        if info.callback is not None and name not in skipped:
            info.callback = with_output(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            add_output_option(group.typer_instance, skip=skip)


# ---------------------------------------------------------------- tables


def when(value: Any) -> str:
    """A datetime as ISO seconds, ``-`` for none."""
    if value is None or value == "":
        return "-"
    if hasattr(value, "isoformat"):
        return str(value.isoformat(timespec="seconds"))
    return str(value)


def _cell(value: Any) -> Text | RenderableType:
    if isinstance(value, (Text, Table)):
        return value
    return Text("" if value is None else str(value))


def _natural(value: Any) -> int:
    if isinstance(value, Text):
        value = value.plain
    lines = str("" if value is None else value).splitlines() or [""]
    return max(len(line) for line in lines)


def _longest_word(value: Any) -> int:
    if isinstance(value, Text):
        value = value.plain
    return max((len(w) for w in str("" if value is None else value).split()), default=0)


#: Longer words may be folded when a table has to shrink; shorter ones wrap whole.
_MAX_WORD = 24
#: Characters between two columns (padding, separator, padding).
_GAP = 3


def column_widths(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], keep: set[str], limit: int
) -> list[int] | None:
    """Widths that fit ``limit``: ``keep`` columns at their full width, the others shrunk (largest first, never
    below their header or longest word, up to 24 characters); None when even that does not fit."""
    natural = [max([len(c), *(_natural(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    words = [max([len(c), *(_longest_word(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    floor = [n if c in keep else min(n, w, _MAX_WORD) for c, n, w in zip(columns, natural, words, strict=True)]
    widths = list(natural)
    budget = limit - _GAP * (len(columns) - 1)
    if sum(floor) > budget:
        return None
    while sum(widths) > budget:
        i = max((j for j in range(len(widths)) if widths[j] > floor[j]), key=lambda j: widths[j])
        widths[i] -= min(widths[i] - floor[i], sum(widths) - budget, max(1, widths[i] // 4))
    return widths


def fit_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    keep: Sequence[str] = ("id",),
    title: str | None = None,
    width: int | None = None,
) -> RenderableType:
    """A table that fits the terminal: the ``keep`` columns (ids) are never cut or wrapped, the others
    wrap. When even that is too wide, each row becomes a block of ``column  value`` lines."""
    rows = [list(r) for r in rows]
    keep_set = set(keep)
    widths = column_widths(columns, rows, keep_set, width or console.width)
    if widths is None:
        return stacked(columns, rows, title=title)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=title, title_justify="left", show_edge=False)
    for name, w in zip(columns, widths, strict=True):
        table.add_column(name, width=w, no_wrap=name in keep_set, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    return table


def stacked(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> RenderableType:
    """Rows as blocks of ``column  value`` lines (values wrap; nothing is cut)."""
    blocks: list[RenderableType] = [Text(title, style="italic")] if title else []
    label = max((len(c) for c in columns), default=0)
    for i, row in enumerate(rows):
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, min_width=label, style="bold")
        grid.add_column(overflow="fold")
        for name, value in zip(columns, row, strict=False):
            grid.add_row(name, _cell(value))
        if i:
            blocks.append(Text(""))
        blocks.append(grid)
    return Group(*blocks)
