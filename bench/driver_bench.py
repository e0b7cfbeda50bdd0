"""Sandbox driver benchmark: cold start, warm acquire, Python and shell round trips.

.venv/bin/python bench/driver_bench.py [--driver bwrap|process] [--starts 10] [--execs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from portside.server.sandboxes.drivers import Resources, SandboxSpec, WarmPool, create_driver


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(name: str, samples: list[float]) -> None:
    print(
        f"{name:<22} n={len(samples):<4} p50={pct(samples, 0.5):8.2f} ms  p95={pct(samples, 0.95):8.2f} ms"
        f"  mean={statistics.fmean(samples) * 1000:8.2f} ms"
    )


async def timed(n: int, fn: Callable[[], Awaitable[object]]) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


async def main(driver_name: str, starts: int, execs: int) -> None:
    driver = create_driver(driver_name)
    root = Path(tempfile.mkdtemp(prefix="portside-bench-"))
    print(f"driver={driver_name} starts={starts} execs={execs} root={root}")

    cold: list[float] = []
    for i in range(starts):
        ws = root / f"cold-{i}"
        ws.mkdir()
        t = time.perf_counter()
        handle = await driver.start(SandboxSpec(sandbox_id=f"cold_{i}", workspace=ws))
        cold.append(time.perf_counter() - t)
        await handle.stop()
    report("cold start", cold)

    pool = WarmPool(driver, root / "pool", size=2)
    pool.add_profile(Resources())
    await pool.start()
    warm: list[float] = []
    handles = []
    for i in range(starts):
        await pool.wait_ready(60)
        t = time.perf_counter()
        handles.append(await pool.acquire(SandboxSpec(sandbox_id=f"warm_{i}", workspace=root / f"warm-{i}")))
        warm.append(time.perf_counter() - t)
    report("warm acquire", warm)
    sb = handles[0]
    for h in handles[1:]:
        await h.stop()
    await pool.close()

    await sb.exec_python("1+1")
    report("python 1+1", await timed(execs, lambda: sb.exec_python("1+1")))
    report("shell true", await timed(execs, lambda: sb.exec_shell("true")))
    report("python print 10KB", await timed(execs // 4, lambda: sb.exec_python("print('x' * 10000)")))
    await sb.stop()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--driver", default="bwrap", choices=["bwrap", "process"])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--execs", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.driver, args.starts, args.execs))
