"""Retention, one kind at a time, on SQLite and PostgreSQL: what is past retention goes, the rest stays."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from portside.server.clock import utcnow
from portside.server.context import AppContext
from portside.server.retention.config import RetentionSettings
from portside.server.retention.service import GC_LOCK_ID, RetentionService
from portside.server.sandboxes.models import CargoRow, ExecutionRow, SandboxRow
from portside.server.skills.models import SkillCandidateRow, SkillRunRow
from portside.server.store.core_models import IdempotencyRow
from portside.server.workers.models import LeaseRow, TaskProgressRow, TaskRow

DAY = timedelta(days=1)


def _ctx(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.ctx
    return ctx


def _retention(app: FastAPI) -> RetentionService:
    return _ctx(app).service("retention", RetentionService)


async def _add(app: FastAPI, *rows: Any) -> None:
    async with _ctx(app).db.transaction() as s:
        for row in rows:
            s.add(row)
            await s.flush()


async def _ids(app: FastAPI, model: Any) -> set[str]:
    pk = next(iter(model.__table__.primary_key.columns))
    async with _ctx(app).db.session() as s:
        return {str(v) for v in (await s.execute(select(pk))).scalars()}


def _cargo(cid: str, deleted: datetime | None = None) -> CargoRow:
    now = utcnow()
    return CargoRow(
        id=cid, owner="o", managed=True, backend="local", size_limit_mb=10, last_accessed_at=now, deleted_at=deleted
    )


def _sandbox(sid: str, cid: str, deleted: datetime | None = None, expires: datetime | None = None) -> SandboxRow:
    return SandboxRow(
        id=sid, owner="o", profile="python-default", status="idle", cargo_id=cid, deleted_at=deleted, expires_at=expires
    )


def _exec(eid: str, sid: str, created: datetime, output: str = "x" * 1000) -> ExecutionRow:
    return ExecutionRow(
        id=eid,
        sandbox_id=sid,
        owner="o",
        exec_type="shell",
        code="echo",
        success=True,
        output=output,
        created_at=created,
    )


async def test_execution_output_of_deleted_sandboxes(app: FastAPI) -> None:
    now = utcnow()
    await _add(
        app,
        _cargo("c1"),
        _cargo("c2"),
        _cargo("c3"),
        _sandbox("s_old", "c1", deleted=now - 2 * DAY),
        _sandbox("s_recent", "c2", deleted=now - timedelta(hours=1)),
        _sandbox("s_live", "c3"),
        _exec("e_old", "s_old", now - 3 * DAY),
        _exec("e_old_cited", "s_old", now - 3 * DAY),
        _exec("e_old_run", "s_old", now - 3 * DAY),
        _exec("e_recent", "s_recent", now - 3 * DAY),
        _exec("e_live", "s_live", now - 30 * DAY),
        _exec("e_orphan", "s_gone", now - 3 * DAY),
        _exec("e_orphan_new", "s_gone", now - timedelta(hours=1)),
        SkillCandidateRow(id="cand", skill_key="k", source_execution_ids=["e_old_cited"], status="draft"),
        SkillRunRow(
            id="run",
            release_id="r",
            skill_key="k",
            execution_id="e_old_run",
            success=True,
            duration_ms=1,
            created_at=now,
        ),
    )
    report = await _retention(app).run()
    assert await _ids(app, ExecutionRow) == {"e_old_cited", "e_old_run", "e_recent", "e_live", "e_orphan_new"}
    assert report.kinds["execution_output"].rows == 2
    assert report.kinds["execution_output"].bytes >= 2000


async def test_finished_tasks_with_their_leases_and_progress(app: FastAPI) -> None:
    now = utcnow()

    def task(tid: str, status: str, finished: datetime | None) -> TaskRow:
        return TaskRow(
            id=tid,
            owner="o",
            capability="cap",
            status=status,
            input={"a": 1},
            output={"b": "y" * 500},
            max_attempts=3,
            available_at=now - 30 * DAY,
            finished_at=finished,
        )

    def lease(lid: str, tid: str, state: str) -> LeaseRow:
        return LeaseRow(
            id=lid,
            task_id=tid,
            worker_id="w",
            key_id="k",
            capability="cap",
            attempt=1,
            state=state,
            ttl_ms=1000,
            issued_at=now - 10 * DAY,
            expires_at=now - 10 * DAY,
        )

    await _add(
        app,
        task("t_old", "succeeded", now - 8 * DAY),
        task("t_new", "failed", now - DAY),
        task("t_running", "running", None),
        task("t_queued", "queued", None),
        lease("l_old", "t_old", "acked"),
        lease("l_run", "t_running", "active"),
        lease("l_orphan", "t_vanished", "expired"),
        lease("l_orphan_active", "t_vanished", "active"),
        TaskProgressRow(task_id="t_old", lease_id="l_old", percent=50.0, at=now - 9 * DAY),
        TaskProgressRow(task_id="t_running", lease_id="l_run", percent=10.0, at=now - 9 * DAY),
    )
    # "running" long ago: its updated_at is old too, and it still must stay.
    async with _ctx(app).db.transaction() as s:
        await s.execute(text("UPDATE tasks SET updated_at = :t"), {"t": now - 30 * DAY})
    report = await _retention(app).run()
    assert await _ids(app, TaskRow) == {"t_new", "t_running", "t_queued"}
    assert await _ids(app, LeaseRow) == {"l_run", "l_orphan_active"}
    async with _ctx(app).db.session() as s:
        progress = (await s.execute(select(TaskProgressRow.task_id))).scalars().all()
    assert progress == ["t_running"]
    assert report.kinds["finished_tasks"].rows == 4  # t_old, l_old, its progress, l_orphan
    assert report.kinds["finished_tasks"].bytes >= 500


async def test_deleted_sandbox_and_cargo_records(app: FastAPI) -> None:
    now = utcnow()
    await _add(
        app,
        _cargo("c_old", deleted=now - 8 * DAY),
        _cargo("c_shared", deleted=now - 8 * DAY),
        _cargo("c_live"),
        _sandbox("s_old", "c_old", deleted=now - 8 * DAY),
        _sandbox("s_recent", "c_shared", deleted=now - DAY),
        _sandbox("s_live", "c_live"),
    )
    report = await _retention(app).run()
    assert await _ids(app, SandboxRow) == {"s_recent", "s_live"}
    # c_shared is still named by a sandbox record that is not old enough to go.
    assert await _ids(app, CargoRow) == {"c_shared", "c_live"}
    assert report.kinds["deleted_records"].rows == 2


async def test_idempotency_records(app: FastAPI) -> None:
    now = utcnow()

    def rec(key: str, state: str, created: datetime, lease: datetime | None = None) -> IdempotencyRow:
        return IdempotencyRow(
            scope="s",
            key=key,
            request_hash="h",
            state=state,
            status_code=200 if state == "completed" else None,
            headers={},
            body=b"z" * 300 if state == "completed" else None,
            created_at=created,
            note="",
            lease_expires_at=lease,
        )

    await _add(
        app,
        rec("done_old", "completed", now - 2 * DAY),
        rec("done_new", "completed", now - timedelta(hours=1)),
        rec("pending_live", "pending", now - 2 * DAY, lease=now + timedelta(seconds=30)),
        rec("pending_dead", "pending", now - 2 * DAY, lease=now - DAY),
    )
    report = await _retention(app).run()
    async with _ctx(app).db.session() as s:
        keys = set((await s.execute(select(IdempotencyRow.key))).scalars())
    assert keys == {"done_new", "pending_live"}
    assert report.kinds["idempotency_records"].rows == 2
    assert report.kinds["idempotency_records"].bytes >= 300


async def test_a_negative_retention_keeps_a_kind_forever(app: FastAPI) -> None:
    now = utcnow()
    await _add(app, _cargo("c"), _sandbox("s", "c", deleted=now - 30 * DAY), _exec("e", "s", now - 30 * DAY))
    svc = _retention(app)
    svc.settings = RetentionSettings(execution_output_hours=-1, deleted_records_hours=-1)
    report = await svc.run()
    assert "execution_output" not in report.kinds
    assert await _ids(app, ExecutionRow) == {"e"}
    assert await _ids(app, SandboxRow) == {"s"}


async def test_admin_route_metrics_and_scope(app: FastAPI, api: httpx.AsyncClient) -> None:
    now = utcnow()
    old = now - 30 * DAY
    await _add(app, _cargo("c", deleted=old), _sandbox("s", "c", deleted=old), _exec("e", "s", old))
    r = await api.post("/v1/admin/gc")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["purged"]["execution_output"]["rows"] == 1
    assert body["purged"]["deleted_records"]["rows"] == 2
    assert set(body["purged"]) == {
        "expired_sandboxes",
        "execution_output",
        "finished_tasks",
        "deleted_records",
        "idempotency_records",
    }
    metrics = (await api.get("/v1/metrics")).json()
    assert metrics["retention"]["runs"] == 1
    assert metrics["retention"]["purged"]["execution_output"]["rows"] == 1
    assert metrics["retention"]["last_run_at"] > 0
    prom = (await api.get("/metrics/prometheus")).text
    assert 'portside_retention_purged_rows_total{kind="execution_output"} 1.0' in prom  # a counter
    assert "portside_retention_last_run_timestamp_seconds" in prom

    key = (await api.post("/v1/keys", json={"name": "rw", "scopes": ["read", "write"]})).json()["key"]
    r = await api.post("/v1/admin/gc", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403


@pytest.mark.postgres
async def test_one_replica_at_a_time_on_postgres(app: FastAPI, api: httpx.AsyncClient) -> None:
    ctx = _ctx(app)
    if ctx.db.is_sqlite:
        pytest.skip("advisory locks are PostgreSQL's")
    async with ctx.db.engine.connect() as other:  # another replica purging right now
        assert (await other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": GC_LOCK_ID})).scalar()
        report = await _retention(app).run()
        assert report.skipped and not report.kinds
        r = await api.post("/v1/admin/gc")
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "gc_in_progress"
        await other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": GC_LOCK_ID})
        await other.commit()
    assert not (await _retention(app).run()).skipped
