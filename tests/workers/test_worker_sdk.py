"""``portside.Worker`` against a live server: handlers, outcomes, concurrency, cancel, drain, auth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import portside
from tests.conftest import ADMIN_KEY, LiveServer, make_settings
from tests.workers.helpers import live, until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = live(make_settings(Path(tmp_path_factory.mktemp("worker")) / "data"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[portside.AsyncClient]:
    async with portside.AsyncClient(server.url, ADMIN_KEY) as c:
        yield c


def make_worker(server: LiveServer, worker_id: str, **kw: Any) -> portside.Worker:
    kw.setdefault("api_key", ADMIN_KEY)
    return portside.Worker(server.url, worker_id=worker_id, heartbeat_interval=0.2, initial_reconnect_delay=0.05, **kw)


async def test_outcomes(server: LiveServer, client: portside.AsyncClient) -> None:
    w = make_worker(server, "sdk-outcomes")
    calls: list[int] = []

    @w.handler("sdk/echo", concurrency=4, output_schema={"type": "object", "required": ["echo"]})
    async def echo(inp: Any, ctx: portside.TaskContext) -> Any:
        await ctx.progress(25, "quarter", {"k": 1})
        return {"echo": inp, "attempt": ctx.attempt, "task": ctx.task_id}

    @w.handler("sdk/fail")
    async def fail(inp: Any, ctx: portside.TaskContext) -> Any:
        ctx.fail("cannot", code="NOPE", details={"why": "x"})

    @w.handler("sdk/flaky")
    async def flaky(inp: Any, ctx: portside.TaskContext) -> Any:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ValueError("try again")
        return "ok"

    @w.handler("sdk/sync")
    def sync_handler(inp: Any, ctx: portside.TaskContext) -> Any:
        return inp * 2

    @w.handler("sdk/typed", input_schema={"type": "integer"})
    async def typed(inp: Any, ctx: portside.TaskContext) -> Any:
        return inp

    @w.handler("sdk/badout", output_schema={"type": "string"})
    async def badout(inp: Any, ctx: portside.TaskContext) -> Any:
        return 5

    async with w:
        await w.wait_registered(10)
        done = await client.tasks.run("sdk/echo", {"a": 1}, timeout=10)
        assert done.status == "succeeded" and done.output["echo"] == {"a": 1} and done.output["attempt"] == 1
        assert done.progress is not None and done.progress["message"] == "quarter"

        failed = await client.tasks.run("sdk/fail", None, timeout=10)
        assert failed.status == "failed" and failed.error is not None
        assert (failed.error["code"], failed.error["kind"], failed.error["details"]) == (
            "NOPE",
            "terminal",
            {"why": "x"},
        )

        retried = await client.tasks.run("sdk/flaky", None, timeout=10)
        assert retried.status == "succeeded" and retried.attempt == 2 and calls == [1, 2]

        assert (await client.tasks.run("sdk/sync", 21, timeout=10)).output == 42

        # the worker registered its schemas with the server: bad input never reaches it
        with pytest.raises(portside.ValidationError):
            await client.tasks.submit("sdk/typed", "text")
        defs = {c.type: c for c in await client.workers.capabilities()}
        assert defs["sdk/typed"].input_schema == {"type": "integer"}

        bad = await client.tasks.run("sdk/badout", None, timeout=10)
        assert bad.status == "failed" and bad.error is not None
        assert bad.error["code"] == "OUTPUT_SCHEMA_MISMATCH"

        info = await client.workers.get("sdk-outcomes")
        assert info.kind == "portside" and info.status == "connected"
        assert {c["type"] for c in info.capabilities} >= {"sdk/echo", "sdk/fail"}


async def test_concurrency_cancel_and_drain(server: LiveServer, client: portside.AsyncClient) -> None:
    w = make_worker(server, "sdk-conc")
    current = peak = 0
    cancelled: list[bool] = []
    started = asyncio.Event()

    @w.handler("sdk/busy", concurrency=2)
    async def busy(inp: Any, ctx: portside.TaskContext) -> Any:
        nonlocal current, peak
        current += 1
        peak = max(peak, current)
        try:
            await asyncio.sleep(0.1)
        finally:
            current -= 1
        return inp

    @w.handler("sdk/wait")
    async def wait_cancel(inp: Any, ctx: portside.TaskContext) -> Any:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            cancelled.append(ctx.cancelled.is_set())
        return None

    @w.handler("sdk/slowish", concurrency=3)
    async def slowish(inp: Any, ctx: portside.TaskContext) -> Any:
        await asyncio.sleep(0.4)
        return "finished"

    await w.start()
    await w.wait_registered(10)
    tasks = [await client.tasks.submit("sdk/busy", i) for i in range(6)]
    for t in tasks:
        assert (await client.tasks.wait(t.id, timeout=10)).status == "succeeded"
    assert peak == 2

    t = await client.tasks.submit("sdk/wait", None)
    await asyncio.wait_for(started.wait(), 10)
    assert (await client.tasks.cancel(t.id)).status == "cancelled"
    await until(lambda: cancelled)
    assert cancelled == [True]

    draining = [await client.tasks.submit("sdk/slowish", i) for i in range(3)]
    await until(lambda: w.in_flight == 3)
    await w.stop(drain=True, timeout=10)
    for t in draining:
        done = await client.tasks.get(t.id)
        assert done.status == "succeeded" and done.output == "finished"


async def test_stop_timeout_requeues_unfinished_work(server: LiveServer, client: portside.AsyncClient) -> None:
    w = make_worker(server, "sdk-stuck")

    @w.handler("sdk/stuck")
    async def stuck(inp: Any, ctx: portside.TaskContext) -> Any:
        await asyncio.sleep(30)

    await w.start()
    await w.wait_registered(10)
    t = await client.tasks.submit("sdk/stuck", None)
    await until(lambda: w.in_flight == 1)
    await w.stop(drain=True, timeout=0.2)
    task = await until(lambda: _status(client, t.id, "queued"))
    assert task.attempt == 1 and task.error is not None and task.error["kind"] == "cancelled"
    await client.tasks.cancel(t.id)


async def _status(client: portside.AsyncClient, task_id: str, status: str) -> Any:
    task = await client.tasks.get(task_id)
    return task if task.status == status else None


async def test_token_provider_refreshed_after_401(server: LiveServer, client: portside.AsyncClient) -> None:
    calls: list[int] = []

    async def token() -> str:
        calls.append(1)
        if len(calls) == 1:
            return "expired.token.value"
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{server.url}/api/v1/auth/token",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                json={"neuronId": "sdk-token"},
            )
            return str(r.json()["token"])

    w = make_worker(server, "sdk-token", api_key="", token=token)

    @w.handler("sdk/token")
    async def echo(inp: Any, ctx: portside.TaskContext) -> Any:
        return inp

    async with w:
        await w.wait_registered(10)
        assert (await client.tasks.run("sdk/token", 7, timeout=10)).output == 7
    assert len(calls) == 2


async def test_scoped_worker(server: LiveServer, client: portside.AsyncClient) -> None:
    w = make_worker(server, "sdk-scoped")

    @w.handler("sdk/mine", on_behalf_of="alice")
    async def mine(inp: Any, ctx: portside.TaskContext) -> Any:
        return ctx.on_behalf_of

    async with w:
        await w.wait_registered(10)
        assert (await client.tasks.run("sdk/mine", None, on_behalf_of="alice", timeout=10)).output == "alice"
        other = await client.tasks.submit("sdk/mine", None)
        await asyncio.sleep(0.3)
        assert (await client.tasks.get(other.id)).status == "queued"
        await client.tasks.cancel(other.id)


def test_sync_client_and_handler_rules(server: LiveServer) -> None:
    with portside.Client(server.url, ADMIN_KEY) as c:
        t = c.tasks.submit("sdk/nobody", {"x": 1}, idempotency_key="sync-1")
        assert c.tasks.submit("sdk/nobody", {"x": 1}, idempotency_key="sync-1").id == t.id
        assert c.tasks.wait(t.id, timeout=0.1).status == "queued"
        assert t.id in {x.id for x in c.tasks.list(capability="sdk/nobody").items}
        assert c.tasks.counts(capability="sdk/nobody")["queued"] == 1
        assert c.tasks.cancel(t.id).status == "cancelled"
        assert len(c.tasks.submit_many([{"capability": "sdk/nobody", "input": i} for i in range(3)])) == 3
    w = portside.Worker(server.url, ADMIN_KEY)
    with pytest.raises(RuntimeError):
        asyncio.run(w.start())
    with pytest.raises(ValueError):
        w.add_handler("a/b", lambda i, c: i, concurrency=0)


def test_cli(server: LiveServer) -> None:
    from typer.testing import CliRunner

    from portside.cli.main import app

    runner = CliRunner()
    env = {"PORTSIDE_URL": server.url, "PORTSIDE_API_KEY": ADMIN_KEY}
    r = runner.invoke(app, ["task", "submit", "cli/job", "--input", '{"a": 1}', "--idempotency-key", "cli-1"], env=env)
    assert r.exit_code == 0, r.output
    task_id = json.loads(r.stdout)["id"]
    r = runner.invoke(app, ["task", "get", task_id], env=env)
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "queued"
    r = runner.invoke(app, ["task", "ls", "--capability", "cli/job"], env=env)
    assert r.exit_code == 0 and task_id[:12] in r.stdout
    r = runner.invoke(app, ["task", "cancel", task_id, "--reason", "cli"], env=env)
    assert r.exit_code == 0 and "cancelled" in r.output
    r = runner.invoke(app, ["task", "submit", "not-a-type"], env=env)
    assert r.exit_code == 1 and "invalid_capability_type" in r.output
    r = runner.invoke(app, ["task", "submit", "cli/job", "--input", "{bad"], env=env)
    assert r.exit_code == 1
    r = runner.invoke(app, ["worker", "ls"], env=env)
    assert r.exit_code == 0, r.output


async def test_raw_stream_pings_and_frames(server: LiveServer) -> None:
    svc = server.app.state.ctx.services["workers"]
    svc.config.sse_ping_s = 0.1
    try:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as http:
            async with http.stream("GET", "/neuron/events", params={"neuronId": "raw-1"}) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                lines = stream.aiter_lines()
                seen: list[str] = []
                while seen.count(": ping") < 2:
                    seen.append(await asyncio.wait_for(anext(lines), 5))
                cap = {"type": "raw/job", "scope": "any", "concurrency": 1}
                r = await http.post(
                    "/neuron/register", json={"neuronId": "raw-1", "protocolVersion": "1.0.0", "capabilities": [cap]}
                )
                assert r.status_code == 200
                while not seen[-1].startswith("data:"):
                    seen.append(await asyncio.wait_for(anext(lines), 5))
                frame = json.loads(seen[-1][5:])
                assert frame["type"] == "registered" and frame["capabilities"] == [cap]
                assert "event: registered" in seen
    finally:
        svc.config.sse_ping_s = 15.0
