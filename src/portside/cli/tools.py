"""``portside tool ...``: submit tools for review, follow them, decide, sign, verify signatures offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from portside.cli.common import KeyOpt, UrlOpt, as_json, console, emit, err, print_json
from portside.cli.common import client_from as _client
from portside.cli.common import exit_with as _fail

tool_app = typer.Typer(help="Tool review: submit, status, decide, sign and verify (SchemaPin).", no_args_is_help=True)

JsonOpt = typer.Option(False, "--json", help="Print JSON (same as --output json).")


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {path}: {exc}") from exc


def _show_session(session: Any, analysis: Any | None) -> None:
    console.print(
        f"review [bold]{session.review_id}[/bold]  tool {session.tool.get('name')!r}  "
        f"status [bold]{session.status}[/bold]"
    )
    if session.risk_score is not None:
        console.print(f"risk score {session.risk_score}/100  ({session.recommendation})")
    if session.decision:
        console.print(f"decision {session.decision} by {session.reviewer_id}: {session.decision_reason or ''}")
    if analysis is not None and analysis.findings:
        table = Table("severity", "location", "title", "evidence")
        for f in analysis.findings[:20]:
            table.add_row(f.severity, f.location or "", f.title, (f.evidence or "")[:80])
        console.print(table)


@tool_app.command("submit")
def submit(
    file: Path = typer.Argument(..., help="Tool definition (JSON: name, description, schema/inputSchema, provider)."),
    source: Path = typer.Option(None, "--source", help="The tool's Python source, scanned too."),
    submitted_by: str = typer.Option(None, "--by", help="Submitter label (default: your key's owner)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the automated analysis."),
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Submit a tool for review; prints the session, its risk score and findings."""
    from portside import PortsideError

    tool = _load_json(file)
    code = source.read_text(encoding="utf-8") if source else None
    try:
        with _client(url, api_key) as c:
            session = c.reviews.submit(tool, source=code, submitted_by=submitted_by)
            analysis = None
            if wait:
                session = c.reviews.wait(session.review_id, timeout=120)
                if session.state.analysis_id:
                    analysis = c.reviews.analysis(session.review_id)
    except PortsideError as exc:
        raise _fail(exc) from exc
    if as_json:
        out = {"session": session.model_dump(), "analysis": analysis.model_dump() if analysis else None}
        print_json(out)
        return
    _show_session(session, analysis)


@tool_app.command("status")
def status(review_id: str, as_json: bool = JsonOpt, url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Show a review session and its analysis."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            session = c.reviews.get(review_id)
            analysis = c.reviews.analysis(review_id) if session.state.analysis_id else None
    except PortsideError as exc:
        raise _fail(exc) from exc
    if as_json:
        out = {"session": session.model_dump(), "analysis": analysis.model_dump() if analysis else None}
        print_json(out)
        return
    _show_session(session, analysis)


@tool_app.command("decide")
def decide(
    review_id: str,
    decision: str = typer.Argument(..., help="approve or reject"),
    reason: str = typer.Option(None, "--reason", "-r"),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Record a human decision (needs a key with the 'review' scope)."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            session = c.reviews.decide(review_id, decision, reason=reason)
    except PortsideError as exc:
        raise _fail(exc) from exc
    emit(session, f"{session.review_id}: {session.status}")


@tool_app.command("sign")
def sign(
    review_id: str,
    save: Path = typer.Option(None, "--save", "-f", help="Write the signed tool JSON to this file."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Sign an approved tool and print (or save) the signed-tool document."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            signed = c.reviews.sign(review_id)
    except PortsideError as exc:
        raise _fail(exc) from exc
    text = json.dumps(signed.model_dump(), indent=2, ensure_ascii=False)
    if save:
        save.write_text(text + "\n", encoding="utf-8")
        err.print(f"signed by {signed.key_fingerprint}; saved to {save}")
    else:
        sys.stdout.write(text + "\n")


@tool_app.command("verify")
def verify(
    file: Path = typer.Argument(..., help="A signed-tool JSON document (from 'portside tool sign' or the API)."),
    public_key: Path = typer.Option(None, "--public-key", help="PEM public key to verify with."),
    well_known: Path = typer.Option(None, "--well-known", help="A saved /.well-known/schemapin.json."),
    fingerprint: str = typer.Option(None, "--fingerprint", help="Pin the key: expected 'sha256:...'."),
) -> None:
    """Verify a signed tool offline (exit 0 when valid, 1 otherwise)."""
    from portside.server.reviews.offline import verify_signed_document

    doc = _load_json(file)
    if not isinstance(doc, dict):
        raise _fail("the file is not a JSON object")
    pem = public_key.read_text(encoding="utf-8") if public_key else None
    wk = _load_json(well_known) if well_known else None
    result = verify_signed_document(doc, public_key_pem=pem, well_known=wk, fingerprint=fingerprint)
    verdict = {
        "valid": result.valid,
        "reason": result.reason,
        "fingerprint": result.fingerprint,
        "pinned": result.pinned,
    }
    if not result.valid:
        if as_json():
            print_json(verdict)
        err.print(f"[red]INVALID[/red]: {result.reason}")
        raise typer.Exit(1)
    if as_json():
        print_json(verdict)
        return
    console.print(f"[green]VALID[/green]: {doc['tool'].get('name')!r} signed by {result.fingerprint}")
    if not result.pinned:
        err.print("note: checked with the key inside the file; pin it with --public-key, --well-known or --fingerprint")
