# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.skills``: the skill lifecycle — payloads, candidates, evaluation, releases, rollback, runs.

Every POST carries an idempotency key (a fresh one unless you pass ``idempotency_key``), so the
SDK may retry it safely: the server replays the first response instead of acting twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from portside._sync._http import HTTP, new_idempotency_key
from portside.types.skills import (
    BenchmarkCase,
    Deleted,
    ReleaseHealth,
    SkillBenchmark,
    SkillCandidate,
    SkillCandidateList,
    SkillEvaluation,
    SkillPayload,
    SkillPayloadInfo,
    SkillRelease,
    SkillReleaseList,
    SkillRunResult,
)

_BASE = "/v1/skills"
_RUN_SLACK = 30.0  # seconds of HTTP timeout beyond a run's own timeout


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


class Skills:
    """Candidates → evaluation → canary/stable releases → rollback, and running released skills."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def _post(self, path: str, body: dict[str, Any] | None, key: str | None, timeout: float | None = None) -> Any:
        return self._http.json(
            "POST", path, json=body, idempotency_key=key or new_idempotency_key(), timeout=timeout
        )

    # ---------------------------------------------------------------- payloads

    def create_payload(
        self, payload: dict[str, Any] | list[Any], *, kind: str = "generic", idempotency_key: str | None = None
    ) -> SkillPayload:
        """Store a payload (content-addressed: the same payload and kind give the same ``payload_ref``).

        Runnable kinds: ``python`` ``{"code", "entrypoint"}``, ``shell`` ``{"command"}``,
        ``steps`` ``{"steps": [{"type": "python"|"shell", "code"}]}``.
        """
        data = self._post(f"{_BASE}/payloads", {"payload": payload, "kind": kind}, idempotency_key)
        return SkillPayload.model_validate(data)

    def get_payload(self, payload_ref: str) -> SkillPayloadInfo:
        return SkillPayloadInfo.model_validate(self._http.json("GET", f"{_BASE}/payloads/{payload_ref}"))

    # ---------------------------------------------------------------- candidates

    def create_candidate(
        self,
        *,
        skill_key: str,
        source_execution_ids: list[str],
        scenario_key: str | None = None,
        payload_ref: str | None = None,
        summary: str | None = None,
        usage_notes: str | None = None,
        preconditions: dict[str, Any] | None = None,
        postconditions: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> SkillCandidate:
        """A ``draft`` candidate backed by executions from your sandboxes' history."""
        body = _drop_none(
            {
                "skill_key": skill_key,
                "source_execution_ids": list(source_execution_ids),
                "scenario_key": scenario_key,
                "payload_ref": payload_ref,
                "summary": summary,
                "usage_notes": usage_notes,
                "preconditions": preconditions,
                "postconditions": postconditions,
            }
        )
        return SkillCandidate.model_validate(self._post(f"{_BASE}/candidates", body, idempotency_key))

    def list_candidates(
        self, *, status: str | None = None, skill_key: str | None = None, limit: int = 100, offset: int = 0
    ) -> SkillCandidateList:
        params = {"status": status, "skill_key": skill_key, "limit": limit, "offset": offset}
        return SkillCandidateList.model_validate(self._http.json("GET", f"{_BASE}/candidates", params=params))

    def iter_candidates(
        self, *, status: str | None = None, skill_key: str | None = None, page_size: int = 100
    ) -> Iterator[SkillCandidate]:
        """Every matching candidate, fetched page by page."""
        offset = 0
        while True:
            page = self.list_candidates(status=status, skill_key=skill_key, limit=page_size, offset=offset)
            for item in page.items:
                yield item
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    def get_candidate(self, candidate_id: str) -> SkillCandidate:
        return SkillCandidate.model_validate(self._http.json("GET", f"{_BASE}/candidates/{candidate_id}"))

    def delete_candidate(self, candidate_id: str, *, reason: str | None = None) -> Deleted:
        """Soft-delete a candidate (refused while it backs an active release)."""
        data = self._http.json("DELETE", f"{_BASE}/candidates/{candidate_id}", json={"reason": reason})
        return Deleted.model_validate(data)

    # ---------------------------------------------------------------- evaluation

    def evaluate(
        self,
        candidate_id: str,
        *,
        passed: bool,
        score: float | None = None,
        benchmark_id: str | None = None,
        report: str | None = None,
        idempotency_key: str | None = None,
    ) -> SkillEvaluation:
        """Record an evaluation you ran yourself; ``passed`` moves the candidate to evaluating/rejected."""
        body = _drop_none({"passed": passed, "score": score, "benchmark_id": benchmark_id, "report": report})
        data = self._post(f"{_BASE}/candidates/{candidate_id}/evaluate", body, idempotency_key)
        return SkillEvaluation.model_validate(data)

    def run_evaluation(
        self, candidate_id: str, *, benchmark_id: str, timeout: float | None = None, idempotency_key: str | None = None
    ) -> SkillEvaluation:
        """Let the server replay the candidate against a stored benchmark and record the real score."""
        data = self._post(
            f"{_BASE}/candidates/{candidate_id}/run_evaluation",
            {"benchmark_id": benchmark_id},
            idempotency_key,
            timeout=timeout or max(self._http.config.timeout, 600.0),
        )
        return SkillEvaluation.model_validate(data)

    def create_benchmark(
        self,
        *,
        cases: list[BenchmarkCase] | list[dict[str, Any]],
        id: str | None = None,
        skill_key: str | None = None,
        description: str | None = None,
        pass_threshold: float = 1.0,
        idempotency_key: str | None = None,
    ) -> SkillBenchmark:
        """Store benchmark cases (``input``/``expected``) for :meth:`run_evaluation`."""
        wire_cases = [c.model_dump() if isinstance(c, BenchmarkCase) else dict(c) for c in cases]
        body = _drop_none(
            {
                "id": id,
                "skill_key": skill_key,
                "description": description,
                "cases": wire_cases,
                "pass_threshold": pass_threshold,
            }
        )
        return SkillBenchmark.model_validate(self._post(f"{_BASE}/benchmarks", body, idempotency_key))

    def get_benchmark(self, benchmark_id: str) -> SkillBenchmark:
        return SkillBenchmark.model_validate(self._http.json("GET", f"{_BASE}/benchmarks/{benchmark_id}"))

    # ---------------------------------------------------------------- releases

    def promote(
        self,
        candidate_id: str,
        *,
        stage: str = "canary",
        canary_share: float | None = None,
        upgrade_of_release_id: str | None = None,
        upgrade_reason: str | None = None,
        change_summary: str | None = None,
        idempotency_key: str | None = None,
    ) -> SkillRelease:
        """Release a candidate whose latest evaluation passed; it becomes the skill's one active release.

        A canary serves ``canary_share`` of runs (server default when None) and the stable release
        it replaced (``fallback_release_id``) the rest.
        """
        body = _drop_none(
            {
                "stage": stage,
                "canary_share": canary_share,
                "upgrade_of_release_id": upgrade_of_release_id,
                "upgrade_reason": upgrade_reason,
                "change_summary": change_summary,
            }
        )
        data = self._post(f"{_BASE}/candidates/{candidate_id}/promote", body, idempotency_key)
        return SkillRelease.model_validate(data)

    def list_releases(
        self,
        *,
        skill_key: str | None = None,
        active_only: bool = False,
        stage: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> SkillReleaseList:
        params = {
            "skill_key": skill_key,
            "active_only": "true" if active_only else None,
            "stage": stage,
            "limit": limit,
            "offset": offset,
        }
        return SkillReleaseList.model_validate(self._http.json("GET", f"{_BASE}/releases", params=params))

    def iter_releases(
        self,
        *,
        skill_key: str | None = None,
        active_only: bool = False,
        stage: str | None = None,
        page_size: int = 100,
    ) -> Iterator[SkillRelease]:
        """Every matching release, fetched page by page."""
        offset = 0
        while True:
            page = self.list_releases(
                skill_key=skill_key, active_only=active_only, stage=stage, limit=page_size, offset=offset
            )
            for item in page.items:
                yield item
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    def get_release(self, release_id: str) -> SkillRelease:
        return SkillRelease.model_validate(self._http.json("GET", f"{_BASE}/releases/{release_id}"))

    def delete_release(self, release_id: str, *, reason: str | None = None) -> Deleted:
        """Deactivate and soft-delete a release."""
        data = self._http.json("DELETE", f"{_BASE}/releases/{release_id}", json={"reason": reason})
        return Deleted.model_validate(data)

    def rollback(self, release_id: str, *, idempotency_key: str | None = None) -> SkillRelease:
        """Re-activate the skill's previous release (whatever its stage) as a new release."""
        data = self._post(f"{_BASE}/releases/{release_id}/rollback", None, idempotency_key)
        return SkillRelease.model_validate(data)

    def health(self, release_id: str) -> ReleaseHealth:
        """Success and error rates of the release's recent runs against its predecessor's."""
        return ReleaseHealth.model_validate(self._http.json("GET", f"{_BASE}/releases/{release_id}/health"))

    # ---------------------------------------------------------------- use

    def run(
        self,
        skill_key: str,
        *,
        input: Any = None,
        sandbox_id: str | None = None,
        stage: str | None = None,
        timeout: int = 60,
        idempotency_key: str | None = None,
    ) -> SkillRunResult:
        """Run the active release of ``skill_key`` (a fresh sandbox unless ``sandbox_id`` is given)."""
        body = _drop_none({"input": input, "sandbox_id": sandbox_id, "stage": stage, "timeout": timeout})
        body["input"] = input
        data = self._post(
            f"{_BASE}/{skill_key}/run",
            body,
            idempotency_key,
            timeout=max(self._http.config.timeout, timeout + _RUN_SLACK),
        )
        return SkillRunResult.model_validate(data)
