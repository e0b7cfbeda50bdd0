"""A worker dies (SIGKILL) or freezes (SIGSTOP) mid-task: its leases expire and another worker
finishes the tasks; nothing is lost and no task is completed twice in the result store."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import portside
from tests.conftest import ADMIN_KEY, LiveServer, make_settings
from tests.workers.helpers import live, until

CAP = "rel/expiry/job"
NEURON = """
import asyncio, os, sys
from holokai_neuron_sdk import Capability, Neuron

async def main():
    async def job(inp, ctx):
        print("started", ctx.task.task_id, flush=True)
        await asyncio.sleep(float(os.environ["HOLD_S"]))
        return {"by": os.environ["NEURON_ID"]}

    n = Neuron(gateway_url=os.environ["URL"], neuron_id=os.environ["NEURON_ID"],
               auth=lambda: os.environ["KEY"], heartbeat_interval_ms=200)
    n.register_handler(Capability(type=os.environ["CAP"], scope="any", concurrency=8, leaseTtlMs=1000), job)
    await n.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = live(make_settings(tmp_path / "data"))
    try:
        yield srv
    finally:
        srv.stop()


def spawn_neuron(tmp_path: Path, url: str, neuron_id: str, hold_s: float) -> subprocess.Popen[str]:
    script = tmp_path / "neuron_proc.py"
    script.write_text(NEURON)
    env = {**os.environ, "URL": url, "NEURON_ID": neuron_id, "KEY": ADMIN_KEY, "CAP": CAP, "HOLD_S": str(hold_s)}
    return subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)


async def _started(proc: subprocess.Popen[str], n: int) -> None:
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    seen = 0
    while seen < n:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), 15)
        assert line, "the neuron process exited"
        seen += line.startswith("started")


async def _rescuer(url: str, runs: dict[str, int]) -> portside.Worker:
    w = portside.Worker(url, ADMIN_KEY, worker_id="rescuer", heartbeat_interval=0.2)

    @w.handler(CAP, concurrency=8)
    async def job(inp: Any, ctx: portside.TaskContext) -> Any:
        runs[ctx.task_id] = runs.get(ctx.task_id, 0) + 1
        return {"by": "rescuer"}

    await w.start()
    await w.wait_registered(10)
    return w


async def _check_exactly_once(client: portside.AsyncClient, task_ids: list[str], *, first: str) -> None:
    for task_id in task_ids:
        task = await client.tasks.wait(task_id, timeout=15)
        assert task.status == "succeeded" and task.output == {"by": "rescuer"}, task
        leases = await client.tasks.leases(task_id)
        states = [(x.worker_id, x.state) for x in leases]
        assert states[0] == (first, "expired"), states
        assert [s for s in states if s[1] == "acked"] == [("rescuer", "acked")], states


async def test_killed_worker_tasks_are_redelivered(server: LiveServer, tmp_path: Path) -> None:
    proc = spawn_neuron(tmp_path, server.url, "doomed", hold_s=60)
    runs: dict[str, int] = {}
    try:
        async with portside.AsyncClient(server.url, ADMIN_KEY) as client:
            await until(lambda: _registered(client, "doomed"))
            ids = [t.id for t in await client.tasks.submit_many([{"capability": CAP, "input": i} for i in range(4)])]
            await _started(proc, 4)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            rescuer = await _rescuer(server.url, runs)
            try:
                await _check_exactly_once(client, ids, first="doomed")
            finally:
                await rescuer.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert runs == {i: 1 for i in ids}


async def test_frozen_worker_cannot_complete_twice(server: LiveServer, tmp_path: Path) -> None:
    proc = spawn_neuron(tmp_path, server.url, "frozen", hold_s=1.5)
    runs: dict[str, int] = {}
    try:
        async with portside.AsyncClient(server.url, ADMIN_KEY) as client:
            await until(lambda: _registered(client, "frozen"))
            ids = [t.id for t in await client.tasks.submit_many([{"capability": CAP, "input": i} for i in range(4)])]
            await _started(proc, 4)
            proc.send_signal(signal.SIGSTOP)  # no heartbeats, no acks: the leases run out
            rescuer = await _rescuer(server.url, runs)
            try:
                await _check_exactly_once(client, ids, first="frozen")
                proc.send_signal(signal.SIGCONT)  # it wakes up, finishes and tries to ack: refused
                await asyncio.sleep(2.0)
                await _check_exactly_once(client, ids, first="frozen")
            finally:
                await rescuer.stop()
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


async def _registered(client: portside.AsyncClient, worker_id: str) -> bool:
    try:
        return (await client.workers.get(worker_id)).status == "connected"
    except portside.NotFoundError:
        return False
