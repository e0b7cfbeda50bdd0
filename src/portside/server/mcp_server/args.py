"""Parameters of the MCP tools: one pydantic model per tool, which is also its JSON input schema."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError


def _tags(value: Any) -> Any:
    """Tags as ``"a,b"``; a list of strings is joined."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v).strip() for v in value if str(v).strip())
    return value


def _ids(value: Any) -> Any:
    """A list of ids; a JSON array string or a comma-separated string is split."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                return value
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


Tags = Annotated[
    str | None,
    BeforeValidator(_tags),
    Field(description="Comma-separated tags, e.g. 'etl,data-loading'."),
]
SandboxId = Annotated[
    str | None,
    Field(description="Sandbox to use; omit it to use this MCP session's sandbox (created on first use)."),
]
Timeout = Annotated[int, Field(ge=1, le=3600, description="Seconds before the execution is interrupted.")]
Limit = Annotated[int, Field(ge=1, le=1000, description="Page size.")]
Offset = Annotated[int, Field(ge=0, description="Items to skip.")]


class Args(BaseModel):
    """Base of every tool's parameters: unknown parameters are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class ExecutePython(Args):
    code: str = Field(description="Python code; the kernel keeps state between calls in one sandbox.")
    sandbox_id: SandboxId = None
    timeout: Timeout = 30
    description: str | None = Field(default=None, description="What this execution does (kept in history).")
    tags: Tags = None


class ExecuteShell(Args):
    command: str = Field(description="Shell command, run in the sandbox workspace.")
    sandbox_id: SandboxId = None
    cwd: str | None = Field(default=None, description="Working directory relative to the workspace.")
    timeout: Timeout = 30
    description: str | None = Field(default=None, description="What this execution does (kept in history).")
    tags: Tags = None


class ReadFile(Args):
    path: str = Field(description="File path relative to the workspace.")
    sandbox_id: SandboxId = None


class WriteFile(Args):
    path: str = Field(description="File path relative to the workspace; parent directories are created.")
    content: str = Field(description="UTF-8 text to write (replaces the file).")
    sandbox_id: SandboxId = None


class ListFiles(Args):
    path: str = Field(default=".", description="Directory relative to the workspace.")
    sandbox_id: SandboxId = None


class ExecutionHistory(Args):
    sandbox_id: SandboxId = None
    exec_type: str | None = Field(default=None, description="python, shell or browser.")
    success_only: bool = False
    tags: Tags = None
    has_notes: bool = False
    has_description: bool = False
    limit: Limit = 20
    offset: Offset = 0


class GetExecution(Args):
    execution_id: str = Field(description="An execution id (exec_...).")
    sandbox_id: SandboxId = None


class LastExecution(Args):
    sandbox_id: SandboxId = None
    exec_type: str | None = Field(default=None, description="python, shell or browser.")


class AnnotateExecution(Args):
    execution_id: str = Field(description="An execution id (exec_...).")
    sandbox_id: SandboxId = None
    description: str | None = None
    tags: Tags = None
    notes: str | None = None


class CreateSkillCandidate(Args):
    skill_key: str = Field(description="The skill's stable key, e.g. 'etl-csv-loader'.")
    source_execution_ids: Annotated[
        list[str],
        BeforeValidator(_ids),
        Field(min_length=1, description="Execution ids that are the evidence for this skill."),
    ]
    scenario_key: str | None = Field(default=None, description="The scenario this candidate covers.")
    payload_ref: str | None = Field(
        default=None,
        description="A stored payload (sha256-...) or an external reference; default: replay the executions.",
    )
    summary: str | None = None
    usage_notes: str | None = None


class EvaluateSkillCandidate(Args):
    candidate_id: str
    passed: bool = Field(description="Whether the candidate passed your evaluation.")
    score: float | None = Field(default=None, ge=0, le=100, description="Score in 0..1 (or a percentage).")
    benchmark_id: str | None = None
    report: str | None = Field(default=None, description="What was evaluated and how (kept for audit).")


class RunSkillEvaluation(Args):
    candidate_id: str
    benchmark_id: str = Field(description="A stored benchmark; the server replays the candidate on each case.")


class PromoteSkillCandidate(Args):
    candidate_id: str
    stage: str = Field(default="canary", pattern="^(canary|stable)$", description="canary (start here) or stable.")
    canary_share: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="canary only: share of runs the canary serves; the stable release it replaces serves the rest.",
    )
    change_summary: str | None = None


class ListSkillCandidates(Args):
    skill_key: str | None = None
    status: str | None = Field(
        default=None,
        description="draft (pending), evaluating (passed), rejected (failed), promoted_canary, promoted_stable, "
        "rolled_back.",
    )
    limit: Limit = 20
    offset: Offset = 0


class ListSkillReleases(Args):
    skill_key: str | None = None
    active_only: bool = False
    stage: str | None = Field(default=None, pattern="^(canary|stable)$")
    limit: Limit = 20
    offset: Offset = 0


class RollbackSkillRelease(Args):
    release_id: str = Field(description="The ACTIVE release to roll back; its predecessor is re-activated.")


class RunSkill(Args):
    skill_key: str
    input: Any = Field(default=None, description="JSON input passed to the skill's entry point.")
    sandbox_id: str | None = Field(default=None, description="Run in this sandbox; default: a fresh one.")
    stage: str | None = Field(default=None, pattern="^(canary|stable)$", description="Force a stage.")
    timeout: Timeout = 60


class GetReleaseHealth(Args):
    release_id: str


def describe_errors(exc: ValidationError) -> str:
    """One readable line per problem: missing, unknown and invalid parameters."""
    problems: list[str] = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "missing":
            problems.append(f"missing required parameter '{name}'")
        elif err["type"] == "extra_forbidden":
            problems.append(f"unknown parameter '{name}'")
        else:
            problems.append(f"invalid parameter '{name}': {err['msg']}")
    return "; ".join(dict.fromkeys(problems))


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, tidied for tool listings (no titles; optional fields not as anyOf-null)."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    props: dict[str, Any] = schema.get("properties", {})
    for name, prop in props.items():
        prop.pop("title", None)
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        variants = prop.get("anyOf")
        if isinstance(variants, list):
            non_null = [v for v in variants if v != {"type": "null"}]
            if len(non_null) == 1 and len(non_null) < len(variants):
                del prop["anyOf"]
                prop.update({k: v for k, v in non_null[0].items() if k not in prop})
        props[name] = prop
    schema["additionalProperties"] = False
    return schema
