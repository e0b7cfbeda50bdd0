"""Wire models of the skills API (Bay's skill lifecycle shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from portside.server.skills.models import SkillCandidateRow, SkillEvaluationRow, SkillReleaseRow


class PayloadCreated(BaseModel):
    payload_ref: str
    kind: str


class PayloadInfo(BaseModel):
    payload_ref: str
    kind: str
    payload: dict[str, Any] | list[Any]


class CandidateInfo(BaseModel):
    id: str
    skill_key: str
    scenario_key: str | None = None
    payload_ref: str | None = None
    skill_type: str = "code"
    auto_release_eligible: bool = False
    auto_release_reason: str | None = None
    summary: str | None = None
    usage_notes: str | None = None
    preconditions: dict[str, Any] | None = None
    postconditions: dict[str, Any] | None = None
    source_execution_ids: list[str]
    status: str
    latest_score: float | None = None
    latest_pass: bool | None = None
    last_evaluated_at: datetime | None = None
    promotion_release_id: str | None = None
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime
    is_deleted: bool = False
    deleted_at: datetime | None = None
    deleted_by: str | None = None
    delete_reason: str | None = None

    @classmethod
    def of(cls, r: SkillCandidateRow) -> CandidateInfo:
        return cls(
            id=r.id,
            skill_key=r.skill_key,
            scenario_key=r.scenario_key,
            payload_ref=r.payload_ref,
            skill_type=r.skill_type,
            summary=r.summary,
            usage_notes=r.usage_notes,
            preconditions=r.preconditions,
            postconditions=r.postconditions,
            source_execution_ids=list(r.source_execution_ids),
            status=r.status,
            latest_score=r.latest_score,
            latest_pass=r.latest_pass,
            last_evaluated_at=r.last_evaluated_at,
            promotion_release_id=r.promotion_release_id,
            created_by=r.created_by,
            created_at=r.created_at,
            updated_at=r.updated_at,
            is_deleted=r.deleted_at is not None,
            deleted_at=r.deleted_at,
            deleted_by=r.deleted_by,
            delete_reason=r.delete_reason,
        )


class CandidateList(BaseModel):
    items: list[CandidateInfo]
    total: int


class EvaluationInfo(BaseModel):
    id: str
    candidate_id: str
    benchmark_id: str | None = None
    score: float | None = None
    passed: bool
    report: str | None = None
    evaluated_by: str | None = None
    details: dict[str, Any] | None = None
    created_at: datetime

    @classmethod
    def of(cls, r: SkillEvaluationRow) -> EvaluationInfo:
        return cls(
            id=r.id,
            candidate_id=r.candidate_id,
            benchmark_id=r.benchmark_id,
            score=r.score,
            passed=r.passed,
            report=r.report,
            evaluated_by=r.evaluated_by,
            details=r.details,
            created_at=r.created_at,
        )


class ReleaseInfo(BaseModel):
    id: str
    skill_key: str
    candidate_id: str
    version: int
    stage: str
    is_active: bool
    release_mode: str = "manual"
    promoted_by: str | None = None
    promoted_at: datetime
    rollback_of: str | None = None
    previous_release_id: str | None = None
    auto_promoted_from: str | None = None
    health_window_end_at: datetime | None = None
    upgrade_of_release_id: str | None = None
    upgrade_reason: str | None = None
    change_summary: str | None = None
    canary_share: float | None = None
    fallback_release_id: str | None = None
    is_deleted: bool = False
    deleted_at: datetime | None = None
    deleted_by: str | None = None
    delete_reason: str | None = None

    @classmethod
    def of(cls, r: SkillReleaseRow) -> ReleaseInfo:
        return cls(
            id=r.id,
            skill_key=r.skill_key,
            candidate_id=r.candidate_id,
            version=r.version,
            stage=r.stage,
            is_active=r.is_active,
            release_mode=r.release_mode,
            promoted_by=r.promoted_by,
            promoted_at=r.promoted_at,
            rollback_of=r.rollback_of,
            previous_release_id=r.previous_release_id,
            upgrade_of_release_id=r.upgrade_of_release_id,
            upgrade_reason=r.upgrade_reason,
            change_summary=r.change_summary,
            canary_share=r.canary_share,
            fallback_release_id=r.fallback_release_id,
            is_deleted=r.deleted_at is not None,
            deleted_at=r.deleted_at,
            deleted_by=r.deleted_by,
            delete_reason=r.delete_reason,
        )


class Deleted(BaseModel):
    """Bay's delete reply (``id``, ``deleted_at``, ``deleted_by``, ``delete_reason``) plus ``deleted``/``reason``."""

    id: str
    deleted_at: datetime
    deleted_by: str | None = None
    delete_reason: str | None = None
    deleted: bool = True
    reason: str | None = None


class ReleaseList(BaseModel):
    items: list[ReleaseInfo]
    total: int


class ReleaseHealth(BaseModel):
    release_id: str
    skill_key: str
    stage: str
    window_start_at: datetime
    window_end_at: datetime
    window_complete: bool
    samples: int
    success_rate: float
    error_rate: float
    p95_duration: int
    baseline_success_rate: float
    baseline_error_rate: float
    baseline_samples: int
    success_drop: float
    error_rate_multiplier: float
    healthy: bool
    should_rollback: bool
    rollback_reasons: list[str]
    thresholds: dict[str, float]


class BenchmarkCase(BaseModel):
    input: Any = None
    expected: Any = None
    name: str | None = None


class BenchmarkInfo(BaseModel):
    id: str
    skill_key: str | None = None
    description: str | None = None
    cases: list[BenchmarkCase]
    pass_threshold: float
    created_at: datetime


class SkillRunResult(BaseModel):
    """Outcome of running the active release of a skill."""

    run_id: str
    skill_key: str
    release_id: str
    version: int
    stage: str
    success: bool
    result: Any = None
    output: str = ""
    error: str | None = None
    sandbox_id: str
    execution_ids: list[str]
    duration_ms: int
