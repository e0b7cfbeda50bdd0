"""The upstream shipyard-neo-sdk 0.2.0 runs the whole skill lifecycle (seed steps 1-7) against Portside."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from shipyard_neo import BayClient, ConflictError, SkillReleaseStage, ValidationError

from tests.conftest import ADMIN_KEY, LiveServer, make_settings

pytestmark = pytest.mark.bwrap


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(make_settings(tmp_path / "data", sandbox_warm_pool=0)).start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_seed_lifecycle(server: LiveServer) -> None:
    async with BayClient(endpoint_url=server.url, access_token=ADMIN_KEY) as client:
        sandbox = await client.create_sandbox(profile="python-default", ttl=600)

        # 1) evidence
        e1 = await sandbox.python.exec("rows = [1, 2, None]\nprint(len(rows))", tags="etl", description="Load CSV data")
        e2 = await sandbox.shell.exec("echo step2", tags="etl")
        assert e1.success and e2.success and e1.execution_id and e2.execution_id

        # 2) annotate, 3) query
        await sandbox.annotate_execution(
            e1.execution_id, description="Load and validate", tags="etl,validated", notes="handles missing values"
        )
        etl = await sandbox.get_execution_history(tags="etl", success_only=True)
        assert {e.id for e in etl.entries} == {e1.execution_id, e2.execution_id}
        assert (await sandbox.get_execution(e1.execution_id)).notes == "handles missing values"
        assert (await sandbox.get_last_execution(exec_type="python")).id == e1.execution_id

        # 4) candidate
        payload = await client.skills.create_payload(
            payload={"steps": [{"type": "python", "code": "print(1)"}]}, kind="steps"
        )
        assert (await client.skills.get_payload(payload.payload_ref)).payload["steps"][0]["code"] == "print(1)"
        candidate = await client.skills.create_candidate(
            skill_key="etl-loader",
            source_execution_ids=[e1.execution_id, e2.execution_id],
            scenario_key="csv-import",
            payload_ref="s3://skills/etl-loader/v1",
        )
        assert candidate.status.value == "draft"
        assert candidate.source_execution_ids == [e1.execution_id, e2.execution_id]
        with pytest.raises(ValidationError):  # Bay: unknown evidence is a 400 validation_error
            await client.skills.create_candidate(skill_key="x", source_execution_ids=["exec_missing"])

        # promoting before evaluation is refused
        with pytest.raises(ConflictError):
            await client.skills.promote_candidate(candidate.id, stage=SkillReleaseStage.CANARY)

        # 5) evaluate
        evaluation = await client.skills.evaluate_candidate(
            candidate.id, passed=True, score=0.96, benchmark_id="bench-etl-001", report="all checks passed"
        )
        assert evaluation.passed and evaluation.score == 0.96

        # 6) promote canary then stable
        canary = await client.skills.promote_candidate(candidate.id, stage=SkillReleaseStage.CANARY)
        assert canary.stage == SkillReleaseStage.CANARY and canary.is_active and canary.version == 1
        stable = await client.skills.promote_candidate(candidate.id, stage=SkillReleaseStage.STABLE)
        assert stable.version == 2 and stable.stage == SkillReleaseStage.STABLE

        # a second candidate replaces the stable release; one active release per skill, as on Bay
        c2 = await client.skills.create_candidate(skill_key="etl-loader", source_execution_ids=[e1.execution_id])
        await client.skills.evaluate_candidate(c2.id, passed=True, score=1.0)
        stable2 = await client.skills.promote_candidate(c2.id, stage=SkillReleaseStage.STABLE)
        active = await client.skills.list_releases(skill_key="etl-loader", active_only=True)
        assert [r.id for r in active.items] == [stable2.id]

        # 7) rollback
        rolled = await client.skills.rollback_release(stable2.id)
        assert rolled.rollback_of == stable2.id and rolled.candidate_id == candidate.id and rolled.is_active
        assert rolled.version == 4
        stable_now = await client.skills.list_releases(skill_key="etl-loader", stage="stable", active_only=True)
        assert [r.id for r in stable_now.items] == [rolled.id]
        health = await client.skills.get_release_health(rolled.id)
        assert health.release_id == rolled.id and health.samples == 0

        # query tools
        listed = await client.skills.list_candidates(skill_key="etl-loader")
        assert listed.total == 2
        assert (await client.skills.list_candidates(status="draft")).total == 0
        assert (await client.skills.list_releases(stage="stable")).total == 3
        page = await client.skills.list_candidates(limit=1, offset=1)
        assert len(page.items) == 1
        await sandbox.delete()


# ---------------------------------------------------------------- issue 21: Bay's release semantics


@pytest.fixture(scope="module")
def bay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = LiveServer(make_settings(tmp_path_factory.mktemp("bay") / "data", sandbox_warm_pool=0)).start()
    try:
        yield srv
    finally:
        srv.stop()


async def _passed(client: BayClient, key: str, exec_id: str) -> str:
    cand = await client.skills.create_candidate(skill_key=key, source_execution_ids=[exec_id])
    await client.skills.evaluate_candidate(cand.id, passed=True, score=1.0)
    return cand.id


async def _evidence(client: BayClient) -> str:
    sandbox = await client.create_sandbox(profile="python-default", ttl=600)
    result = await sandbox.python.exec("print('evidence')")
    assert result.execution_id
    return result.execution_id


async def test_rollback_goes_to_the_previous_release_whatever_its_stage(bay: LiveServer) -> None:
    """canary v1 → stable v2 → rollback(v2) re-activates v1 (was 409 "no previous release")."""
    async with BayClient(endpoint_url=bay.url, access_token=ADMIN_KEY) as client:
        exec_id = await _evidence(client)
        c1, c2 = await _passed(client, "rb-stage", exec_id), await _passed(client, "rb-stage", exec_id)
        v1 = await client.skills.promote_candidate(c1, stage=SkillReleaseStage.CANARY)
        with pytest.raises(ConflictError):  # a skill's very first release has nothing to go back to
            await client.skills.rollback_release(v1.id)
        v2 = await client.skills.promote_candidate(c2, stage=SkillReleaseStage.STABLE)
        v3 = await client.skills.rollback_release(v2.id)
        assert (v3.version, v3.rollback_of, v3.candidate_id, v3.is_active) == (3, v2.id, c1, True)
        assert v3.stage == SkillReleaseStage.CANARY  # the previous release's stage, as Bay
        assert (await client.skills.get_candidate(c2)).status.value == "rolled_back"
        active = await client.skills.list_releases(skill_key="rb-stage", active_only=True)
        assert [r.id for r in active.items] == [v3.id]


async def test_one_active_release_per_skill(bay: LiveServer) -> None:
    """Bay's suite: stable v1, canary v2 → list_releases(active_only=True) has 1 item (was 2)."""
    async with BayClient(endpoint_url=bay.url, access_token=ADMIN_KEY) as client:
        exec_id = await _evidence(client)
        a, b = await _passed(client, "one-active", exec_id), await _passed(client, "one-active", exec_id)
        canary = await client.skills.promote_candidate(a, stage=SkillReleaseStage.CANARY)
        stable = await client.skills.promote_candidate(a, stage=SkillReleaseStage.STABLE)
        active = await client.skills.list_releases(skill_key="one-active", active_only=True)
        assert (active.total, [r.id for r in active.items]) == (1, [stable.id])
        every = await client.skills.list_releases(skill_key="one-active")
        assert {r.id: r.is_active for r in every.items} == {canary.id: False, stable.id: True}
        canary2 = await client.skills.promote_candidate(b, stage=SkillReleaseStage.CANARY)
        active = await client.skills.list_releases(skill_key="one-active", active_only=True)
        assert (active.total, active.items[0].id) == (1, canary2.id)
        rolled = await client.skills.rollback_release(canary2.id)
        assert (rolled.stage, rolled.candidate_id) == (SkillReleaseStage.STABLE, a)


async def test_delete_release_answers_bays_body(bay: LiveServer) -> None:
    async with BayClient(endpoint_url=bay.url, access_token=ADMIN_KEY) as client:
        exec_id = await _evidence(client)
        rel = await client.skills.promote_candidate(await _passed(client, "del-body", exec_id), stage="stable")
        body = await client.skills.delete_release(rel.id, reason="obsolete")
        assert body["id"] == rel.id and body["deleted_by"] and body["delete_reason"] == "obsolete"
        assert body["deleted_at"]
        cand = await client.skills.create_candidate(skill_key="del-body", source_execution_ids=[exec_id])
        body = await client.skills.delete_candidate(cand.id)
        assert body["id"] == cand.id and body["deleted_at"] and body["delete_reason"] is None


async def test_bad_references_are_validation_errors(bay: LiveServer) -> None:
    async with BayClient(endpoint_url=bay.url, access_token=ADMIN_KEY) as client:
        with pytest.raises(ValidationError):  # unknown execution id: 400 validation_error (was 404)
            await client.skills.create_candidate(skill_key="k", source_execution_ids=["exec-missing"])
        with pytest.raises(ValidationError, match="Unsupported payload_ref"):  # was 404
            await client.skills.get_payload("s3://candidate/payload-1")
