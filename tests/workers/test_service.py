"""The in-process service API other areas (the flows engine) use: ``ctx.services["workers"]``."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi import FastAPI

from portside.server.auth import Principal
from portside.server.errors import Conflict, InvalidInput, NotFound
from portside.server.workers.broker import ResultRequest
from portside.server.workers.domain import DisconnectFrame, LeaseFrame
from portside.server.workers.service import TaskSpec, WorkersService
from portside.server.workers.sessions import Session
from portside.server.workers.tokens import WorkerCaller
from tests.workers.helpers import next_lease, service

CAP = "svc/tests/echo"
ADMIN = WorkerCaller(principal=Principal(key_id="k_admin", name="admin", owner="admin", scopes=frozenset({"admin"})))


async def _worker(svc: WorkersService, worker_id: str = "svc-w", concurrency: int = 4) -> Session:
    session = await svc.broker.open_stream(ADMIN, worker_id, "portside")
    await svc.broker.register(
        ADMIN,
        worker_id,
        kind="portside",
        protocol_version="1.0.0",
        capabilities=[{"type": CAP, "scope": "any", "concurrency": concurrency}],
    )
    return session


async def _ack(svc: WorkersService, lease_id: str, output: object) -> None:
    await svc.broker.result(ResultRequest(lease_id=lease_id, caller=ADMIN, worker_id=None, ok=True, output=output))


async def test_submit_wait_and_result(app: FastAPI) -> None:
    svc: WorkersService = app.state.ctx.services["workers"]
    session = await _worker(svc)
    task = await svc.submit_task(CAP, {"q": 1}, owner="alice", workflow_id="flow-1", metadata={"node": "n1"})
    assert task.status == "queued" and task.owner == "alice" and not task.done

    waiter = asyncio.create_task(svc.wait_task(task.id, timeout=10))
    lease = await next_lease(session)
    assert (lease.task_id, lease.workflow_id, lease.metadata, lease.attempt) == (task.id, "flow-1", {"node": "n1"}, 1)
    t0 = time.monotonic()
    await _ack(svc, lease.lease_id, {"a": 2})
    done = await asyncio.wait_for(waiter, 5)
    assert time.monotonic() - t0 < 0.5  # woken by the in-process event, not by polling
    assert done.status == "succeeded" and done.output == {"a": 2} and done.done
    assert (await svc.get_task(task.id, owner="alice")).output == {"a": 2}
    with pytest.raises(NotFound):
        await svc.get_task(task.id, owner="bob")
    await svc.broker.close_stream(session)


async def test_idempotency_timeout_and_cancel(app: FastAPI) -> None:
    svc = service(app)
    first = await svc.submit_task(CAP, 1, owner="o", idempotency_key="k1")
    assert (await svc.submit_task(CAP, 1, owner="o", idempotency_key="k1")).id == first.id
    assert (await svc.submit_task(CAP, 1, owner="other", idempotency_key="k1")).id != first.id
    with pytest.raises(Conflict):
        await svc.submit_task(CAP, 2, owner="o", idempotency_key="k1")
    with pytest.raises(InvalidInput):
        await svc.submit_task("not a type", 1, owner="o")

    short = await svc.submit_task(CAP, None, owner="o", timeout_s=0.05)
    await asyncio.sleep(0.1)
    await svc.broker.reap_once()
    timed_out = await svc.get_task(short.id)
    assert timed_out.status == "failed" and timed_out.error is not None and timed_out.error["code"] == "timeout"

    cancelled = await svc.cancel_task(first.id, reason="flow cancelled")
    assert cancelled.status == "cancelled"
    assert (await svc.wait_task(first.id, timeout=0)).status == "cancelled"

    batch = await svc.submit_tasks([TaskSpec(capability=CAP, input=i) for i in range(3)], owner="o")
    assert len({t.id for t in batch}) == 3
    tasks, cursor = await svc.list_tasks(owner="o", status="queued")
    assert {t.id for t in tasks} >= {t.id for t in batch} and cursor is None
    counts = await svc.task_counts(owner="o")
    assert counts["failed"] == 1 and counts["cancelled"] == 1 and counts["queued"] == 3


async def test_lease_expiry_requeues_then_gives_up(app: FastAPI) -> None:
    svc = service(app)
    svc.config.lease_ttl_s = 0.1
    session = await _worker(svc, "svc-expiry")
    task = await svc.submit_task(CAP, None, owner="o", max_attempts=2)
    first = await next_lease(session)
    await asyncio.sleep(0.15)
    await svc.broker.reap_once()
    again = await svc.get_task(task.id)
    assert again.attempt >= 1 and again.error is not None and again.error["code"] == "lease_expired"
    # the old holder may not complete it any more
    with pytest.raises(Conflict) as ei:
        await _ack(svc, first.lease_id, "late")
    assert ei.value.code == "lease_expired"
    # a worker that let a lease expire gets nothing new until it heartbeats again
    assert session.paused
    await svc.broker.dispatch_round()
    assert not [f for f in list(session.outbox._queue) if isinstance(f, LeaseFrame)]  # only the cancel
    await svc.broker.heartbeat(ADMIN, "svc-expiry", [])
    second = await next_lease(session)
    assert second.task_id == task.id and second.attempt == 2
    await asyncio.sleep(0.15)
    await svc.broker.reap_once()
    final = await svc.get_task(task.id)
    assert final.status == "failed" and final.error is not None
    assert final.error["code"] == "max_attempts_exceeded" and final.error["last_code"] == "lease_expired"
    leases = await svc.task_leases(task.id)
    assert [x.state for x in leases] == ["expired", "expired"]
    await svc.broker.close_stream(session)


async def test_undelivered_leases_go_back_when_a_stream_closes(app: FastAPI) -> None:
    svc = service(app)
    session = await _worker(svc, "svc-close")
    task = await svc.submit_task(CAP, None, owner="o")
    await svc.broker.dispatch_round()
    await svc.broker.close_stream(session)  # frames never written to the socket
    back = await svc.get_task(task.id)
    assert back.status == "queued" and back.attempt == 0
    workers = await svc.list_workers()
    assert [(w.id, w.status) for w in workers] == [("svc-close", "disconnected")]


async def test_unsupported_protocol_closes_the_stream(app: FastAPI) -> None:
    svc = service(app)
    session = await svc.broker.open_stream(ADMIN, "svc-old", "neuron")
    with pytest.raises(InvalidInput) as ei:
        await svc.broker.register(
            ADMIN, "svc-old", kind="neuron", protocol_version="2.1.0", capabilities=[{"type": CAP, "concurrency": 1}]
        )
    assert ei.value.code == "protocol_version_unsupported"
    frame = await session.outbox.get()
    assert isinstance(frame, DisconnectFrame) and frame.code == "protocol_version_unsupported"
    assert not frame.reconnectable and await session.outbox.get() is None
    await svc.broker.close_stream(session)
