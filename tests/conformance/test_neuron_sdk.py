"""holokai-neuron-sdk 0.1.1, unmodified, against a live Portside gateway.

Tasks are submitted with the Portside SDK; the neuron registers over SSE + POST, receives leases,
reports progress and acks / nacks / gets cancelled exactly as its README describes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from holokai_neuron_sdk import Capability, HandlerContext, Neuron

import portside
from tests.conftest import ADMIN_KEY, LiveServer, make_settings
from tests.workers.helpers import live, until


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = live(make_settings(Path(tmp_path_factory.mktemp("neuron")) / "data"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(gateway: LiveServer) -> AsyncIterator[portside.AsyncClient]:
    async with portside.AsyncClient(gateway.url, ADMIN_KEY) as c:
        yield c


Handler = Any


@asynccontextmanager
async def neuron(
    url: str,
    neuron_id: str,
    *handlers: tuple[Capability, Handler, dict[str, Any]],
    auth: Any = None,
    heartbeat_ms: int = 200,
) -> AsyncIterator[Neuron]:
    n = Neuron(
        gateway_url=url,
        neuron_id=neuron_id,
        auth=auth or (lambda: ADMIN_KEY),
        heartbeat_interval_ms=heartbeat_ms,
        initial_reconnect_delay_ms=100,
    )
    for cap, fn, kwargs in handlers:
        n.register_handler(cap, fn, **kwargs)
    registered = asyncio.Event()
    infos: list[Any] = []
    n.on("connection:registered", lambda info: (infos.append(info), registered.set()))
    await n.start()
    await asyncio.wait_for(registered.wait(), 10)
    assert infos[0]["capabilities"] == len(handlers)
    try:
        yield n
    finally:
        await n.stop(drain=False, timeout=5)


def cap(ctype: str, concurrency: int = 4, scope: Any = "any", **kw: Any) -> Capability:
    return Capability(type=ctype, scope=scope, concurrency=concurrency, **kw)


async def test_register_lease_progress_ack(gateway: LiveServer, client: portside.AsyncClient) -> None:
    seen: list[HandlerContext] = []
    release = asyncio.Event()

    async def echo(inp: Any, ctx: HandlerContext) -> Any:
        seen.append(ctx)
        await ctx.progress(percent=50, message="halfway", data={"step": 1})
        await release.wait()
        return {"echo": inp}

    async with neuron(gateway.url, "conf-echo", (cap("conf/echo"), echo, {})):
        task = await client.tasks.submit("conf/echo", {"hello": "world"}, metadata={"trace": "t1"})
        running = await until(lambda: _progressed(client, task.id))
        assert running.status == "running" and running.worker_id == "conf-echo"
        assert running.progress is not None and running.progress["percent"] == 50
        assert running.progress["message"] == "halfway"
        reports = await client.tasks.progress(task.id)
        assert [(p.percent, p.message, p.data) for p in reports] == [(50, "halfway", {"step": 1})]
        release.set()
        done = await client.tasks.wait(task.id, timeout=10)
    assert done.status == "succeeded" and done.output == {"echo": {"hello": "world"}}
    assert done.attempt == 1 and done.error is None
    ctx = seen[0]
    assert ctx.task.task_id == task.id and ctx.task.capability == "conf/echo"
    assert ctx.task.attempt == 0 and ctx.task.workflow_id and ctx.task.metadata == {"trace": "t1"}
    assert ctx.lease_id == done.lease_id
    leases = await client.tasks.leases(task.id)
    assert [(x.state, x.worker_id) for x in leases] == [("acked", "conf-echo")]


async def _progressed(client: portside.AsyncClient, task_id: str) -> Any:
    t = await client.tasks.get(task_id)
    return t if t.progress else None


async def test_retryable_nack_is_redelivered(gateway: LiveServer, client: portside.AsyncClient) -> None:
    attempts: list[int] = []

    async def flaky(inp: Any, ctx: HandlerContext) -> Any:
        attempts.append(ctx.task.attempt)
        if len(attempts) == 1:
            raise RuntimeError("transient")
        return {"ok": True}

    async def always(inp: Any, ctx: HandlerContext) -> Any:
        raise RuntimeError("still broken")

    async with neuron(gateway.url, "conf-flaky", (cap("conf/flaky"), flaky, {}), (cap("conf/broken"), always, {})):
        task = await client.tasks.submit("conf/flaky", {})
        done = await client.tasks.wait(task.id, timeout=10)
        assert done.status == "succeeded" and done.attempt == 2 and attempts == [0, 1]
        leases = await client.tasks.leases(task.id)
        assert [x.state for x in leases] == ["nacked", "acked"]
        assert leases[0].outcome is not None and leases[0].outcome["kind"] == "retryable"

        broken = await client.tasks.submit("conf/broken", {}, max_attempts=2)
        failed = await client.tasks.wait(broken.id, timeout=10)
    assert failed.status == "failed" and failed.attempt == 2
    assert failed.error is not None and failed.error["code"] == "max_attempts_exceeded"
    assert failed.error["last_code"] == "HANDLER_THREW" and "still broken" in failed.error["message"]


async def test_terminal_failure(gateway: LiveServer, client: portside.AsyncClient) -> None:
    async def picky(inp: Any, ctx: HandlerContext) -> Any:
        ctx.fail("unsupported format", code="BAD_FORMAT")

    async with neuron(gateway.url, "conf-picky", (cap("conf/picky"), picky, {})):
        task = await client.tasks.submit("conf/picky", {"f": "tiff"})
        done = await client.tasks.wait(task.id, timeout=10)
    assert done.status == "failed" and done.attempt == 1
    assert done.error is not None
    assert (done.error["code"], done.error["kind"], done.error["message"]) == (
        "BAD_FORMAT",
        "terminal",
        "unsupported format",
    )


async def test_schema_mismatch(gateway: LiveServer, client: portside.AsyncClient) -> None:
    async def sloppy(inp: Any, ctx: HandlerContext) -> Any:
        return {"missing": "echo"}

    async def strict(inp: Any, ctx: HandlerContext) -> Any:
        return {"echo": inp}

    out_schema = {"type": "object", "required": ["echo"]}
    in_schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    async with neuron(
        gateway.url,
        "conf-schema",
        (cap("conf/sloppy"), sloppy, {"output_schema": out_schema}),
        (cap("conf/strict"), strict, {"input_schema": in_schema}),
    ):
        task = await client.tasks.submit("conf/sloppy", {})
        done = await client.tasks.wait(task.id, timeout=10)
        assert done.status == "failed" and done.error is not None
        assert done.error["kind"] == "schema-mismatch" and done.error["code"] == "OUTPUT_SCHEMA_MISMATCH"
        assert "echo" in done.error["details"]["errors"][0]

        # input rejected by the neuron's own schema (the gateway has none for this type)
        task = await client.tasks.submit("conf/strict", {"n": "one"})
        done = await client.tasks.wait(task.id, timeout=10)
        assert done.status == "failed" and done.error is not None
        assert done.error["code"] == "INPUT_SCHEMA_MISMATCH" and done.attempt == 1

        # schemas defined on the gateway: checked at submit, carried on the lease frame
        await client.workers.define_capability("conf/strict", input_schema=in_schema, output_schema=out_schema)
        with pytest.raises(portside.ValidationError) as ei:
            await client.tasks.submit("conf/strict", {"n": "one"})
        assert ei.value.code == "input_schema_mismatch"
        task = await client.tasks.submit("conf/strict", {"n": 1})
        done = await client.tasks.wait(task.id, timeout=10)
    assert done.status == "succeeded" and done.output == {"echo": {"n": 1}}


async def test_cancel_reaches_the_handler(gateway: LiveServer, client: portside.AsyncClient) -> None:
    started = asyncio.Event()
    observed: dict[str, Any] = {}

    async def slow(inp: Any, ctx: HandlerContext) -> Any:
        started.set()
        try:
            await asyncio.wait_for(ctx.cancelled.wait(), 10)
            observed["event"] = True
        finally:
            observed["cancelled"] = ctx.cancelled.is_set()
        return {"late": True}

    async with neuron(gateway.url, "conf-cancel", (cap("conf/slow"), slow, {})):
        task = await client.tasks.submit("conf/slow", {})
        await asyncio.wait_for(started.wait(), 10)
        cancelled = await client.tasks.cancel(task.id, reason="user pressed stop")
        assert cancelled.status == "cancelled"
        await until(lambda: "cancelled" in observed)
        await asyncio.sleep(0.2)  # the neuron's "cancelled" nack is accepted and changes nothing
        final = await client.tasks.get(task.id)
    assert observed["cancelled"] is True
    assert final.status == "cancelled" and final.output is None
    assert final.error is not None and final.error["message"] == "user pressed stop"
    leases = await client.tasks.leases(task.id)
    assert [x.state for x in leases] == ["cancelled"]


async def test_scope_routing(gateway: LiveServer, client: portside.AsyncClient) -> None:
    got: dict[str, list[Any]] = {"u1": [], "any": []}

    def handler(name: str) -> Handler:
        async def run(inp: Any, ctx: HandlerContext) -> Any:
            got[name].append((inp, ctx.task.on_behalf_of))
            return {"by": name}

        return run

    scoped = cap("conf/scoped", scope={"onBehalfOf": "u1"})
    async with neuron(gateway.url, "conf-u1", (scoped, handler("u1"), {})):
        for_u2 = await client.tasks.submit("conf/scoped", 2, on_behalf_of="u2")
        for_u1 = await client.tasks.submit("conf/scoped", 1, on_behalf_of="u1")
        assert (await client.tasks.wait(for_u1.id, timeout=10)).output == {"by": "u1"}
        await asyncio.sleep(0.3)
        assert (await client.tasks.get(for_u2.id)).status == "queued"  # nobody may serve u2 yet
        async with neuron(gateway.url, "conf-any", (cap("conf/scoped"), handler("any"), {})):
            assert (await client.tasks.wait(for_u2.id, timeout=10)).output == {"by": "any"}
            anyone = await client.tasks.submit("conf/scoped", 3)
            assert (await client.tasks.wait(anyone.id, timeout=10)).output == {"by": "any"}
    assert got["u1"] == [(1, "u1")]
    assert sorted(got["any"], key=str) == sorted([(2, "u2"), (3, None)], key=str)


async def test_concurrency_and_update_capability(gateway: LiveServer, client: portside.AsyncClient) -> None:
    current = 0
    peak = 0

    async def busy(inp: Any, ctx: HandlerContext) -> Any:
        nonlocal current, peak
        current += 1
        peak = max(peak, current)
        await asyncio.sleep(0.15)
        current -= 1
        return inp

    async with neuron(gateway.url, "conf-conc", (cap("conf/busy", concurrency=2), busy, {})) as n:
        tasks = [await client.tasks.submit("conf/busy", i) for i in range(6)]
        sampled = 0
        for _ in range(10):
            w = await client.workers.get("conf-conc")
            sampled = max(sampled, w.active_leases)
            await asyncio.sleep(0.03)
        for t in tasks:
            assert (await client.tasks.wait(t.id, timeout=10)).status == "succeeded"
        assert peak == 2 and sampled <= 2

        await n.update_capability("conf/busy", concurrency=3)
        await until(lambda: _concurrency_is(client, "conf-conc", 3))
        peak = 0
        tasks = [await client.tasks.submit("conf/busy", i) for i in range(9)]
        for t in tasks:
            assert (await client.tasks.wait(t.id, timeout=10)).status == "succeeded"
    assert peak == 3


async def _concurrency_is(client: portside.AsyncClient, worker_id: str, n: int) -> bool:
    w = await client.workers.get(worker_id)
    return bool(w.capabilities[0]["concurrency"] == n)


async def test_token_auth_with_refresh_on_401(gateway: LiveServer, client: portside.AsyncClient) -> None:
    calls: list[str] = []

    async def auth() -> str:
        calls.append("call")
        if len(calls) == 1:
            return "stale.token.value"  # expired / wrong: the SDK must call us again after the 401
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{gateway.url}/api/v1/auth/token",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                json={"neuronId": "conf-token"},
            )
            r.raise_for_status()
            return str(r.json()["token"])

    async def echo(inp: Any, ctx: HandlerContext) -> Any:
        return inp

    async with neuron(gateway.url, "conf-token", (cap("conf/token"), echo, {}), auth=auth):
        task = await client.tasks.submit("conf/token", {"x": 1})
        done = await client.tasks.wait(task.id, timeout=10)
    assert done.status == "succeeded" and done.output == {"x": 1}
    assert len(calls) >= 3  # stale, refreshed SSE open, then one per POST


async def test_heartbeats_keep_long_leases(gateway: LiveServer, client: portside.AsyncClient) -> None:
    async def long(inp: Any, ctx: HandlerContext) -> Any:
        await asyncio.sleep(1.8)  # longer than the 1 s lease TTL: heartbeats must renew it
        return {"done": True}

    async with neuron(gateway.url, "conf-long", (cap("conf/long", leaseTtlMs=1000), long, {})):
        t0 = time.monotonic()
        task = await client.tasks.submit("conf/long", {})
        done = await client.tasks.wait(task.id, timeout=10)
    assert done.status == "succeeded" and done.attempt == 1 and time.monotonic() - t0 >= 1.8
    assert [x.state for x in await client.tasks.leases(task.id)] == ["acked"]


async def test_stop_drains_in_flight_handlers(gateway: LiveServer, client: portside.AsyncClient) -> None:
    started = asyncio.Event()

    async def work(inp: Any, ctx: HandlerContext) -> Any:
        started.set()
        await asyncio.sleep(0.5)
        return {"done": True}

    n = Neuron(gateway_url=gateway.url, neuron_id="conf-drain", auth=lambda: ADMIN_KEY, heartbeat_interval_ms=200)
    n.register_handler(cap("conf/drain"), work)
    await n.start()
    task = await client.tasks.submit("conf/drain", {})
    await asyncio.wait_for(started.wait(), 10)
    await n.stop(drain=True, timeout=10)  # returns after the handler finished and acked
    done = await client.tasks.wait(task.id, timeout=5)
    assert done.status == "succeeded" and done.output == {"done": True}
    await until(lambda: _worker_status(client, "conf-drain", "disconnected"))


async def _worker_status(client: portside.AsyncClient, worker_id: str, status: str) -> bool:
    return (await client.workers.get(worker_id)).status == status
