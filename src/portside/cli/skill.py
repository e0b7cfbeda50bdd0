"""``portside skill ...``: the skill lifecycle from the shell (candidates → evaluation → releases)."""

from __future__ import annotations

import json
from typing import Any

import typer

from portside.cli.common import KeyOpt, UrlOpt, as_json, console, emit, err, fit_table
from portside.cli.common import client_from as _client
from portside.cli.common import exit_with as _fail

skill_app = typer.Typer(help="Skill candidates, evaluations, releases, rollbacks and runs.", no_args_is_help=True)

JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table (same as --output json).")


def _print_model(model: Any) -> None:
    emit(model)


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


@skill_app.command("candidates")
def candidates(
    skill_key: str = typer.Option(None, "--skill-key", "-k", help="Only this skill."),
    status: str = typer.Option(None, "--status", help="draft, evaluating, rejected, promoted_canary, ..."),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List skill candidates, newest first."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            page = c.skills.list_candidates(skill_key=skill_key, status=status, limit=limit)
    except PortsideError as exc:
        raise _fail(exc) from exc
    if as_json:
        _print_model(page)
        return
    rows = [
        (
            cand.id,
            cand.skill_key,
            cand.status,
            "-" if cand.latest_score is None else f"{cand.latest_score:g}",
            len(cand.source_execution_ids),
            _when(cand.created_at),
        )
        for cand in page.items
    ]
    console.print(fit_table(("id", "skill_key", "status", "score", "executions", "created"), rows))
    err.print(f"{len(page.items)} of {page.total}")


@skill_app.command("create")
def create(
    skill_key: str = typer.Argument(..., help="The skill's key, e.g. etl-csv-loader."),
    execution: list[str] = typer.Option(
        ..., "--exec", "-e", help="Source execution id (see `portside sandbox history SBX`); repeat for several."
    ),
    scenario: str = typer.Option(None, "--scenario", help="Scenario key."),
    payload_ref: str = typer.Option(None, "--payload-ref", help="Stored payload (sha256-...) or external ref."),
    summary: str = typer.Option(None, "--summary"),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Create a candidate from executions; prints its id."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            cand = c.skills.create_candidate(
                skill_key=skill_key,
                source_execution_ids=execution,
                scenario_key=scenario,
                payload_ref=payload_ref,
                summary=summary,
            )
    except PortsideError as exc:
        raise _fail(exc) from exc
    emit(cand, cand.id)
    err.print(f"status {cand.status}, {len(cand.source_execution_ids)} execution(s)")


@skill_app.command("evaluate")
def evaluate(
    candidate_id: str = typer.Argument(...),
    passed: bool = typer.Option(
        None, "--passed/--failed", help="Record your own verdict (omit it with --benchmark to run on the server)."
    ),
    benchmark: str = typer.Option(None, "--benchmark", "-b", help="Benchmark id."),
    score: float = typer.Option(None, "--score", help="Score in 0..1."),
    report: str = typer.Option(None, "--report", help="Evaluation report (kept for audit)."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Record an evaluation, or with only --benchmark let the server run the benchmark."""
    from portside import PortsideError

    if passed is None and not benchmark:
        raise _fail(ValueError("give --passed or --failed, or --benchmark to run a stored benchmark on the server"))
    try:
        with _client(url, api_key) as c:
            if passed is None:
                ev = c.skills.run_evaluation(candidate_id, benchmark_id=benchmark)
            else:
                ev = c.skills.evaluate(candidate_id, passed=passed, score=score, benchmark_id=benchmark, report=report)
    except PortsideError as exc:
        raise _fail(exc) from exc
    if as_json():
        emit(ev)
        return
    verdict = "[green]passed[/green]" if ev.passed else "[red]failed[/red]"
    score_text = "" if ev.score is None else f" score {ev.score:g}"
    console.print(f"{ev.id} {verdict}{score_text}" + (f" — {ev.report}" if ev.report else ""))


@skill_app.command("promote")
def promote(
    candidate_id: str = typer.Argument(...),
    stage: str = typer.Option("canary", "--stage", "-s", help="canary or stable."),
    canary_share: float = typer.Option(
        None, "--canary-share", help="canary only: share of runs it serves (the replaced stable serves the rest)."
    ),
    change_summary: str = typer.Option(None, "--summary", help="What changed."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Release a candidate whose latest evaluation passed; prints the release id."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            rel = c.skills.promote(candidate_id, stage=stage, canary_share=canary_share, change_summary=change_summary)
    except PortsideError as exc:
        raise _fail(exc) from exc
    emit(rel, rel.id)
    err.print(f"{rel.skill_key} v{rel.version} {rel.stage}")


@skill_app.command("releases")
def releases(
    skill_key: str = typer.Option(None, "--skill-key", "-k", help="Only this skill."),
    active_only: bool = typer.Option(False, "--active", help="Only active releases."),
    stage: str = typer.Option(None, "--stage", help="canary or stable."),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List releases (per skill, newest version first); --json shows candidates and rollback links."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            page = c.skills.list_releases(skill_key=skill_key, active_only=active_only, stage=stage, limit=limit)
    except PortsideError as exc:
        raise _fail(exc) from exc
    if as_json:
        _print_model(page)
        return
    rows = [
        (
            rel.id,
            rel.skill_key,
            rel.version,
            rel.stage,
            "yes" if rel.is_active else "",
            rel.release_mode,
            _when(rel.promoted_at),
        )
        for rel in page.items
    ]
    console.print(fit_table(("id", "skill_key", "version", "stage", "active", "mode", "promoted"), rows))
    err.print(f"{len(page.items)} of {page.total}")


@skill_app.command("rollback")
def rollback(
    release_id: str = typer.Argument(..., help="The active release."), url: str = UrlOpt, api_key: str = KeyOpt
) -> None:
    """Roll back an active release to the version it replaced; prints the new release id."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            rel = c.skills.rollback(release_id)
    except PortsideError as exc:
        raise _fail(exc) from exc
    emit(rel, rel.id)
    err.print(f"{rel.skill_key} v{rel.version} {rel.stage} (rollback of {rel.rollback_of})")


@skill_app.command("run")
def run(
    skill_key: str = typer.Argument(...),
    input_json: str = typer.Option(None, "--input", "-i", help="JSON input for the skill."),
    stage: str = typer.Option(None, "--stage", help="Force canary or stable."),
    sandbox_id: str = typer.Option(None, "--sandbox", help="Run in this sandbox (default: a fresh one)."),
    timeout: int = typer.Option(60, "--timeout"),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Run the active release of a skill and print its result as JSON."""
    from portside import PortsideError

    try:
        value = json.loads(input_json) if input_json is not None else None
    except ValueError as exc:
        raise _fail(ValueError(f"--input is not valid JSON: {exc}")) from exc
    try:
        with _client(url, api_key) as c:
            res = c.skills.run(skill_key, input=value, stage=stage, sandbox_id=sandbox_id, timeout=timeout)
    except PortsideError as exc:
        raise _fail(exc) from exc
    _print_model(res)
    if not res.success:
        raise typer.Exit(2)


@skill_app.command("health")
def health(release_id: str = typer.Argument(...), url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Health of a release against its predecessor (exit 3 when a rollback is advised)."""
    from portside import PortsideError

    try:
        with _client(url, api_key) as c:
            report = c.skills.health(release_id)
    except PortsideError as exc:
        raise _fail(exc) from exc
    _print_model(report)
    if report.should_rollback:
        raise typer.Exit(3)
