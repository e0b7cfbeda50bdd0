"""Workers benchmark: submit -> handler-start latency and sustained throughput.

Starts a real Portside server in a subprocess (loopback), connects 4 workers from this process and
measures:

* latency: one task at a time, from just before ``client.tasks.submit`` to the first line of the
  handler (p50 / p95 / p99);
* throughput: N trivial tasks submitted in batches while the workers drain them; completed tasks
  per second as counted in the server's result store.

Usage::

    .venv/bin/python bench/workers.py                      # SQLite, Portside Worker
    .venv/bin/python bench/workers.py --db both --sdk both # + PostgreSQL, + holokai neuron SDK

Targets (2-core machine, SQLite): latency p50 <= 10 ms, throughput >= 1000 tasks/s with 4 workers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

import portside

ADMIN_KEY = "sk_bench_admin_0123456789abcdefghijklmnop"
PG_ADMIN_DSN = os.environ.get("PORTSIDE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
CAP = "bench/noop"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process, from /proc (Linux); 0 elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


@contextlib.asynccontextmanager
async def server(database_url: str | None) -> AsyncIterator[tuple[str, int]]:
    """A `portside serve` subprocess; yields its URL and pid."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="portside-bench-")
    env = {
        **os.environ,
        "PORTSIDE_API_KEY": ADMIN_KEY,
        "PORTSIDE_DATA_DIR": data_dir,
        "PORTSIDE_PORT": str(port),
        "PORTSIDE_LOG_LEVEL": "WARNING",
        "PORTSIDE_SANDBOX_WARM_POOL": "0",
    }
    if database_url:
        env["PORTSIDE_DATABASE_URL"] = database_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portside.cli.main",
        "serve",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as c:
            for _ in range(300):
                try:
                    if (await c.get(f"{url}/v1/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.returncode is not None:
                    raise RuntimeError("server exited during start-up")
                await asyncio.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


async def _pg_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    name = f"portside_bench_{uuid.uuid4().hex[:10]}"
    await _pg_exec(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        with contextlib.suppress(Exception):
            await _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Probe:
    """Records when handlers start; lets the latency loop wait for one task."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.waiters: dict[int, asyncio.Event] = {}
        self.count = 0

    def hit(self, inp: Any) -> None:
        self.count += 1
        if isinstance(inp, dict) and "i" in inp:
            i = int(inp["i"])
            self.started[i] = time.perf_counter()
            event = self.waiters.get(i)
            if event is not None:
                event.set()


async def start_portside_workers(url: str, n: int, concurrency: int, probe: Probe) -> list[portside.Worker]:
    workers = []
    for k in range(n):
        w = portside.Worker(url, ADMIN_KEY, worker_id=f"bench-{k}")

        async def noop(inp: Any, ctx: portside.TaskContext) -> Any:
            probe.hit(inp)
            return {"ok": True}

        w.add_handler(CAP, noop, concurrency=concurrency)
        await w.start()
        workers.append(w)
    for w in workers:
        await w.wait_registered(10)
    return workers


async def start_neurons(url: str, n: int, concurrency: int, probe: Probe) -> list[Any]:
    from holokai_neuron_sdk import Capability, Neuron

    neurons = []
    for k in range(n):
        neuron = Neuron(gateway_url=url, neuron_id=f"neuron-{k}", auth=lambda: ADMIN_KEY)
        registered = asyncio.Event()
        neuron.on("connection:registered", lambda _info, ev=registered: ev.set())

        async def noop(inp: Any, ctx: Any) -> Any:
            probe.hit(inp)
            return {"ok": True}

        neuron.register_handler(Capability(type=CAP, scope="any", concurrency=concurrency), noop)
        await neuron.start()
        await asyncio.wait_for(registered.wait(), 10)
        neurons.append(neuron)
    return neurons


async def measure_latency(client: portside.AsyncClient, probe: Probe, samples: int, warmup: int) -> list[float]:
    out = []
    for i in range(-warmup, samples):
        key = 10_000_000 + i
        event = probe.waiters[key] = asyncio.Event()
        t0 = time.perf_counter()
        await client.tasks.submit(CAP, {"i": key})
        await asyncio.wait_for(event.wait(), 10)
        if i >= 0:
            out.append((probe.started[key] - t0) * 1000)
        del probe.waiters[key]
    return out


async def measure_throughput(client: portside.AsyncClient, n: int, chunk: int = 250) -> float:
    base = (await client.tasks.counts(capability=CAP))["succeeded"]
    sem = asyncio.Semaphore(4)

    async def submit(start: int) -> None:
        async with sem:
            await client.tasks.submit_many(
                [{"capability": CAP, "input": {"j": start + k}} for k in range(min(chunk, n - start))]
            )

    t0 = time.perf_counter()
    producer = asyncio.gather(*(submit(s) for s in range(0, n, chunk)))
    while True:
        await asyncio.sleep(0.02)
        done = (await client.tasks.counts(capability=CAP))["succeeded"] - base
        if done >= n:
            break
    elapsed = time.perf_counter() - t0
    await producer
    return n / elapsed


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run_case(db: str, sdk: str, args: argparse.Namespace) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        url_db = await stack.enter_async_context(pg_database()) if db == "postgres" else None
        url, pid = await stack.enter_async_context(server(url_db))
        probe = Probe()
        starter: Callable[..., Any] = start_portside_workers if sdk == "portside" else start_neurons
        workers = await starter(url, args.workers, args.concurrency, probe)
        try:
            async with portside.AsyncClient(url, ADMIN_KEY) as client:
                lat = await measure_latency(client, probe, args.latency_samples, 30)
                await measure_throughput(client, min(1000, args.tasks))  # warm-up
                server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
                tput = await measure_throughput(client, args.tasks)
                server_cpu = (cpu_seconds(pid) - server_cpu) * 1000 / args.tasks
                client_cpu = (time.process_time() - client_cpu) * 1000 / args.tasks
        finally:
            for w in workers:
                await w.stop(drain=True, timeout=10)
    return {
        "db": db,
        "sdk": sdk,
        "p50_ms": statistics.median(lat),
        "p95_ms": pct(lat, 0.95),
        "p99_ms": pct(lat, 0.99),
        "tasks_per_s": tput,
        "server_cpu_ms": server_cpu,
        "client_cpu_ms": client_cpu,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--sdk", choices=["portside", "neuron", "both"], default="portside")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-samples", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    sdks = ["portside", "neuron"] if args.sdk == "both" else [args.sdk]
    print(
        f"{'db':9} {'worker sdk':10} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'tasks/s':>8}"
        f" {'server cpu/task':>16} {'client cpu/task':>16}"
    )
    for db in dbs:
        for sdk in sdks:
            r = await run_case(db, sdk, args)
            print(
                f"{r['db']:9} {r['sdk']:10} {r['p50_ms']:7.2f} {r['p95_ms']:7.2f} {r['p99_ms']:7.2f} "
                f"{r['tasks_per_s']:8.0f} {r['server_cpu_ms']:13.3f} ms {r['client_cpu_ms']:13.3f} ms",
                flush=True,
            )
    print("targets (SQLite): p50 <= 10 ms, >= 1000 tasks/s with 4 workers")
    with contextlib.suppress(OSError):
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    asyncio.run(main())
