"""Skill lifecycle models: payloads, candidates, evaluations, benchmarks, releases, health, runs.

Candidate ``status`` values are those of shipyard-neo-sdk's ``SkillCandidateStatus``:
``draft`` (not evaluated yet), ``evaluating`` (the latest evaluation passed; ``latest_pass`` is True),
``rejected`` (the latest evaluation failed), ``promoted_canary``, ``promoted_stable`` and
``rolled_back``. See docs/skills.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portside.types.common import Model

#: Candidate statuses on the wire, in lifecycle order.
CANDIDATE_STATUSES = ("draft", "evaluating", "rejected", "promoted_canary", "promoted_stable", "rolled_back")
#: Release stages.
STAGES = ("canary", "stable")


class SkillPayload(Model):
    """A stored payload: reference it from a candidate with ``payload_ref``."""

    payload_ref: str
    kind: str


class SkillPayloadInfo(SkillPayload):
    payload: dict[str, Any] | list[Any]


class SkillCandidate(Model):
    id: str
    skill_key: str
    scenario_key: str | None = None
    payload_ref: str | None = None
    skill_type: str = "code"
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


class SkillCandidateList(Model):
    items: list[SkillCandidate]
    total: int


class SkillEvaluation(Model):
    id: str
    candidate_id: str
    benchmark_id: str | None = None
    score: float | None = None
    passed: bool
    report: str | None = None
    evaluated_by: str | None = None
    details: dict[str, Any] | None = None
    created_at: datetime


class BenchmarkCase(Model):
    """One case: ``input`` is passed to the skill, ``expected`` (if set) must equal its result."""

    input: Any = None
    expected: Any = None
    name: str | None = None


class SkillBenchmark(Model):
    id: str
    skill_key: str | None = None
    description: str | None = None
    cases: list[BenchmarkCase]
    pass_threshold: float
    created_at: datetime


class SkillRelease(Model):
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
    upgrade_of_release_id: str | None = None
    upgrade_reason: str | None = None
    change_summary: str | None = None
    #: canary only: the share of runs it serves; ``fallback_release_id`` (a stable release) serves the rest.
    canary_share: float | None = None
    fallback_release_id: str | None = None
    is_deleted: bool = False


class SkillReleaseList(Model):
    items: list[SkillRelease]
    total: int


class ReleaseHealth(Model):
    """Recent runs of a release against its predecessor's, with a rollback verdict."""

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


class SkillRunResult(Model):
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


class Deleted(Model):
    """A soft delete: Bay's ``id``, ``deleted_at``, ``deleted_by``, ``delete_reason``."""

    id: str
    deleted: bool = True
    deleted_at: datetime | None = None
    deleted_by: str | None = None
    delete_reason: str | None = None
    reason: str | None = None
