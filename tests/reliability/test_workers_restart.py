"""The server is killed (SIGKILL) with queued and leased tasks, then restarted on the same store:
workers reconnect by themselves and every task completes exactly once in the result store."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from holokai_neuron_sdk import Capability, HandlerContext, Neuron

import portside
from tests.conftest import ADMIN_KEY
from tests.workers.helpers import port, until

FAST_ENV = {
    "PORTSIDE_WORKERS_LEASE_TTL_S": "1.5",
    "PORTSIDE_WORKERS_REAPER_INTERVAL_S": "0.1",
    "PORTSIDE_WORKERS_POLL_INTERVAL_S": "0.2",
    "PORTSIDE_WORKERS_RETRY_BACKOFF_S": "0.05",
    "PORTSIDE_WORKERS_HEARTBEAT_INTERVAL_S": "0.3",
}


@asynccontextmanager
async def server_process(data_dir: Path, http_port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {
        **os.environ,
        **FAST_ENV,
        "PORTSIDE_API_KEY": ADMIN_KEY,
        "PORTSIDE_DATA_DIR": str(data_dir),
        "PORTSIDE_PORT": str(http_port),
        "PORTSIDE_LOG_LEVEL": "WARNING",
        "PORTSIDE_SANDBOX_WARM_POOL": "0",
    }
    env.pop("PORTSIDE_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portside.cli.main",
        "serve",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as c:
            for _ in range(300):
                try:
                    if (await c.get(f"http://127.0.0.1:{http_port}/v1/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.returncode is None, "server exited"
                await asyncio.sleep(0.05)
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_kill_and_restart_loses_nothing(tmp_path: Path) -> None:
    http_port = port()
    url = f"http://127.0.0.1:{http_port}"
    runs: dict[int, int] = {}

    async def job(inp: Any, ctx: Any) -> Any:
        runs[inp] = runs.get(inp, 0) + 1
        await asyncio.sleep(0.15)
        return {"n": inp}

    worker = portside.Worker(
        url, ADMIN_KEY, worker_id="restart-w", initial_reconnect_delay=0.1, max_reconnect_delay=0.5
    )
    worker.add_handler("rel/restart/job", job, concurrency=4)

    async def neuron_job(inp: Any, ctx: HandlerContext) -> Any:
        return await job(inp, ctx)

    neuron = Neuron(
        gateway_url=url,
        neuron_id="restart-n",
        auth=lambda: ADMIN_KEY,
        heartbeat_interval_ms=300,
        initial_reconnect_delay_ms=100,
        max_reconnect_delay_ms=500,
    )
    neuron.register_handler(Capability(type="rel/restart/job", scope="any", concurrency=4), neuron_job)

    async with server_process(tmp_path / "data", http_port) as proc:
        await worker.start()
        await neuron.start()
        await worker.wait_registered(10)
        async with portside.AsyncClient(url, ADMIN_KEY, max_retries=0) as client:
            tasks = await client.tasks.submit_many([{"capability": "rel/restart/job", "input": i} for i in range(60)])
            ids = [t.id for t in tasks]
            await until(lambda: _has_both(client))  # some done, some leased, some still queued
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
    await asyncio.sleep(0.5)  # workers notice and back off; acks in flight are retried or lost

    async with server_process(tmp_path / "data", http_port):
        async with portside.AsyncClient(url, ADMIN_KEY) as client:
            try:
                for task_id in ids:
                    task = await client.tasks.wait(task_id, timeout=30)
                    assert task.status == "succeeded", task
                    acked = [x for x in await client.tasks.leases(task_id) if x.state == "acked"]
                    assert len(acked) == 1, (task_id, acked)
                counts = await client.tasks.counts(capability="rel/restart/job")
                assert counts["succeeded"] == 60 and sum(counts.values()) == 60
                assert worker.reconnects >= 1
            finally:
                await worker.stop(timeout=5)
                await neuron.stop(drain=False)
    assert sorted(runs) == list(range(60))  # at-least-once: a lost ack may run a task again


async def _has_both(client: portside.AsyncClient) -> bool:
    counts = await client.tasks.counts(capability="rel/restart/job")
    return counts["succeeded"] >= 10 and counts["running"] >= 1 and counts["queued"] >= 1
