"""Skill invariants on SQLite and PostgreSQL: one active release per skill, rollback chains, real evaluation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from portside.server.auth import Principal
from portside.server.skills.models import SkillReleaseRow
from portside.server.skills.service import SkillService

ADMIN = Principal(key_id="t", name="t", owner="admin", scopes=frozenset({"admin"}))


async def _sandbox_with_exec(api: httpx.AsyncClient, code: str = "print('ok')") -> tuple[str, str]:
    sbx = (await api.post("/v1/sandboxes", json={"ttl": 600})).json()
    r = await api.post(f"/v1/sandboxes/{sbx['id']}/python/exec", json={"code": code})
    assert r.status_code == 200, r.text
    return sbx["id"], r.json()["execution_id"]


async def _passed_candidate(api: httpx.AsyncClient, key: str, exec_id: str) -> str:
    c = (await api.post("/v1/skills/candidates", json={"skill_key": key, "source_execution_ids": [exec_id]})).json()
    r = await api.post(f"/v1/skills/candidates/{c['id']}/evaluate", json={"passed": True, "score": 1.0})
    assert r.status_code == 200
    return str(c["id"])


async def test_concurrent_promotions_leave_one_active_release(api: httpx.AsyncClient, app: FastAPI) -> None:
    _, exec_id = await _sandbox_with_exec(api)
    candidates = [await _passed_candidate(api, "race", exec_id) for _ in range(6)]
    results = await asyncio.gather(
        *(api.post(f"/v1/skills/candidates/{c}/promote", json={"stage": "stable"}) for c in candidates)
    )
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    versions = sorted(r.json()["version"] for r in results)
    assert versions == list(range(1, 7))

    svc: SkillService = app.state.ctx.services["skills"]
    async with svc.db.session() as s:
        active = (
            (
                await s.execute(
                    select(SkillReleaseRow).where(
                        SkillReleaseRow.skill_key == "race", SkillReleaseRow.is_active.is_(True)
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(active) == 1


async def test_rollback_chain_walks_back_through_history(api: httpx.AsyncClient) -> None:
    _, exec_id = await _sandbox_with_exec(api)
    rels: list[dict[str, Any]] = []
    cands = []
    for _ in range(3):
        c = await _passed_candidate(api, "chain", exec_id)
        cands.append(c)
        rels.append((await api.post(f"/v1/skills/candidates/{c}/promote", json={"stage": "stable"})).json())
    r1 = (await api.post(f"/v1/skills/releases/{rels[2]['id']}/rollback")).json()
    assert (r1["version"], r1["rollback_of"], r1["candidate_id"]) == (4, rels[2]["id"], cands[1])
    r2 = (await api.post(f"/v1/skills/releases/{r1['id']}/rollback")).json()
    assert (r2["version"], r2["rollback_of"], r2["candidate_id"]) == (5, r1["id"], cands[0])
    third = await api.post(f"/v1/skills/releases/{r2['id']}/rollback")
    assert third.status_code == 409
    stale = await api.post(f"/v1/skills/releases/{rels[0]['id']}/rollback")
    assert stale.status_code == 409
    all_rel = (await api.get("/v1/skills/releases", params={"skill_key": "chain"})).json()
    assert all_rel["total"] == 5  # history is never rewritten
    assert [r["version"] for r in all_rel["items"] if r["is_active"]] == [5]


async def test_promote_requires_a_pass_and_valid_stage(api: httpx.AsyncClient) -> None:
    _, exec_id = await _sandbox_with_exec(api)
    c = (await api.post("/v1/skills/candidates", json={"skill_key": "k", "source_execution_ids": [exec_id]})).json()
    assert (await api.post(f"/v1/skills/candidates/{c['id']}/promote", json={"stage": "stable"})).status_code == 409
    await api.post(f"/v1/skills/candidates/{c['id']}/evaluate", json={"passed": False, "score": 0.2})
    got = (await api.get(f"/v1/skills/candidates/{c['id']}")).json()
    assert got["status"] == "rejected" and got["latest_pass"] is False
    assert (await api.post(f"/v1/skills/candidates/{c['id']}/promote", json={"stage": "stable"})).status_code == 409
    bad = await api.post(f"/v1/skills/candidates/{c['id']}/promote", json={"stage": "beta"})
    assert bad.status_code == 400


async def test_candidate_evidence_must_exist_and_belong_to_caller(api: httpx.AsyncClient) -> None:
    _, exec_id = await _sandbox_with_exec(api)
    other = (await api.post("/v1/keys", json={"name": "o", "scopes": ["read", "write"], "owner": "mallory"})).json()
    r = await api.post(
        "/v1/skills/candidates",
        json={"skill_key": "k", "source_execution_ids": [exec_id]},
        headers={"Authorization": f"Bearer {other['key']}"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation_error"  # as Bay
    assert r.json()["error"]["details"]["missing"] == [exec_id]
    bad_key = await api.post("/v1/skills/candidates", json={"skill_key": "bad key!", "source_execution_ids": [exec_id]})
    assert bad_key.status_code == 400


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_server_runs_evaluation_and_skill(api: httpx.AsyncClient) -> None:
    sid, exec_id = await _sandbox_with_exec(api)
    payload = (
        await api.post(
            "/v1/skills/payloads",
            json={
                "kind": "python",
                "payload": {"code": "def run(x):\n    return x['a'] + x['b']", "entrypoint": "run"},
            },
        )
    ).json()
    bench = await api.post(
        "/v1/skills/benchmarks",
        json={
            "id": "adder-1",
            "cases": [{"input": {"a": 1, "b": 2}, "expected": 3}, {"input": {"a": 5, "b": 5}, "expected": 10}],
        },
    )
    assert bench.status_code == 201, bench.text
    c = (
        await api.post(
            "/v1/skills/candidates",
            json={"skill_key": "adder", "source_execution_ids": [exec_id], "payload_ref": payload["payload_ref"]},
        )
    ).json()
    ev = await api.post(f"/v1/skills/candidates/{c['id']}/run_evaluation", json={"benchmark_id": "adder-1"})
    assert ev.status_code == 200, ev.text
    assert ev.json()["passed"] is True and ev.json()["score"] == 1.0
    rel = (await api.post(f"/v1/skills/candidates/{c['id']}/promote", json={"stage": "stable"})).json()

    run = await api.post("/v1/skills/adder/run", json={"input": {"a": 20, "b": 22}, "sandbox_id": sid})
    assert run.status_code == 200, run.text
    body = run.json()
    assert body["result"] == 42 and body["success"] and body["release_id"] == rel["id"]
    health = (await api.get(f"/v1/skills/releases/{rel['id']}/health")).json()
    assert health["samples"] == 1 and health["success_rate"] == 1.0

    # A failing benchmark gives a real, failing score.
    await api.post(
        "/v1/skills/benchmarks", json={"id": "adder-wrong", "cases": [{"input": {"a": 1, "b": 1}, "expected": 3}]}
    )
    c2 = (
        await api.post(
            "/v1/skills/candidates",
            json={"skill_key": "adder", "source_execution_ids": [exec_id], "payload_ref": payload["payload_ref"]},
        )
    ).json()
    ev2 = (
        await api.post(f"/v1/skills/candidates/{c2['id']}/run_evaluation", json={"benchmark_id": "adder-wrong"})
    ).json()
    assert ev2["passed"] is False and ev2["score"] == 0.0


async def test_canary_share_routes_a_fraction_of_runs(app: FastAPI, api: httpx.AsyncClient) -> None:
    _, exec_id = await _sandbox_with_exec(api)
    a = await _passed_candidate(api, "split", exec_id)
    b = await _passed_candidate(api, "split", exec_id)
    stable = (await api.post(f"/v1/skills/candidates/{a}/promote", json={"stage": "stable"})).json()
    canary = (await api.post(f"/v1/skills/candidates/{b}/promote", json={"stage": "canary"})).json()
    assert (canary["fallback_release_id"], canary["canary_share"]) == (stable["id"], 0.1)
    active = (await api.get("/v1/skills/releases", params={"skill_key": "split", "active_only": True})).json()
    assert [r["id"] for r in active["items"]] == [canary["id"]]  # the split needs no second active release
    svc: SkillService = app.state.ctx.services["skills"]
    svc._rng.seed(7)
    picks = [(await svc.choose_release("split")).id for _ in range(2000)]
    share = picks.count(canary["id"]) / len(picks)
    assert 0.07 < share < 0.13
    assert set(picks) == {stable["id"], canary["id"]}
    assert (await svc.choose_release("split", "stable")).id == stable["id"]
    assert (await svc.choose_release("split", "canary")).id == canary["id"]


async def test_canary_share_per_release_and_fallback_kept_across_canaries(app: FastAPI, api: httpx.AsyncClient) -> None:
    _, exec_id = await _sandbox_with_exec(api)
    a, b, c = [await _passed_candidate(api, "split2", exec_id) for _ in range(3)]
    stable = (await api.post(f"/v1/skills/candidates/{a}/promote", json={"stage": "stable"})).json()
    assert (stable["canary_share"], stable["fallback_release_id"]) == (None, None)
    c1 = (await api.post(f"/v1/skills/candidates/{b}/promote", json={"stage": "canary", "canary_share": 0.5})).json()
    c2 = (await api.post(f"/v1/skills/candidates/{c}/promote", json={"stage": "canary", "canary_share": 1.0})).json()
    assert c1["canary_share"] == 0.5 and c2["fallback_release_id"] == stable["id"]  # canary replaces canary
    svc: SkillService = app.state.ctx.services["skills"]
    assert {(await svc.choose_release("split2")).id for _ in range(50)} == {c2["id"]}
    bad = await api.post(f"/v1/skills/candidates/{a}/promote", json={"stage": "stable", "canary_share": 0.3})
    assert bad.status_code == 400
    # the fallback's candidate still serves runs: it cannot be deleted
    assert (await api.delete(f"/v1/skills/candidates/{a}")).status_code == 409
    # deleting the active canary puts its stable fallback back in charge
    gone = (await api.request("DELETE", f"/v1/skills/releases/{c2['id']}", json={"reason": "bad"})).json()
    assert (gone["id"], gone["delete_reason"], gone["deleted_by"]) == (c2["id"], "bad", "admin")
    assert gone["deleted_at"]
    active = (await api.get("/v1/skills/releases", params={"skill_key": "split2", "active_only": True})).json()
    assert [r["id"] for r in active["items"]] == [stable["id"]]


async def test_rollback_crosses_stages_and_restores_the_split(api: httpx.AsyncClient) -> None:
    _, exec_id = await _sandbox_with_exec(api)
    a, b, c = [await _passed_candidate(api, "cross", exec_id) for _ in range(3)]
    v1 = (await api.post(f"/v1/skills/candidates/{a}/promote", json={"stage": "canary"})).json()
    first = await api.post(f"/v1/skills/releases/{v1['id']}/rollback")
    assert first.status_code == 409  # a skill's very first release
    v2 = (await api.post(f"/v1/skills/candidates/{b}/promote", json={"stage": "stable"})).json()
    v3 = (await api.post(f"/v1/skills/releases/{v2['id']}/rollback")).json()
    assert (v3["version"], v3["stage"], v3["candidate_id"], v3["rollback_of"]) == (3, "canary", a, v2["id"])
    # stable v4 → canary v5 (fallback v4) → stable v6 → rollback v6 gives v5's canary with v5's split
    v4 = (await api.post(f"/v1/skills/candidates/{b}/promote", json={"stage": "stable"})).json()
    v5 = (await api.post(f"/v1/skills/candidates/{c}/promote", json={"stage": "canary", "canary_share": 0.3})).json()
    v6 = (await api.post(f"/v1/skills/candidates/{a}/promote", json={"stage": "stable"})).json()
    v7 = (await api.post(f"/v1/skills/releases/{v6['id']}/rollback")).json()
    assert (v7["stage"], v7["candidate_id"], v7["fallback_release_id"], v7["canary_share"]) == (
        "canary",
        c,
        v4["id"],
        0.3,
    )
    assert v5["fallback_release_id"] == v4["id"]
    # a deleted previous release is skipped
    await api.request("DELETE", f"/v1/skills/releases/{v4['id']}")
    v8 = (await api.post(f"/v1/skills/releases/{v7['id']}/rollback")).json()
    assert (v8["version"], v8["candidate_id"]) == (8, a)  # v7 inherited v5's predecessor v4 (deleted) → v3


async def test_payload_refs_other_than_ours_are_400(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/skills/payloads/s3%3A%2F%2Fcandidate%2Fpayload-1")
    assert r.status_code == 400 and "Unsupported payload_ref" in r.json()["error"]["message"]
    assert (await api.get("/v1/skills/payloads/s3://candidate/payload-1")).status_code == 400
    assert (await api.get("/v1/skills/payloads/sha256-" + "0" * 64)).status_code == 404
    made = (await api.post("/v1/skills/payloads", json={"payload": {"a": 1}, "kind": "generic"})).json()
    got = await api.get(f"/v1/skills/payloads/blob:{made['payload_ref']}")
    assert got.status_code == 200 and got.json()["payload"] == {"a": 1}
