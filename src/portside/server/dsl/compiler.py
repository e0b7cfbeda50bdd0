"""Compile DSL source to agent definitions and render the SDK's compile response."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portside.server.dsl.builder import Builder
from portside.server.dsl.errors import DslError, DslValidationError
from portside.server.dsl.model import AgentDefinition, CompileResult, DslDiagnostic, DslProgram, Span
from portside.server.dsl.parser import parse_tree

MAX_SOURCE_CHARS = 1_000_000


def parse_program(source: str) -> DslProgram:
    """Parse a whole DSL file; raise :class:`DslSyntaxError` / :class:`DslValidationError`."""
    if len(source) > MAX_SOURCE_CHARS:
        raise DslValidationError(f"source is longer than {MAX_SOURCE_CHARS} characters", line=1, column=1)
    tree = parse_tree(source)
    try:
        program = Builder(source).program(tree)
    except RecursionError:
        raise DslValidationError("expressions are nested too deeply", line=1, column=1) from None
    _check_unique(program)
    return program


def _check_unique(program: DslProgram) -> None:
    def dup(kind: str, items: list[tuple[str, Span]]) -> None:
        seen: set[str] = set()
        for name, span in items:
            if name in seen:
                raise DslValidationError(f"duplicate {kind} '{name}'", line=span.line, column=span.column)
            seen.add(name)

    dup("agent", [(a.name, a.span) for a in program.agents])
    for agent in program.agents:
        dup(f"policy in agent '{agent.name}'", [(p.name, p.span) for p in agent.policies])
        dup(f"function in agent '{agent.name}'", [(f.name, f.span) for f in agent.functions])
    dup("policy", [(p.name, p.span) for p in program.policies])
    dup("function", [(f.name, f.span) for f in program.functions])
    dup("type", [(t.name, t.span) for t in program.types])
    for kind, named in (
        ("schedule", program.schedules),
        ("channel", program.channels),
        ("memory", program.memories),
        ("webhook", program.webhooks),
    ):
        dup(kind, [(x.name, x.span) for x in named])


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def agent_definition(program: DslProgram, agent_name: str | None = None) -> AgentDefinition:
    """The agent called ``agent_name`` (default: the first) with the file's metadata and shared items."""
    if not program.agents:
        raise DslValidationError("the source defines no agent", line=1, column=1)
    if agent_name is None:
        chosen = program.agents[0]
    else:
        found = [a for a in program.agents if a.name == agent_name]
        if not found:
            names = ", ".join(a.name for a in program.agents)
            raise DslValidationError(f"no agent named '{agent_name}' (defined: {names})", line=1, column=1)
        chosen = found[0]
    meta = program.metadata
    tags = meta.get("tags")
    return AgentDefinition(
        **chosen.model_dump(),
        version=_text(meta.get("version")),
        author=_text(meta.get("author")),
        description=_text(meta.get("description")),
        license=_text(meta.get("license")),
        tags=[str(t) for t in tags] if isinstance(tags, list) else [],
        metadata=dict(meta),
        shared_policies=program.policies,
        shared_functions=program.functions,
        types=program.types,
        schedules=program.schedules,
        channels=program.channels,
        memories=program.memories,
        webhooks=program.webhooks,
    )


def compile_dsl(source: str, *, agent_name: str | None = None) -> AgentDefinition:
    """Compile DSL source to one agent (``agent_name``, or the first agent in the file).

    Raises :class:`DslSyntaxError` (code ``dsl_syntax_error``) when the source does not
    parse and :class:`DslValidationError` (code ``dsl_invalid``) when it parses but is
    not a usable agent; both carry ``line``, ``column`` and ``expected``.
    """
    return agent_definition(parse_program(source), agent_name)


def check_dsl(source: str, *, agent_name: str | None = None) -> CompileResult:
    """Like :func:`compile_dsl` but reports problems as diagnostics instead of raising."""
    try:
        program = parse_program(source)
        agent = agent_definition(program, agent_name)
    except DslError as exc:
        return CompileResult(success=False, errors=[exc.diagnostic])
    warnings: list[DslDiagnostic] = []
    if agent_name is None and len(program.agents) > 1:
        others = ", ".join(a.name for a in program.agents[1:])
        warnings.append(
            DslDiagnostic(
                code="dsl_multiple_agents",
                message=f"the source defines several agents; compiled '{agent.name}', ignored: {others}",
                line=agent.span.line,
                column=agent.span.column,
                severity="warning",
            )
        )
    for key in ("version", "author", "description"):
        if key not in program.metadata:
            warnings.append(
                DslDiagnostic(
                    code="dsl_missing_metadata",
                    message=f"metadata has no '{key}'",
                    line=1,
                    column=1,
                    severity="warning",
                )
            )
    return CompileResult(success=True, agent=agent, warnings=warnings)


def render_compile_response(result: CompileResult, *, agent_id: str | None, compiled_at: datetime) -> dict[str, Any]:
    """The body of ``POST /dsl/compile`` as the Symbiont SDK's ``DslCompileResponse`` reads it.

    SDK fields: ``success``, ``agent_id``, ``errors`` / ``warnings`` (lists of strings, here
    ``"line L, column C: message (expected one of: ...)"``) and ``compiled_at``. Extra fields,
    ignored by the SDK: ``diagnostics`` (structured errors and warnings) and ``agent`` (the
    compiled definition as JSON, ``null`` on failure).
    """
    return {
        "success": result.success,
        "agent_id": agent_id if result.success else None,
        "errors": [d.render() for d in result.errors],
        "warnings": [d.render() for d in result.warnings],
        "compiled_at": compiled_at.isoformat(),
        "diagnostics": [d.model_dump(mode="json") for d in [*result.errors, *result.warnings]],
        "agent": result.agent.model_dump(mode="json") if result.agent is not None else None,
    }
