"""The MCP tools and the MCP ``Server`` that serves them (transports: see ``transports.py``).

Every tool validates its parameters (a readable ``Validation Error: ...`` result, never a raw
exception), calls one :class:`~portside.server.mcp_server.backend.Backend` method, and answers
with JSON text whose long strings are truncated with an explicit ``...[truncated N chars]`` marker.
Sandbox tools called without ``sandbox_id`` use the MCP session's sandbox from the
:class:`~portside.server.mcp_server.cache.SandboxCache`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from pydantic import ValidationError

from portside._version import __version__
from portside.server import tracing
from portside.server.mcp_server import args as a
from portside.server.mcp_server.backend import JSON, Backend, BackendError
from portside.server.mcp_server.cache import SandboxCache
from portside.server.metrics.instruments import MCP_TOOL_CALLS, MCP_TOOL_DURATION

log = logging.getLogger("portside.mcp")

A = TypeVar("A", bound=a.Args)
Resolver = Callable[[ServerRequestContext[Any, Any]], Awaitable[tuple[Backend, str]]]
"""Maps a request to (backend acting as the caller, session key of the sandbox cache)."""

INSTRUCTIONS = (
    "Portside runs code in isolated sandboxes and turns proven executions into versioned skills. "
    "execute_python / execute_shell without sandbox_id use this session's own sandbox (created on first use; "
    "Python state persists between calls). Every execution returns an execution_id and is kept in the history "
    "(get_execution_history, annotate_execution). Skill lifecycle: create_skill_candidate from execution ids → "
    "evaluate_skill_candidate (or run_skill_evaluation against a stored benchmark) → promote_skill_candidate "
    "(canary, then stable) → rollback_skill_release if needed; run_skill runs the active release."
)

#: Friendly status names accepted by list_skill_candidates (the seed's vocabulary → the wire's).
STATUS_ALIASES = {"pending": "draft", "evaluated": "evaluating", "passed": "evaluating", "failed": "rejected"}


class ToolInputError(Exception):
    """The call cannot run as asked (reported as a ``Validation Error``)."""


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters plus a marker saying how many were dropped."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n...[truncated {len(text) - limit} chars]"


def shrink(value: Any, limit: int) -> Any:
    """A copy of a JSON value with every string longer than ``limit`` truncated."""
    if isinstance(value, str):
        return truncate(value, limit)
    if isinstance(value, dict):
        return {k: shrink(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [shrink(v, limit) for v in value]
    return value


def render(result: JSON, limit: int) -> str:
    """The tool's text answer: JSON with long strings truncated, and the whole capped as well."""
    text = json.dumps(shrink(result, limit), indent=2, ensure_ascii=False, default=str)
    return truncate(text, max(2 * limit, 4000))


@dataclass
class Call:
    """One tool call: who (backend), which session, and the session sandboxes."""

    backend: Backend
    session_key: str
    cache: SandboxCache


Handler = Callable[[Call, Any], Awaitable[JSON]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    params: type[a.Args]
    handler: Handler
    scope: str = "write"
    read_only: bool = False
    destructive: bool = False

    def listing(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            description=self.description,
            input_schema=a.input_schema(self.params),
            annotations=types.ToolAnnotations(
                read_only_hint=self.read_only, destructive_hint=self.destructive, open_world_hint=False
            ),
        )


# ---------------------------------------------------------------- session sandboxes


async def _sandbox(call: Call, explicit: str | None, *, create: bool) -> str:
    if explicit:
        return explicit
    if create:
        return await call.cache.get_or_create(call.session_key, call.backend)
    found = call.cache.get(call.session_key)
    if found is None:
        raise ToolInputError(
            "this MCP session has no sandbox yet: pass sandbox_id, or run execute_python/execute_shell first"
        )
    return found


async def _in_sandbox(
    call: Call, explicit: str | None, fn: Callable[[str], Awaitable[JSON]], *, create: bool = True
) -> JSON:
    """Run ``fn`` in the given or session sandbox; a vanished session sandbox is replaced once."""
    sid = await _sandbox(call, explicit, create=create)
    try:
        result = await fn(sid)
    except Exception as exc:
        err = call.backend.error_of(exc)
        if explicit or err is None or not err.sandbox_gone:
            raise
        call.cache.forget(call.session_key, sid)
        if not create:
            raise BackendError(
                err.code,
                f"this session's sandbox {sid} is gone ({err.message}); the next execute_* call creates a new one",
                err.status,
                err.details,
            ) from exc
        log.info("session sandbox %s is gone (%s); creating a new one", sid, err.code)
        sid = await call.cache.get_or_create(call.session_key, call.backend)
        result = await fn(sid)
    return {"sandbox_id": sid, **result}


def _python_view(r: JSON) -> JSON:
    data = r.get("data") or {}
    out = data.get("output") if isinstance(data, dict) else None
    view: JSON = {
        "execution_id": r.get("execution_id"),
        "success": r.get("success"),
        "output": r.get("output", ""),
        "error": r.get("error"),
    }
    if isinstance(out, dict):
        if out.get("text"):
            view["result"] = out["text"]
        if out.get("images"):
            view["images"] = f"{len(out['images'])} image(s) not shown"
    view["execution_time_ms"] = r.get("execution_time_ms")
    return view


def _shell_view(r: JSON) -> JSON:
    keys = ("execution_id", "success", "exit_code", "output", "error", "execution_time_ms")
    return {k: r.get(k) for k in keys}


# ---------------------------------------------------------------- sandbox tools


async def execute_python(call: Call, p: a.ExecutePython) -> JSON:
    async def run(sid: str) -> JSON:
        res = await call.backend.exec_python(sid, p.code, timeout=p.timeout, description=p.description, tags=p.tags)
        return _python_view(res)

    return await _in_sandbox(call, p.sandbox_id, run)


async def execute_shell(call: Call, p: a.ExecuteShell) -> JSON:
    async def run(sid: str) -> JSON:
        res = await call.backend.exec_shell(
            sid, p.command, cwd=p.cwd, timeout=p.timeout, description=p.description, tags=p.tags
        )
        return _shell_view(res)

    return await _in_sandbox(call, p.sandbox_id, run)


async def read_file(call: Call, p: a.ReadFile) -> JSON:
    return await _in_sandbox(call, p.sandbox_id, lambda sid: call.backend.read_file(sid, p.path), create=False)


async def write_file(call: Call, p: a.WriteFile) -> JSON:
    return await _in_sandbox(call, p.sandbox_id, lambda sid: call.backend.write_file(sid, p.path, p.content))


async def list_files(call: Call, p: a.ListFiles) -> JSON:
    return await _in_sandbox(call, p.sandbox_id, lambda sid: call.backend.list_files(sid, p.path), create=False)


async def get_execution_history(call: Call, p: a.ExecutionHistory) -> JSON:
    query = p.model_dump(exclude={"sandbox_id"}, exclude_none=True)
    return await _in_sandbox(call, p.sandbox_id, lambda sid: call.backend.history(sid, query), create=False)


async def get_execution(call: Call, p: a.GetExecution) -> JSON:
    return await _in_sandbox(
        call, p.sandbox_id, lambda sid: call.backend.get_execution(sid, p.execution_id), create=False
    )


async def get_last_execution(call: Call, p: a.LastExecution) -> JSON:
    return await _in_sandbox(
        call, p.sandbox_id, lambda sid: call.backend.last_execution(sid, p.exec_type), create=False
    )


async def annotate_execution(call: Call, p: a.AnnotateExecution) -> JSON:
    if p.description is None and p.tags is None and p.notes is None:
        raise ToolInputError("give at least one of description, tags or notes")
    return await _in_sandbox(
        call,
        p.sandbox_id,
        lambda sid: call.backend.annotate(sid, p.execution_id, description=p.description, tags=p.tags, notes=p.notes),
        create=False,
    )


# ---------------------------------------------------------------- skill tools


async def create_skill_candidate(call: Call, p: a.CreateSkillCandidate) -> JSON:
    return await call.backend.create_candidate(p.model_dump(exclude_none=True))


async def evaluate_skill_candidate(call: Call, p: a.EvaluateSkillCandidate) -> JSON:
    return await call.backend.evaluate_candidate(p.candidate_id, p.model_dump(exclude={"candidate_id"}))


async def run_skill_evaluation(call: Call, p: a.RunSkillEvaluation) -> JSON:
    return await call.backend.run_evaluation(p.candidate_id, p.benchmark_id)


async def promote_skill_candidate(call: Call, p: a.PromoteSkillCandidate) -> JSON:
    return await call.backend.promote(
        p.candidate_id, stage=p.stage, canary_share=p.canary_share, change_summary=p.change_summary
    )


async def list_skill_candidates(call: Call, p: a.ListSkillCandidates) -> JSON:
    status = STATUS_ALIASES.get(p.status, p.status) if p.status else None
    return await call.backend.list_candidates(status=status, skill_key=p.skill_key, limit=p.limit, offset=p.offset)


async def list_skill_releases(call: Call, p: a.ListSkillReleases) -> JSON:
    return await call.backend.list_releases(
        skill_key=p.skill_key, active_only=p.active_only, stage=p.stage, limit=p.limit, offset=p.offset
    )


async def rollback_skill_release(call: Call, p: a.RollbackSkillRelease) -> JSON:
    return await call.backend.rollback(p.release_id)


async def run_skill(call: Call, p: a.RunSkill) -> JSON:
    return await call.backend.run_skill(
        p.skill_key, input=p.input, sandbox_id=p.sandbox_id, stage=p.stage, timeout=p.timeout
    )


async def get_release_health(call: Call, p: a.GetReleaseHealth) -> JSON:
    return await call.backend.release_health(p.release_id)


TOOLS: tuple[Tool, ...] = (
    Tool(
        "execute_python",
        "Run Python code in a sandbox (IPython kernel: state persists between calls). Returns execution_id, "
        "success, output (stdout), result (value of the last expression) and error.",
        a.ExecutePython,
        execute_python,
        destructive=True,
    ),
    Tool(
        "execute_shell",
        "Run a shell command in a sandbox workspace. Returns execution_id, success, exit_code, output and error.",
        a.ExecuteShell,
        execute_shell,
        destructive=True,
    ),
    Tool(
        "read_file", "Read a UTF-8 text file from a sandbox workspace.", a.ReadFile, read_file, "read", read_only=True
    ),
    Tool("write_file", "Write a UTF-8 text file into a sandbox workspace.", a.WriteFile, write_file, destructive=True),
    Tool("list_files", "List a directory of a sandbox workspace.", a.ListFiles, list_files, "read", read_only=True),
    Tool(
        "get_execution_history",
        "Query a sandbox's execution history, newest first; filter by type, success, tags, notes, description.",
        a.ExecutionHistory,
        get_execution_history,
        "read",
        read_only=True,
    ),
    Tool(
        "get_execution",
        "One execution of a sandbox with its code, output, tags and notes.",
        a.GetExecution,
        get_execution,
        "read",
        read_only=True,
    ),
    Tool(
        "get_last_execution",
        "The most recent execution of a sandbox (optionally of one type).",
        a.LastExecution,
        get_last_execution,
        "read",
        read_only=True,
    ),
    Tool(
        "annotate_execution",
        "Set the description, tags and/or notes of an execution (evidence for skills).",
        a.AnnotateExecution,
        annotate_execution,
    ),
    Tool(
        "create_skill_candidate",
        "Bundle executions (source_execution_ids) into a skill candidate for skill_key; status 'draft'.",
        a.CreateSkillCandidate,
        create_skill_candidate,
    ),
    Tool(
        "evaluate_skill_candidate",
        "Record your evaluation of a candidate: passed → status 'evaluating' (promotable), failed → 'rejected'.",
        a.EvaluateSkillCandidate,
        evaluate_skill_candidate,
    ),
    Tool(
        "run_skill_evaluation",
        "Let the server replay a candidate in a fresh sandbox against a stored benchmark and record the score.",
        a.RunSkillEvaluation,
        run_skill_evaluation,
    ),
    Tool(
        "promote_skill_candidate",
        "Release a candidate whose latest evaluation passed, at stage canary (start here) or stable; the stage's "
        "previous active release is replaced.",
        a.PromoteSkillCandidate,
        promote_skill_candidate,
    ),
    Tool(
        "list_skill_candidates",
        "List skill candidates, newest first; filter by skill_key and status.",
        a.ListSkillCandidates,
        list_skill_candidates,
        "read",
        read_only=True,
    ),
    Tool(
        "list_skill_releases",
        "List skill releases; filter by skill_key, stage, active_only.",
        a.ListSkillReleases,
        list_skill_releases,
        "read",
        read_only=True,
    ),
    Tool(
        "rollback_skill_release",
        "Roll back an active release: a new release re-activates the version it replaced (history is kept).",
        a.RollbackSkillRelease,
        rollback_skill_release,
        destructive=True,
    ),
    Tool(
        "run_skill",
        "Run the active release of a skill with a JSON input (canary for a share of runs when both stages exist).",
        a.RunSkill,
        run_skill,
    ),
    Tool(
        "get_release_health",
        "Success/error rates of a release's recent runs against its predecessor's, with a rollback verdict.",
        a.GetReleaseHealth,
        get_release_health,
        "read",
        read_only=True,
    ),
)


def _text(text: str, *, error: bool) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=error)


def _error_text(err: BackendError) -> str:
    text = f"Error ({err.code}): {err.message}"
    if err.details:
        text += f"\nDetails: {json.dumps(err.details, default=str)}"
    return text


def build_server(resolve: Resolver, cache: SandboxCache, *, max_output_chars: int = 20_000) -> Server[Any]:
    """The MCP server with Portside's tools; ``resolve`` says who calls and in which session."""
    tools = {t.name: t for t in TOOLS}
    listing = [t.listing() for t in TOOLS]
    schemas = {t.name: t.listing().input_schema for t in TOOLS}

    async def on_list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listing)

    async def on_call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            MCP_TOOL_CALLS.labels("<unknown>", "error").inc()
            return _text(f"Error (unknown_tool): no tool named '{params.name}'; see tools/list", error=True)
        started = time.perf_counter()
        with tracing.span(f"mcp.tool {tool.name}", {"mcp.tool.name": tool.name}) as span:
            result = await _call(tool, ctx, params)
            outcome = "error" if result.is_error else "ok"
            if span is not None:
                span.set_attribute("mcp.tool.outcome", outcome)
        MCP_TOOL_DURATION.labels(tool.name).observe(time.perf_counter() - started)
        MCP_TOOL_CALLS.labels(tool.name, outcome).inc()
        return result

    async def _call(
        tool: Tool, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            parsed = tool.params.model_validate(params.arguments or {})
        except ValidationError as exc:
            return _text(f"Validation Error: {a.describe_errors(exc)}", error=True)
        try:
            backend, session_key = await resolve(ctx)
        except BackendError as denied:
            return _text(_error_text(denied), error=True)
        try:
            backend.require(tool.scope)
            result = await tool.handler(Call(backend, session_key, cache), parsed)
        except ToolInputError as exc:
            return _text(f"Validation Error: {exc}", error=True)
        except Exception as exc:
            err = backend.error_of(exc)
            if err is None:
                log.exception("MCP tool %s failed", tool.name)
                return _text(f"Error (internal): {tool.name} failed unexpectedly; see the server log", error=True)
            return _text(truncate(_error_text(err), max_output_chars), error=True)
        return _text(render(result, max_output_chars), error=False)

    return Server(
        "portside",
        version=__version__,
        title="Portside",
        instructions=INSTRUCTIONS,
        get_tool_input_schema=lambda name: schemas.get(name),
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )
