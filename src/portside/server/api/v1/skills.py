"""Skills: payloads, candidates, evaluations, benchmarks, releases, rollback, health and runs.

The Bay skill lifecycle API of shipyard-neo-sdk, plus Portside's own routes for benchmarks,
server-run evaluations and running the active release of a skill.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Query
from pydantic import BaseModel, Field

from portside.server.api.params import MAX_OFFSET
from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.deps import require
from portside.server.sandboxes.service import SandboxService
from portside.server.skills.schemas import (
    BenchmarkCase,
    BenchmarkInfo,
    CandidateInfo,
    CandidateList,
    Deleted,
    EvaluationInfo,
    PayloadCreated,
    PayloadInfo,
    ReleaseHealth,
    ReleaseInfo,
    ReleaseList,
    SkillRunResult,
)
from portside.server.skills.service import SkillService

router = APIRouter(prefix="/v1/skills", tags=["skills"])
Reader = Depends(require("read"))
Writer = Depends(require("write"))


def svc(ctx: AppContext = Depends(get_ctx)) -> SkillService:
    return ctx.service("skills", SkillService)


class PayloadCreate(BaseModel):
    payload: dict[str, Any] | list[Any]
    kind: str = Field(default="generic", min_length=1, max_length=64)


#: Keys the service checks (``skills.service._check_key``, its own message); the schema states the rule.
SKILL_KEY: dict[str, Any] = {"pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"}


class CandidateCreate(BaseModel):
    skill_key: str = Field(json_schema_extra=SKILL_KEY)
    source_execution_ids: list[str] = Field(json_schema_extra={"minItems": 1})
    scenario_key: str | None = Field(default=None, json_schema_extra=SKILL_KEY)
    payload_ref: str | None = Field(default=None, json_schema_extra={"pattern": r"^(blob:)?sha256-"})
    summary: str | None = None
    usage_notes: str | None = None
    preconditions: dict[str, Any] | None = None
    postconditions: dict[str, Any] | None = None


class Evaluate(BaseModel):
    passed: bool
    score: float | None = None
    benchmark_id: str | None = None
    report: str | None = None


class RunEvaluation(BaseModel):
    benchmark_id: str


class Promote(BaseModel):
    stage: Literal["canary", "stable"] = "canary"
    canary_share: float | None = Field(default=None, ge=0.0, le=1.0)
    upgrade_of_release_id: str | None = None
    upgrade_reason: str | None = None
    change_summary: str | None = None


class DeleteReason(BaseModel):
    reason: str | None = None


class BenchmarkCreate(BaseModel):
    id: str | None = Field(default=None, json_schema_extra=SKILL_KEY)
    skill_key: str | None = None
    description: str | None = None
    cases: list[BenchmarkCase] = Field(json_schema_extra={"minItems": 1})
    pass_threshold: float = Field(default=1.0, json_schema_extra={"minimum": 0, "maximum": 1})


class RunSkill(BaseModel):
    input: Any = None
    sandbox_id: str | None = None
    stage: Literal["canary", "stable"] | None = None
    timeout: int = Field(default=60, ge=1, le=3600)


@router.post("/payloads", status_code=201, response_model=PayloadCreated)
async def create_payload(body: PayloadCreate, s: SkillService = Depends(svc), caller: Principal = Writer) -> Any:
    return await s.create_payload(caller, body.payload, body.kind)


@router.get("/payloads/{payload_ref:path}", response_model=PayloadInfo)
async def get_payload(payload_ref: str, s: SkillService = Depends(svc), _: Principal = Reader) -> Any:
    return await s.get_payload(payload_ref)


@router.post("/candidates", status_code=201, response_model=CandidateInfo)
async def create_candidate(body: CandidateCreate, s: SkillService = Depends(svc), caller: Principal = Writer) -> Any:
    return await s.create_candidate(caller, **body.model_dump())


@router.get("/candidates", response_model=CandidateList)
async def list_candidates(
    status: str | None = None,
    skill_key: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    s: SkillService = Depends(svc),
    _: Principal = Reader,
) -> Any:
    return await s.list_candidates(status=status, skill_key=skill_key, limit=limit, offset=offset)


@router.get("/candidates/{candidate_id}", response_model=CandidateInfo)
async def get_candidate(candidate_id: str, s: SkillService = Depends(svc), _: Principal = Reader) -> Any:
    return await s.get_candidate(candidate_id)


@router.delete("/candidates/{candidate_id}", response_model=Deleted)
async def delete_candidate(
    candidate_id: str,
    body: DeleteReason | None = Body(default=None),
    s: SkillService = Depends(svc),
    caller: Principal = Writer,
) -> Any:
    return await s.delete_candidate(caller, candidate_id, (body or DeleteReason()).reason)


@router.post("/candidates/{candidate_id}/evaluate", response_model=EvaluationInfo)
async def evaluate_candidate(
    candidate_id: str, body: Evaluate, s: SkillService = Depends(svc), caller: Principal = Writer
) -> Any:
    return await s.evaluate_candidate(caller, candidate_id, **body.model_dump())


@router.post("/candidates/{candidate_id}/run_evaluation", response_model=EvaluationInfo)
async def run_evaluation(
    candidate_id: str, body: RunEvaluation, s: SkillService = Depends(svc), caller: Principal = Writer
) -> Any:
    """Replay the candidate in a fresh sandbox against a stored benchmark and record the score."""
    return await s.run_evaluation(caller, candidate_id, body.benchmark_id)


@router.post("/candidates/{candidate_id}/promote", response_model=ReleaseInfo)
async def promote_candidate(
    candidate_id: str, body: Promote, s: SkillService = Depends(svc), caller: Principal = Writer
) -> Any:
    return await s.promote(caller, candidate_id, **body.model_dump())


@router.get("/releases", response_model=ReleaseList)
async def list_releases(
    skill_key: str | None = None,
    active_only: bool = False,
    stage: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    s: SkillService = Depends(svc),
    _: Principal = Reader,
) -> Any:
    return await s.list_releases(skill_key=skill_key, active_only=active_only, stage=stage, limit=limit, offset=offset)


@router.get("/releases/{release_id}", response_model=ReleaseInfo)
async def get_release(release_id: str, s: SkillService = Depends(svc), _: Principal = Reader) -> Any:
    return await s.get_release(release_id)


@router.delete("/releases/{release_id}", response_model=Deleted)
async def delete_release(
    release_id: str,
    body: DeleteReason | None = Body(default=None),
    s: SkillService = Depends(svc),
    caller: Principal = Writer,
) -> Any:
    return await s.delete_release(caller, release_id, (body or DeleteReason()).reason)


@router.post("/releases/{release_id}/rollback", response_model=ReleaseInfo)
async def rollback_release(release_id: str, s: SkillService = Depends(svc), caller: Principal = Writer) -> Any:
    return await s.rollback(caller, release_id)


@router.get("/releases/{release_id}/health", response_model=ReleaseHealth)
async def release_health(release_id: str, s: SkillService = Depends(svc), _: Principal = Reader) -> Any:
    return await s.health(release_id)


@router.post("/benchmarks", status_code=201, response_model=BenchmarkInfo)
async def create_benchmark(body: BenchmarkCreate, s: SkillService = Depends(svc), caller: Principal = Writer) -> Any:
    return await s.create_benchmark(
        caller,
        benchmark_id=body.id,
        cases=body.cases,
        skill_key=body.skill_key,
        description=body.description,
        pass_threshold=body.pass_threshold,
    )


@router.get("/benchmarks/{benchmark_id}", response_model=BenchmarkInfo)
async def get_benchmark(benchmark_id: str, s: SkillService = Depends(svc), _: Principal = Reader) -> Any:
    return await s.get_benchmark(benchmark_id)


@router.post("/{skill_key}/run", response_model=SkillRunResult)
async def run_skill(skill_key: str, body: RunSkill, s: SkillService = Depends(svc), caller: Principal = Writer) -> Any:
    """Run the active release of ``skill_key`` (canary for a share of runs when both stages exist)."""
    return await s.run_skill(
        caller, skill_key, input=body.input, sandbox_id=body.sandbox_id, stage=body.stage, timeout=body.timeout
    )


def install(app: FastAPI, ctx: AppContext) -> None:
    sandboxes = ctx.service("sandboxes", SandboxService)
    ctx.services["skills"] = SkillService(ctx.db, sandboxes, canary_share=ctx.settings.skill_canary_share)
    app.include_router(router)
