"""The skill lifecycle: payloads → candidates → evaluation → canary/stable releases → rollback → use.

Candidate statuses on the wire are those of shipyard-neo-sdk's ``SkillCandidateStatus``:
``draft`` (pending) → ``evaluating`` (evaluated; ``latest_pass`` says passed or failed) or
``rejected`` (the latest evaluation failed) → ``promoted_canary`` / ``promoted_stable``; a candidate
whose release was rolled back becomes ``rolled_back``. See docs/skills.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from portside.server.auth import Principal
from portside.server.clock import utcnow
from portside.server.errors import Conflict, InvalidInput, NotFound
from portside.server.ids import new_id
from portside.server.sandboxes.service import SandboxService
from portside.server.skills.models import (
    SkillBenchmarkRow,
    SkillCandidateRow,
    SkillEvaluationRow,
    SkillPayloadRow,
    SkillReleaseRow,
    SkillRunRow,
)
from portside.server.skills.runner import RunOutcome, normalize_steps, run_steps
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
from portside.server.store import Database, lock_key

DRAFT, EVALUATING, REJECTED = "draft", "evaluating", "rejected"
PROMOTED_CANARY, PROMOTED_STABLE, ROLLED_BACK = "promoted_canary", "promoted_stable", "rolled_back"
CANDIDATE_STATUSES = frozenset({DRAFT, EVALUATING, "promoted", PROMOTED_CANARY, PROMOTED_STABLE, REJECTED, ROLLED_BACK})
STAGES = ("canary", "stable")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
HEALTH_WINDOW = timedelta(hours=24)
HEALTH_THRESHOLDS = {"min_samples": 5.0, "max_success_drop": 0.1, "max_error_rate_multiplier": 2.0}


def payload_ref_for(kind: str, payload: Any) -> str:
    """Content address of a payload: ``sha256-<hex>`` of its canonical JSON and kind."""
    canonical = json.dumps({"kind": kind, "payload": payload}, sort_keys=True, separators=(",", ":"))
    return "sha256-" + hashlib.sha256(canonical.encode()).hexdigest()


def _check_key(name: str, value: str) -> None:
    if not _KEY.match(value):
        raise InvalidInput(
            f"{name} must be 1-200 characters of letters, digits, '.', '_' or '-'", details={name: value}
        )


def _p95(values: list[int]) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


class SkillService:
    """All skill rules; doors (Bay API, MCP, SDK) call these methods."""

    def __init__(self, db: Database, sandboxes: SandboxService, *, canary_share: float = 0.1) -> None:
        self.db = db
        self.sandboxes = sandboxes
        self.canary_share = canary_share
        self._rng = random.Random()

    # -------------------------------------------------------------- payloads

    async def create_payload(self, caller: Principal, payload: Any, kind: str = "generic") -> PayloadCreated:
        if not isinstance(payload, (dict, list)):
            raise InvalidInput("payload must be a JSON object or array")
        if not kind or len(kind) > 64:
            raise InvalidInput("kind must be 1-64 characters")
        ref = payload_ref_for(kind, payload)
        try:
            async with self.db.transaction() as s:
                if await s.get(SkillPayloadRow, ref) is None:
                    s.add(
                        SkillPayloadRow(
                            ref=ref, kind=kind, payload=payload, created_by=caller.owner, created_at=utcnow()
                        )
                    )
        except IntegrityError:
            pass  # stored concurrently: content-addressed, so identical
        return PayloadCreated(payload_ref=ref, kind=kind)

    async def get_payload(self, ref: str) -> PayloadInfo:
        """A stored payload by its ``sha256-…`` ref (Bay's ``blob:`` prefix is accepted); others are 400."""
        stored = ref.removeprefix("blob:")
        if not stored.startswith("sha256-"):
            raise InvalidInput(f"Unsupported payload_ref: {ref}", details={"payload_ref": ref})
        async with self.db.session() as s:
            row = await s.get(SkillPayloadRow, stored)
        if row is None:
            raise NotFound(f"payload {ref} not found")
        return PayloadInfo(payload_ref=row.ref, kind=row.kind, payload=row.payload)

    # -------------------------------------------------------------- candidates

    async def create_candidate(
        self,
        caller: Principal,
        *,
        skill_key: str,
        source_execution_ids: list[str],
        scenario_key: str | None = None,
        payload_ref: str | None = None,
        summary: str | None = None,
        usage_notes: str | None = None,
        preconditions: dict[str, Any] | None = None,
        postconditions: dict[str, Any] | None = None,
    ) -> CandidateInfo:
        """A candidate from execution evidence; every execution must exist and belong to the caller."""
        _check_key("skill_key", skill_key)
        if scenario_key is not None:
            _check_key("scenario_key", scenario_key)
        if not source_execution_ids:
            raise InvalidInput("source_execution_ids must name at least one execution")
        if len(set(source_execution_ids)) != len(source_execution_ids):
            raise InvalidInput("source_execution_ids has duplicates")
        try:
            executions = await self.sandboxes.history.by_ids(caller, source_execution_ids)
        except NotFound as exc:  # bad evidence is a bad request, as on Bay (400 validation_error)
            raise InvalidInput(exc.message, details=exc.details) from None
        if payload_ref and payload_ref.startswith("sha256-"):
            await self.get_payload(payload_ref)
        skill_type = "browser" if any(e.exec_type == "browser" for e in executions) else "code"
        row = SkillCandidateRow(
            id=new_id("cand"),
            skill_key=skill_key,
            scenario_key=scenario_key,
            payload_ref=payload_ref,
            skill_type=skill_type,
            summary=summary,
            usage_notes=usage_notes,
            preconditions=preconditions,
            postconditions=postconditions,
            source_execution_ids=list(source_execution_ids),
            status=DRAFT,
            created_by=caller.owner,
        )
        async with self.db.transaction() as s:
            s.add(row)
        return CandidateInfo.of(row)

    async def _candidate(self, candidate_id: str) -> SkillCandidateRow:
        async with self.db.session() as s:
            row = await s.get(SkillCandidateRow, candidate_id)
        if row is None or row.deleted_at is not None:
            raise NotFound(f"candidate {candidate_id} not found")
        return row

    async def get_candidate(self, candidate_id: str) -> CandidateInfo:
        return CandidateInfo.of(await self._candidate(candidate_id))

    async def list_candidates(
        self, *, status: str | None = None, skill_key: str | None = None, limit: int = 100, offset: int = 0
    ) -> CandidateList:
        if status is not None and status not in CANDIDATE_STATUSES:
            raise InvalidInput(f"status must be one of {sorted(CANDIDATE_STATUSES)}")
        if not 1 <= limit <= 1000 or offset < 0:
            raise InvalidInput("limit must be 1-1000 and offset >= 0")
        stmt = select(SkillCandidateRow).where(SkillCandidateRow.deleted_at.is_(None))
        if status:
            stmt = stmt.where(SkillCandidateRow.status == status)
        if skill_key:
            stmt = stmt.where(SkillCandidateRow.skill_key == skill_key)
        async with self.db.session() as s:
            total = (await s.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
            rows = (
                await s.execute(stmt.order_by(SkillCandidateRow.created_at.desc()).limit(limit).offset(offset))
            ).scalars()
            return CandidateList(items=[CandidateInfo.of(r) for r in rows], total=int(total))

    async def delete_candidate(self, caller: Principal, candidate_id: str, reason: str | None) -> Deleted:
        async with self.db.transaction() as s:
            row = await s.get(SkillCandidateRow, candidate_id)
            if row is None or row.deleted_at is not None:
                raise NotFound(f"candidate {candidate_id} not found")
            releases = select(SkillReleaseRow.id).where(SkillReleaseRow.candidate_id == candidate_id)
            active = (
                (
                    await s.execute(
                        select(SkillReleaseRow.id).where(
                            SkillReleaseRow.is_active.is_(True),
                            SkillReleaseRow.id.in_(releases) | SkillReleaseRow.fallback_release_id.in_(releases),
                        )
                    )
                )
                .scalars()
                .first()
            )
            if active:
                raise Conflict(f"candidate {candidate_id} backs active release {active} (or its fallback)")
            row.deleted_at, row.deleted_by, row.delete_reason = utcnow(), caller.owner, reason
            deleted_at = row.deleted_at
        return Deleted(
            id=candidate_id, deleted_at=deleted_at, deleted_by=caller.owner, delete_reason=reason, reason=reason
        )

    # -------------------------------------------------------------- evaluation

    async def evaluate_candidate(
        self,
        caller: Principal,
        candidate_id: str,
        *,
        passed: bool,
        score: float | None = None,
        benchmark_id: str | None = None,
        report: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> EvaluationInfo:
        """Record an evaluation result (from the caller, or from :meth:`run_evaluation`)."""
        if score is not None and not 0.0 <= score <= 100.0:
            raise InvalidInput("score must be between 0 and 1 (or a percentage up to 100)")
        now = utcnow()
        ev = SkillEvaluationRow(
            id=new_id("eval"),
            candidate_id=candidate_id,
            benchmark_id=benchmark_id,
            score=score,
            passed=passed,
            report=report,
            evaluated_by=caller.owner,
            details=details,
            created_at=now,
        )
        async with self.db.transaction() as s:
            cand = await s.get(SkillCandidateRow, candidate_id)
            if cand is None or cand.deleted_at is not None:
                raise NotFound(f"candidate {candidate_id} not found")
            if cand.status in (PROMOTED_CANARY, PROMOTED_STABLE, "promoted"):
                raise Conflict(f"candidate {candidate_id} is already promoted ({cand.status})")
            s.add(ev)
            cand.latest_pass, cand.latest_score, cand.last_evaluated_at = passed, score, now
            cand.status = EVALUATING if passed else REJECTED
        return EvaluationInfo.of(ev)

    async def create_benchmark(
        self,
        caller: Principal,
        *,
        benchmark_id: str | None,
        cases: list[BenchmarkCase],
        skill_key: str | None = None,
        description: str | None = None,
        pass_threshold: float = 1.0,
    ) -> BenchmarkInfo:
        if not cases:
            raise InvalidInput("a benchmark needs at least one case")
        if not 0.0 <= pass_threshold <= 1.0:
            raise InvalidInput("pass_threshold must be between 0 and 1")
        bid = benchmark_id or new_id("bench")
        _check_key("benchmark_id", bid)
        row = SkillBenchmarkRow(
            id=bid,
            skill_key=skill_key,
            description=description,
            cases=[c.model_dump() for c in cases],
            pass_threshold=pass_threshold,
            created_by=caller.owner,
            created_at=utcnow(),
        )
        try:
            async with self.db.transaction() as s:
                s.add(row)
        except IntegrityError:
            raise Conflict(f"benchmark {bid} already exists") from None
        return self._bench_info(row)

    @staticmethod
    def _bench_info(row: SkillBenchmarkRow) -> BenchmarkInfo:
        return BenchmarkInfo(
            id=row.id,
            skill_key=row.skill_key,
            description=row.description,
            cases=[BenchmarkCase.model_validate(c) for c in row.cases],
            pass_threshold=row.pass_threshold,
            created_at=row.created_at,
        )

    async def get_benchmark(self, benchmark_id: str) -> BenchmarkInfo:
        async with self.db.session() as s:
            row = await s.get(SkillBenchmarkRow, benchmark_id)
        if row is None:
            raise NotFound(f"benchmark {benchmark_id} not found")
        return self._bench_info(row)

    async def _steps_of(self, caller: Principal, cand: SkillCandidateRow) -> list[dict[str, Any]]:
        if cand.payload_ref and cand.payload_ref.startswith("sha256-"):
            payload = await self.get_payload(cand.payload_ref)
            return normalize_steps(payload.kind, payload.payload)
        executions = await self.sandboxes.history.by_ids(caller, list(cand.source_execution_ids))
        steps = [{"type": e.exec_type, "code": e.code} for e in executions if e.exec_type in ("python", "shell")]
        if not steps:
            raise InvalidInput(
                f"candidate {cand.id} has no runnable payload or python/shell evidence", code="payload_not_runnable"
            )
        return steps

    async def run_evaluation(self, caller: Principal, candidate_id: str, benchmark_id: str) -> EvaluationInfo:
        """Replay the candidate in a fresh sandbox against a stored benchmark and record the real score."""
        cand = await self._candidate(candidate_id)
        bench = await self.get_benchmark(benchmark_id)
        steps = await self._steps_of(caller, cand)
        sandbox = await self.sandboxes.create(caller, ttl=900)
        results: list[dict[str, Any]] = []
        try:
            for i, case in enumerate(bench.cases):
                if i > 0:  # every case starts from clean interpreter state
                    await self.sandboxes.stop(caller, sandbox.id)
                outcome = await run_steps(
                    self.sandboxes, caller, sandbox.id, steps, case.input, tags=f"skill-eval,{cand.skill_key}"
                )
                ok = outcome.success and (case.expected is None or _same(outcome.result, case.expected))
                results.append(
                    {
                        "case": case.name or i,
                        "passed": ok,
                        "result": outcome.result,
                        "expected": case.expected,
                        "error": outcome.error,
                        "execution_ids": outcome.execution_ids,
                    }
                )
        finally:
            await self.sandboxes.delete(caller, sandbox.id)
        passed_cases = sum(1 for r in results if r["passed"])
        score = passed_cases / len(results)
        report = f"{passed_cases}/{len(results)} cases passed on benchmark {bench.id}"
        return await self.evaluate_candidate(
            caller,
            candidate_id,
            passed=score >= bench.pass_threshold,
            score=score,
            benchmark_id=bench.id,
            report=report,
            details={"cases": results, "runner": "portside"},
        )

    # -------------------------------------------------------------- releases

    async def promote(
        self,
        caller: Principal,
        candidate_id: str,
        *,
        stage: str = "canary",
        canary_share: float | None = None,
        upgrade_of_release_id: str | None = None,
        upgrade_reason: str | None = None,
        change_summary: str | None = None,
    ) -> ReleaseInfo:
        """Release a passed candidate; it becomes the skill's one active release.

        A canary keeps the stable release it is tried against as ``fallback_release_id`` and serves
        ``canary_share`` of runs (the service default when not given); a stable release serves all runs.
        """
        if stage not in STAGES:
            raise InvalidInput(f"stage must be one of {list(STAGES)}", details={"stage": stage})
        if canary_share is not None and (stage != "canary" or not 0.0 <= canary_share <= 1.0):
            raise InvalidInput("canary_share must be between 0 and 1, and only for a canary release")
        cand = await self._candidate(candidate_id)
        if cand.latest_pass is not True:
            raise Conflict(
                f"candidate {candidate_id} has not passed an evaluation (status {cand.status})",
                details={"status": cand.status, "latest_pass": cand.latest_pass},
            )
        row = await self._activate(
            caller,
            cand.skill_key,
            cand.id,
            stage,
            canary_share=(self.canary_share if canary_share is None else canary_share) if stage == "canary" else None,
            rollback_of=None,
            upgrade_of=upgrade_of_release_id,
            upgrade_reason=upgrade_reason,
            change_summary=change_summary,
        )
        async with self.db.transaction() as s:
            c = await s.get(SkillCandidateRow, candidate_id)
            if c is not None:
                c.status = PROMOTED_STABLE if stage == "stable" else PROMOTED_CANARY
                c.promotion_release_id = row.id
        return ReleaseInfo.of(row)

    async def _activate(
        self,
        caller: Principal,
        skill_key: str,
        candidate_id: str,
        stage: str,
        *,
        rollback_of: str | None,
        canary_share: float | None = None,
        upgrade_of: str | None = None,
        upgrade_reason: str | None = None,
        change_summary: str | None = None,
        restore: SkillReleaseRow | None = None,
    ) -> SkillReleaseRow:
        """Insert the skill's new active release, retiring the current one; retried on a lost race.

        The partial unique index (one active release per skill) and the unique (key, version) pair
        make the database itself reject a double activation. A rollback passes ``restore`` (the
        release it re-activates the candidate of: its split and history are restored) and must still
        find ``rollback_of`` active.
        """
        for attempt in range(20):
            try:
                async with self.db.transaction() as s:
                    await lock_key(s, f"skill-release:{skill_key}")
                    current = (
                        await s.execute(
                            select(SkillReleaseRow)
                            .where(SkillReleaseRow.skill_key == skill_key, SkillReleaseRow.is_active.is_(True))
                            .with_for_update()
                        )
                    ).scalar_one_or_none()
                    if rollback_of is not None and (current is None or current.id != rollback_of):
                        raise Conflict(
                            f"release {rollback_of} was replaced meanwhile; roll back "
                            f"{current.id if current else 'the active release'} instead"
                        )
                    latest = (
                        await s.execute(
                            select(SkillReleaseRow)
                            .where(SkillReleaseRow.skill_key == skill_key, SkillReleaseRow.deleted_at.is_(None))
                            .order_by(SkillReleaseRow.version.desc())
                            .limit(1)
                        )
                    ).scalar_one_or_none()
                    version = (
                        await s.execute(
                            select(func.coalesce(func.max(SkillReleaseRow.version), 0)).where(
                                SkillReleaseRow.skill_key == skill_key
                            )
                        )
                    ).scalar_one()
                    if restore is not None:
                        previous, fallback, share = (
                            restore.previous_release_id,
                            restore.fallback_release_id,
                            restore.canary_share,
                        )
                    else:
                        previous, share = (latest.id if latest else None), canary_share
                        fallback = None
                        if stage == "canary" and current is not None:
                            fallback = current.id if current.stage == "stable" else current.fallback_release_id
                    if current is not None:
                        current.is_active = False
                        await s.flush()
                    row = SkillReleaseRow(
                        id=new_id("rel"),
                        skill_key=skill_key,
                        candidate_id=candidate_id,
                        version=int(version) + 1,
                        stage=stage,
                        is_active=True,
                        release_mode="rollback" if rollback_of else "manual",
                        promoted_by=caller.owner,
                        promoted_at=utcnow(),
                        rollback_of=rollback_of,
                        previous_release_id=previous,
                        upgrade_of_release_id=upgrade_of,
                        upgrade_reason=upgrade_reason,
                        change_summary=change_summary,
                        canary_share=share if stage == "canary" else None,
                        fallback_release_id=fallback if stage == "canary" else None,
                    )
                    s.add(row)
                return row
            except (IntegrityError, DBAPIError):  # a lost race; the indexes kept the invariant
                await asyncio.sleep(0.005 * (attempt + 1) * self._rng.random())
        raise Conflict(f"could not promote {skill_key}: too much contention, try again")

    async def _release(self, release_id: str) -> SkillReleaseRow:
        async with self.db.session() as s:
            row = await s.get(SkillReleaseRow, release_id)
        if row is None or row.deleted_at is not None:
            raise NotFound(f"release {release_id} not found")
        return row

    async def get_release(self, release_id: str) -> ReleaseInfo:
        return ReleaseInfo.of(await self._release(release_id))

    async def list_releases(
        self,
        *,
        skill_key: str | None = None,
        active_only: bool = False,
        stage: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> ReleaseList:
        if stage is not None and stage not in STAGES:
            raise InvalidInput(f"stage must be one of {list(STAGES)}")
        if not 1 <= limit <= 1000 or offset < 0:
            raise InvalidInput("limit must be 1-1000 and offset >= 0")
        stmt = select(SkillReleaseRow).where(SkillReleaseRow.deleted_at.is_(None))
        if skill_key:
            stmt = stmt.where(SkillReleaseRow.skill_key == skill_key)
        if active_only:
            stmt = stmt.where(SkillReleaseRow.is_active.is_(True))
        if stage:
            stmt = stmt.where(SkillReleaseRow.stage == stage)
        async with self.db.session() as s:
            total = (await s.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
            rows = (
                await s.execute(
                    stmt.order_by(SkillReleaseRow.skill_key, SkillReleaseRow.version.desc()).limit(limit).offset(offset)
                )
            ).scalars()
            return ReleaseList(items=[ReleaseInfo.of(r) for r in rows], total=int(total))

    async def delete_release(self, caller: Principal, release_id: str, reason: str | None) -> Deleted:
        """Soft-delete a release (Bay's reply body). Deleting the active canary re-activates its fallback."""
        async with self.db.transaction() as s:
            row = await s.get(SkillReleaseRow, release_id)
            if row is None or row.deleted_at is not None:
                raise NotFound(f"release {release_id} not found")
            await lock_key(s, f"skill-release:{row.skill_key}")
            fallback = (
                await s.get(SkillReleaseRow, row.fallback_release_id)
                if row.is_active and row.fallback_release_id
                else None
            )
            row.is_active = False
            row.deleted_at, row.deleted_by, row.delete_reason = utcnow(), caller.owner, reason
            if fallback is not None and fallback.deleted_at is None:
                await s.flush()
                fallback.is_active = True
            deleted_at = row.deleted_at
        return Deleted(
            id=release_id, deleted_at=deleted_at, deleted_by=caller.owner, delete_reason=reason, reason=reason
        )

    async def rollback(self, caller: Principal, release_id: str) -> ReleaseInfo:
        """A new release re-activating the skill's previous release (whatever its stage).

        The release must be the skill's active one. Its previous release is the newest (not
        deleted) release of the skill before it; a skill's first release cannot be rolled back (409).
        The new release records ``rollback_of``, takes the previous release's stage and canary split,
        and inherits its predecessor, so rolling back again keeps walking back through history.
        """
        release = await self._release(release_id)
        if not release.is_active:
            raise Conflict(f"release {release_id} is not active; only the active release can be rolled back")
        target = await self._previous_of(release)
        if target is None:
            raise Conflict(
                f"release {release_id} has no previous release to roll back to",
                details={"release_id": release_id, "skill_key": release.skill_key},
            )
        row = await self._activate(
            caller,
            release.skill_key,
            target.candidate_id,
            target.stage,
            rollback_of=release.id,
            change_summary=f"rollback of v{release.version} to the candidate of v{target.version}",
            restore=target,
        )
        async with self.db.transaction() as s:
            await s.execute(
                update(SkillCandidateRow)
                .where(SkillCandidateRow.id == release.candidate_id, SkillCandidateRow.id != target.candidate_id)
                .values(status=ROLLED_BACK)
            )
        return ReleaseInfo.of(row)

    async def _previous_of(self, release: SkillReleaseRow) -> SkillReleaseRow | None:
        """The first not-deleted release along ``previous_release_id``.

        A promotion without a recorded predecessor (rows from before one-active-per-skill) falls
        back to the newest not-deleted release of the skill before it.
        """
        async with self.db.session() as s:
            if release.previous_release_id is None and release.rollback_of is None:
                return (
                    await s.execute(
                        select(SkillReleaseRow)
                        .where(
                            SkillReleaseRow.skill_key == release.skill_key,
                            SkillReleaseRow.version < release.version,
                            SkillReleaseRow.deleted_at.is_(None),
                        )
                        .order_by(SkillReleaseRow.version.desc())
                        .limit(1)
                    )
                ).scalar_one_or_none()
            rid, seen = release.previous_release_id, set[str]()
            while rid and rid not in seen:
                seen.add(rid)
                row = await s.get(SkillReleaseRow, rid)
                if row is None:
                    return None
                if row.deleted_at is None:
                    return row
                rid = row.previous_release_id
            return None

    # -------------------------------------------------------------- use and health

    async def choose_release(self, skill_key: str, stage: str | None = None) -> SkillReleaseRow:
        """The release to run: the active one; an active canary serves its ``canary_share`` of runs
        and its fallback stable release the rest. ``stage`` forces the canary or the stable release."""
        async with self.db.session() as s:
            active = (
                await s.execute(
                    select(SkillReleaseRow).where(
                        SkillReleaseRow.skill_key == skill_key,
                        SkillReleaseRow.is_active.is_(True),
                        SkillReleaseRow.deleted_at.is_(None),
                    )
                )
            ).scalar_one_or_none()
            fallback = (
                await s.get(SkillReleaseRow, active.fallback_release_id)
                if active is not None and active.stage == "canary" and active.fallback_release_id
                else None
            )
        if fallback is not None and fallback.deleted_at is not None:
            fallback = None
        by_stage = {r.stage: r for r in (fallback, active) if r is not None}
        if stage is not None:
            if stage not in by_stage:
                raise NotFound(f"skill {skill_key} has no active {stage} release")
            return by_stage[stage]
        if active is None:
            raise NotFound(f"skill {skill_key} has no active release")
        if fallback is None:
            return active
        share = self.canary_share if active.canary_share is None else active.canary_share
        return active if self._rng.random() < share else fallback

    async def run_skill(
        self,
        caller: Principal,
        skill_key: str,
        *,
        input: Any = None,
        sandbox_id: str | None = None,
        stage: str | None = None,
        timeout: float = 60,
    ) -> SkillRunResult:
        """Run the active release of a skill in a sandbox and record the run as release evidence."""
        release = await self.choose_release(skill_key, stage)
        cand = await self._candidate(release.candidate_id)
        steps = await self._steps_of(caller, cand)
        temporary = sandbox_id is None
        sid = sandbox_id or (await self.sandboxes.create(caller, ttl=900)).id
        try:
            outcome: RunOutcome = await run_steps(
                self.sandboxes, caller, sid, steps, input, timeout=timeout, tags=f"skill-run,{skill_key}"
            )
        finally:
            if temporary:
                await self.sandboxes.delete(caller, sid)
        run = SkillRunRow(
            id=new_id("run"),
            release_id=release.id,
            skill_key=skill_key,
            sandbox_id=sid,
            execution_id=outcome.execution_ids[-1] if outcome.execution_ids else None,
            success=outcome.success,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
            created_at=utcnow(),
        )
        await self.record_run(run)
        return SkillRunResult(
            run_id=run.id,
            skill_key=skill_key,
            release_id=release.id,
            version=release.version,
            stage=release.stage,
            success=outcome.success,
            result=outcome.result,
            output=outcome.output,
            error=outcome.error,
            sandbox_id=sid,
            execution_ids=outcome.execution_ids,
            duration_ms=outcome.duration_ms,
        )

    async def record_run(self, run: SkillRunRow) -> None:
        """Store one use of a release (also used by browser skill runs)."""
        async with self.db.transaction() as s:
            s.add(run)

    async def health(self, release_id: str) -> ReleaseHealth:
        """Outcomes of the release's recent runs against its predecessor's, with a rollback verdict."""
        release = await self._release(release_id)
        end = utcnow()
        start = max(release.promoted_at, end - HEALTH_WINDOW)

        async def _runs(rid: str) -> list[SkillRunRow]:
            async with self.db.session() as s:
                return list(
                    (
                        await s.execute(
                            select(SkillRunRow).where(
                                SkillRunRow.release_id == rid, SkillRunRow.created_at >= end - HEALTH_WINDOW
                            )
                        )
                    ).scalars()
                )

        runs = await _runs(release.id)
        base = await _runs(release.previous_release_id) if release.previous_release_id else []
        samples = len(runs)
        ok = sum(1 for r in runs if r.success)
        success_rate = ok / samples if samples else 0.0
        error_rate = 1.0 - success_rate if samples else 0.0
        b_ok = sum(1 for r in base if r.success)
        b_rate = b_ok / len(base) if base else 1.0
        b_err = 1.0 - b_rate if base else 0.0
        drop = max(0.0, b_rate - success_rate) if samples else 0.0
        mult = (error_rate / b_err) if b_err > 0 else (float("inf") if error_rate > 0 else 1.0)
        reasons: list[str] = []
        enough = samples >= HEALTH_THRESHOLDS["min_samples"]
        if enough and drop > HEALTH_THRESHOLDS["max_success_drop"]:
            reasons.append(f"success rate dropped by {drop:.2f} against the previous release")
        if enough and base and mult > HEALTH_THRESHOLDS["max_error_rate_multiplier"]:
            reasons.append(f"error rate is {mult:.1f}x the previous release's")
        if enough and not base and error_rate > HEALTH_THRESHOLDS["max_success_drop"]:
            reasons.append(f"error rate {error_rate:.2f} with no baseline")
        return ReleaseHealth(
            release_id=release.id,
            skill_key=release.skill_key,
            stage=release.stage,
            window_start_at=start,
            window_end_at=end,
            window_complete=end - release.promoted_at >= HEALTH_WINDOW,
            samples=samples,
            success_rate=round(success_rate, 4),
            error_rate=round(error_rate, 4),
            p95_duration=_p95([r.duration_ms for r in runs]),
            baseline_success_rate=round(b_rate, 4),
            baseline_error_rate=round(b_err, 4),
            baseline_samples=len(base),
            success_drop=round(drop, 4),
            error_rate_multiplier=round(mult, 4) if mult != float("inf") else 1e9,
            healthy=not reasons,
            should_rollback=bool(reasons) and release.previous_release_id is not None,
            rollback_reasons=reasons,
            thresholds=dict(HEALTH_THRESHOLDS),
        )


def _same(result: Any, expected: Any) -> bool:
    if isinstance(result, str) and isinstance(expected, str):
        return result.strip() == expected.strip()
    return bool(result == expected)
