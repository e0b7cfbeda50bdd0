"""``client.skills`` (sync and async) against a live server: the whole lifecycle and its refusals."""

from __future__ import annotations

import httpx
import pytest

import portside
from portside.types.skills import BenchmarkCase
from tests.conftest import ADMIN_KEY, LiveServer

pytestmark = pytest.mark.bwrap

DOUBLE = {"code": "def run(value):\n    return value * 2\n", "entrypoint": "run"}


def _execution(server: LiveServer, code: str = "print('evidence')") -> str:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as h:
        sandbox = h.post("/v1/sandboxes", json={"ttl": 600}).json()["id"]
        res = h.post(f"/v1/sandboxes/{sandbox}/python/exec", json={"code": code}).json()
        h.delete(f"/v1/sandboxes/{sandbox}")
    return str(res["execution_id"])


def test_sync_lifecycle(live_server: LiveServer) -> None:
    exec_id = _execution(live_server)
    with portside.Client(live_server.url, ADMIN_KEY) as c:
        payload = c.skills.create_payload(DOUBLE, kind="python")
        assert payload.payload_ref.startswith("sha256-")
        assert c.skills.create_payload(DOUBLE, kind="python").payload_ref == payload.payload_ref
        assert c.skills.get_payload(payload.payload_ref).payload == DOUBLE

        cand = c.skills.create_candidate(
            skill_key="double", source_execution_ids=[exec_id], payload_ref=payload.payload_ref, summary="x2"
        )
        assert (cand.status, cand.skill_type, cand.summary) == ("draft", "code", "x2")
        assert c.skills.get_candidate(cand.id).id == cand.id
        assert [x.id for x in c.skills.list_candidates(skill_key="double", status="draft").items] == [cand.id]
        with pytest.raises(portside.ConflictError):
            c.skills.promote(cand.id)  # never evaluated

        bench = c.skills.create_benchmark(
            id="double-bench",
            skill_key="double",
            cases=[BenchmarkCase(input=2, expected=4), {"input": 5, "expected": 10, "name": "five"}],
        )
        assert c.skills.get_benchmark(bench.id).cases[1].name == "five"
        ev = c.skills.run_evaluation(cand.id, benchmark_id=bench.id)
        assert (ev.passed, ev.score, ev.benchmark_id) == (True, 1.0, "double-bench")
        assert c.skills.get_candidate(cand.id).status == "evaluating"

        canary = c.skills.promote(cand.id, stage="canary")
        stable = c.skills.promote(cand.id, stage="stable", change_summary="first stable")
        assert (canary.version, stable.version, stable.change_summary) == (1, 2, "first stable")
        assert c.skills.get_candidate(cand.id).status == "promoted_stable"
        active = c.skills.list_releases(skill_key="double", active_only=True)
        assert [r.id for r in active.items] == [stable.id]  # one active release per skill

        run = c.skills.run("double", input=21, stage="stable")
        assert (run.success, run.result, run.release_id, run.version) == (True, 42, stable.id, 2)
        health = c.skills.health(stable.id)
        assert (health.samples, health.success_rate, health.should_rollback) == (1, 1.0, False)

        # a failing second candidate, then a passing one that replaces stable, then a rollback
        bad = c.skills.create_candidate(skill_key="double", source_execution_ids=[exec_id])
        assert c.skills.evaluate(bad.id, passed=False, report="wrong output").passed is False
        assert c.skills.get_candidate(bad.id).status == "rejected"
        good = c.skills.create_candidate(skill_key="double", source_execution_ids=[exec_id])
        c.skills.evaluate(good.id, passed=True, score=0.8)
        newer = c.skills.promote(good.id, stage="stable")
        back = c.skills.rollback(newer.id)
        assert (back.rollback_of, back.candidate_id, back.stage, back.is_active) == (newer.id, cand.id, "stable", True)
        assert c.skills.get_candidate(good.id).status == "rolled_back"
        assert c.skills.get_release(newer.id).is_active is False
        with pytest.raises(portside.ConflictError):
            c.skills.rollback(newer.id)  # no longer active

        assert c.skills.delete_release(canary.id, reason="done").deleted
        with pytest.raises(portside.NotFoundError):
            c.skills.get_release(canary.id)
        assert c.skills.delete_candidate(bad.id, reason="rejected").deleted
        with pytest.raises(portside.ConflictError):
            c.skills.delete_candidate(cand.id)  # backs the active stable release
        with pytest.raises(portside.ValidationError):  # unknown evidence is a bad request, as on Bay
            c.skills.create_candidate(skill_key="double", source_execution_ids=["exec_missing"])
        with pytest.raises(portside.ValidationError):
            c.skills.create_candidate(skill_key="bad key!", source_execution_ids=[exec_id])


async def test_async_run_and_idempotent_create(live_server: LiveServer) -> None:
    exec_id = _execution(live_server, "print(3 * 7)")
    async with portside.AsyncClient(live_server.url, ADMIN_KEY) as c:
        first = await c.skills.create_candidate(
            skill_key="replay", source_execution_ids=[exec_id], idempotency_key="k1"
        )
        again = await c.skills.create_candidate(
            skill_key="replay", source_execution_ids=[exec_id], idempotency_key="k1"
        )
        assert first.id == again.id  # the server replayed the first response
        await c.skills.evaluate(first.id, passed=True)
        await c.skills.promote(first.id, stage="stable")
        run = await c.skills.run("replay")  # no payload: the evidence is replayed
        assert run.success and run.output == "21\n" and run.stage == "stable"
        page = await c.skills.list_releases(skill_key="replay", stage="stable")
        assert page.total == 1
