"""``portside kb ...``: the knowledge base from the shell: add, search, context, ls, rm, and bulk ingest.

``kb ingest FOLDER`` walks a folder for text and Markdown files and sends them in batches; the server
chunks each file (Markdown along its headings) with overlapping windows and embeds the chunks. A file's
id is its path relative to the folder (plus ``--id-prefix``), so ingesting again replaces it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from portside.cli.common import KeyOpt, UrlOpt, as_json, emit, err, fit_table, report
from portside.cli.common import client_from as _client
from portside.cli.common import exit_with as _fail

kb_app = typer.Typer(help="Knowledge base: add, search, context, ls, rm, ingest.", no_args_is_help=True)

AgentOpt = typer.Option(None, "--agent", "-a", help="Agent the items belong to (default: none, shared).")
DEFAULT_SUFFIXES = (".md", ".markdown", ".mdx", ".txt", ".rst", ".text")
_MAX_ID = 200


def _parse_meta(pairs: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _fail(f"--meta expects key=value, got {pair!r}")
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value
    return meta


@kb_app.command("add")
def add(
    content: str = typer.Argument(None, help="The text; omit (or '-') to read standard input."),
    file: Path = typer.Option(None, "--file", "-f", exists=True, dir_okay=False, help="Read the text from a file."),
    item_id: str = typer.Option(None, "--id", help="Item id (an existing id is replaced)."),
    source: str = typer.Option(None, "--source", "-s", help="Where it comes from (default: the file name)."),
    source_type: str = typer.Option("document", "--type", "-t", help="document, code, api_reference, ..."),
    agent: str = AgentOpt,
    meta: list[str] = typer.Option([], "--meta", "-m", help="Metadata key=value (JSON values allowed); repeat."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Add one item."""
    from portside import PortsideError

    if file is not None:
        content = file.read_text(encoding="utf-8", errors="replace")
        source = source or file.name
    elif content is None or content == "-":
        content = sys.stdin.read()
    try:
        with _client(url, api_key) as c:
            item = c.knowledge.add(
                content, id=item_id, source=source, source_type=source_type, agent_id=agent, metadata=_parse_meta(meta)
            )
    except PortsideError as exc:
        raise _fail(exc) from exc
    emit(item, item.id)
    err.print(f"{'replaced' if item.replaced else 'added'}: {item.chunk_count} chunk(s)")


@kb_app.command("search")
def search(
    query: str,
    top_k: int = typer.Option(5, "--top-k", "-k", help="How many results."),
    agent: str = AgentOpt,
    source_type: list[str] = typer.Option([], "--type", "-t", help="Only these source types; repeat."),
    meta: list[str] = typer.Option([], "--meta", "-m", help="Only items with metadata key=value; repeat."),
    threshold: float = typer.Option(None, "--threshold", help="Minimum cosine similarity (server default 0.3)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Search by meaning; prints the best passage of each matching item."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            result = c.knowledge.search(
                query,
                top_k=top_k,
                agent_id=agent,
                source_types=source_type or None,
                filter=_parse_meta(meta) or None,
                threshold=threshold,
            )
    except PortsideError as exc:
        raise _fail(exc) from exc
    rows = []
    for hit in result.results:
        text = " ".join(hit.chunk.text.split())
        rows.append((f"{hit.score:.3f}", hit.item.id, hit.source, text[:160] + ("…" if len(text) > 160 else "")))
    emit(result, fit_table(("score", "id", "source", "passage"), rows))


@kb_app.command("context")
def context(
    query: str,
    max_items: int = typer.Option(5, "--max-items", help="Most passages."),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Token budget (server default 1024)."),
    agent: str = AgentOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Print RAG context for a query: the most relevant passages with their sources."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            ctx = c.knowledge.context(query, max_items=max_items, max_tokens=max_tokens, agent_id=agent)
    except PortsideError as exc:
        raise _fail(exc) from exc
    emit(ctx, lambda: sys.stdout.write(ctx.context + "\n"))
    err.print(f"{len(ctx.passages)} passage(s), {ctx.total_tokens}/{ctx.max_tokens} tokens")


@kb_app.command("ls")
def ls(
    agent: str = AgentOpt,
    limit: int = typer.Option(50, "--limit", help="Items per page."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List items."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            page = c.knowledge.list(agent_id=agent, limit=limit)
    except PortsideError as exc:
        raise _fail(exc) from exc
    rows = [(i.id, i.source or "", i.source_type, i.agent_id or "", i.chunk_count, i.updated_at) for i in page.items]
    emit(page, fit_table(("id", "source", "type", "agent", "chunks", "updated"), rows))
    if page.next_cursor and not as_json():
        err.print("(more items: use a larger --limit)")


@kb_app.command("rm")
def rm(item_id: str, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Delete an item."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            c.knowledge.delete(item_id)
    except PortsideError as exc:
        raise _fail(exc) from exc
    report({"deleted": item_id}, f"deleted {item_id}")


def _files(folder: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in suffixes:
            yield path


def file_id(prefix: str, rel: str) -> str:
    """The item id of a file: ``prefix + relative path``, shortened with a hash if over 200 characters."""
    full = prefix + rel
    if len(full) <= _MAX_ID:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:16]
    return full[: _MAX_ID - 17] + "~" + digest


@kb_app.command("ingest")
def ingest(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="Folder to ingest (recursively)."),
    suffix: list[str] = typer.Option(
        list(DEFAULT_SUFFIXES), "--suffix", help="File suffixes to take (default: text and Markdown); repeat."
    ),
    agent: str = AgentOpt,
    source_type: str = typer.Option("document", "--type", "-t", help="Source type of every file."),
    id_prefix: str = typer.Option("", "--id-prefix", help="Prefix of the item ids (ids are relative paths)."),
    chunk_size: int = typer.Option(None, "--chunk-size", help="Words per chunk (server default 160)."),
    overlap: int = typer.Option(None, "--overlap", help="Words shared by consecutive chunks (server default 32)."),
    batch_chars: int = typer.Option(48_000, "--batch-chars", help="Characters per request (about 0.5 s of work)."),
    max_file_chars: int = typer.Option(2_000_000, "--max-file-chars", help="Skip larger files."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Ingest a folder of text and Markdown files, with a progress bar."""
    from portside import PortsideError

    suffixes = tuple(s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffix)
    files = list(_files(folder, suffixes))
    if not files:
        raise _fail(f"no {', '.join(suffixes)} files under {folder}")
    total_bytes = sum(p.stat().st_size for p in files)
    done_files = chunks = skipped = 0
    started = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]ingest[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
    )
    batch: list[dict[str, Any]] = []
    batch_size = 0
    try:
        with _client(url, api_key) as c, progress:
            task = progress.add_task("", total=len(files))

            def flush() -> None:
                nonlocal batch, batch_size, done_files, chunks
                if not batch:
                    return
                items = c.knowledge.add_many(batch, timeout=600)
                chunks += sum(i.chunk_count for i in items)
                done_files += len(items)
                progress.update(task, advance=len(items), description=f"{chunks} chunks")
                batch, batch_size = [], 0

            for path in files:
                rel = path.relative_to(folder).as_posix()
                text = path.read_text(encoding="utf-8", errors="replace")
                if not text.strip() or len(text) > max_file_chars:
                    skipped += 1
                    progress.update(task, advance=1)
                    continue
                item: dict[str, Any] = {
                    "content": text,
                    "id": file_id(id_prefix, rel),
                    "source": rel,
                    "source_type": source_type,
                    "agent_id": agent,
                    "metadata": {"path": rel},
                    "chunk_size": chunk_size,
                    "chunk_overlap": overlap,
                }
                if batch and (batch_size + len(text) > batch_chars or len(batch) >= 64):
                    flush()
                batch.append(item)
                batch_size += len(text)
            flush()
    except PortsideError as exc:
        raise _fail(exc) from exc
    seconds = time.perf_counter() - started
    report(
        {"files": done_files, "bytes": total_bytes, "chunks": chunks, "skipped": skipped, "seconds": seconds},
        f"ingested {done_files} file(s) ({total_bytes / 1e6:.2f} MB) as {chunks} chunks in {seconds:.1f} s "
        f"({chunks / max(seconds, 1e-9):.0f} chunks/s)"
        + (f"; skipped {skipped} empty or too large" if skipped else ""),
    )
