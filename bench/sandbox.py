"""Benchmark sandboxes through the HTTP API of a real server process on loopback.

    .venv/bin/python bench/sandbox.py [--samples 20] [--execs 200] [--concurrent 20] [--json]

Starts ``portside serve`` as a subprocess (SQLite in a temp dir, the default bwrap driver), then measures:

* create from the warm pool (pool of 2; a pause after each create lets the pool refill): target p50 <= 50 ms
* cold create (a second server with no pool): target p50 <= 400 ms
* ``python.exec("1+1")`` round trip on a ready sandbox: target p50 <= 10 ms
* ``shell.exec("true")`` round trip: target p50 <= 20 ms
* N sandboxes created at once, each running Python and shell: target zero errors

Times are client-side wall clock of one HTTP request over a kept-alive connection. For the execs the CPU
time the server process and the sandbox processes spent per call is shown too: it does not depend on how
busy the machine is, while wall-clock percentiles do (check ``uptime`` before trusting a FAIL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

KEY = "sk_bench_0123456789abcdefghijklmnop"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(data_dir: Path, warm_pool: int) -> Iterator[tuple[str, int]]:
    """A ``portside serve`` subprocess; yields its URL and pid."""
    port = free_port()
    env = {
        **os.environ,
        "PORTSIDE_DATA_DIR": str(data_dir),
        "PORTSIDE_PORT": str(port),
        "PORTSIDE_API_KEY": KEY,
        "PORTSIDE_SANDBOX_WARM_POOL": str(warm_pool),
        "PORTSIDE_LOG_LEVEL": "WARNING",
    }
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = (data_dir.parent / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "portside.cli.main", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)


def ok(r: httpx.Response) -> Any:
    if r.status_code >= 400:
        raise RuntimeError(f"{r.request.method} {r.request.url} -> {r.status_code} {r.text}")
    return r.json() if r.content else None


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1000, out


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": round(statistics.median(samples), 2),
        "p95": round(pct(samples, 95), 2),
        "max": round(max(samples), 2),
    }


def bench_creates(url: str, samples: int, pause: float) -> list[float]:
    times = []
    with client(url) as c:
        ok(c.get("/v1/health"))
        for _ in range(samples):
            time.sleep(pause)
            ms, sb = timed(lambda: ok(c.post("/v1/sandboxes", json={"ttl": 600})))
            times.append(ms)
            ok(c.delete(f"/v1/sandboxes/{sb['id']}"))
    return times


def cpu_ms(pid: int) -> tuple[float, float]:
    """CPU milliseconds used so far by the server process and by its descendants (the sandboxes)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) * 1000 / tick
    below: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - below
        below |= frontier
    return used.get(pid, 0.0), sum(used.get(p, 0.0) for p in below)


def bench_execs(url: str, pid: int, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with client(url) as c:
        sb = ok(c.post("/v1/sandboxes", json={"ttl": 600}))
        base = f"/v1/sandboxes/{sb['id']}"
        for _ in range(10):  # warm up both paths
            ok(c.post(f"{base}/python/exec", json={"code": "1+1"}))
            ok(c.post(f"{base}/shell/exec", json={"command": "true"}))
        cases = [
            ("python_exec", "python/exec", {"code": "1+1"}, n),
            ("shell_exec", "shell/exec", {"command": "true"}, max(1, n // 2)),
        ]
        for key, route, body, count in cases:
            times = []
            server0, sandbox0 = cpu_ms(pid)
            for _ in range(count):
                ms, r = timed(lambda route=route, body=body: ok(c.post(f"{base}/{route}", json=body)))
                assert r["success"], r
                times.append(ms)
            server1, sandbox1 = cpu_ms(pid)
            out[key] = summary(times)
            out[key]["server_cpu_ms"] = round((server1 - server0) / count, 2)
            out[key]["sandbox_cpu_ms"] = round((sandbox1 - sandbox0) / count, 2)
        ok(c.delete(base))
    return out


async def bench_concurrent(url: str, n: int) -> dict[str, Any]:
    errors: list[str] = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:

        async def one(i: int) -> str | None:
            try:
                r = await c.post("/v1/sandboxes", json={"ttl": 600})
                r.raise_for_status()
                sid = r.json()["id"]
                base = f"/v1/sandboxes/{sid}"
                py = (await c.post(f"{base}/python/exec", json={"code": f"sum(range({i}))"})).json()
                if py.get("data", {}).get("output", {}).get("text") != str(sum(range(i))):
                    errors.append(f"python #{i}: {py}")
                sh = (await c.post(f"{base}/shell/exec", json={"command": f"echo {i}"})).json()
                if sh.get("output") != f"{i}\n":
                    errors.append(f"shell #{i}: {sh}")
                put = await c.put(f"{base}/filesystem/files", json={"path": "n.txt", "content": str(i)})
                got = await c.get(f"{base}/filesystem/files", params={"path": "n.txt"})
                if put.status_code >= 400 or got.json().get("content") != str(i):
                    errors.append(f"files #{i}: {got.text}")
                return str(sid)
            except Exception as exc:  # the point is to count them
                errors.append(f"#{i}: {type(exc).__name__}: {exc}")
                return None

        start = time.perf_counter()
        sids = await asyncio.gather(*(one(i) for i in range(n)))
        wall = (time.perf_counter() - start) * 1000
        await asyncio.gather(*(c.delete(f"/v1/sandboxes/{s}") for s in sids if s))
    return {"n": n, "errors": len(errors), "wall_ms": round(wall), "first_errors": errors[:3]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20, help="creates per kind")
    parser.add_argument("--execs", type=int, default=200, help="python execs (half as many shell execs)")
    parser.add_argument("--concurrent", type=int, default=20, help="sandboxes at once")
    parser.add_argument("--pause", type=float, default=1.5, help="seconds for the pool to refill between creates")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="portside-bench-") as tmp:
        with server(Path(tmp) / "warm" / "data", warm_pool=2) as (url, _):
            time.sleep(2.0)  # let the pool fill
            results["warm_create"] = summary(bench_creates(url, args.samples, args.pause))
        with server(Path(tmp) / "cold" / "data", warm_pool=0) as (url, pid):
            results.update(bench_execs(url, pid, args.execs))
            results["cold_create"] = summary(bench_creates(url, args.samples, 0.0))
            results["concurrent"] = asyncio.run(bench_concurrent(url, args.concurrent))

    targets = {"warm_create": 50.0, "cold_create": 400.0, "python_exec": 10.0, "shell_exec": 20.0}
    verdicts = {k: results[k]["p50"] <= t for k, t in targets.items()}  # the targets are p50
    verdicts["concurrent"] = results["concurrent"]["errors"] == 0
    results["load_average"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    if args.json:
        print(json.dumps({"results": results, "targets_ms_p50": targets, "pass": verdicts}, indent=2))
    else:
        print(f"{'measure':<34}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'target':>16}  verdict")
        labels = {
            "warm_create": "create (warm pool)",
            "cold_create": "create (cold, pool 0)",
            "python_exec": 'python.exec("1+1") round trip',
            "shell_exec": 'shell.exec("true") round trip',
        }
        for key, label in labels.items():
            r = results[key]
            verdict = "PASS" if verdicts[key] else "FAIL"
            print(f"{label:<34}{r['p50']:>9}{r['p95']:>9}{r['max']:>9}{'p50 <= ' + str(targets[key]):>16}  {verdict}")
            if "server_cpu_ms" in r:
                print(f"{'':<4}CPU per call: server {r['server_cpu_ms']} ms, sandbox {r['sandbox_cpu_ms']} ms")
        c = results["concurrent"]
        label = f"{c['n']} concurrent sandboxes"
        verdict = "PASS" if verdicts["concurrent"] else "FAIL"
        print(f"{label:<34}{'wall ' + str(c['wall_ms']) + ' ms':>27}{'0 errors':>16}  {verdict} ({c['errors']} errors)")
        for e in c["first_errors"]:
            print(f"  {e}")
        load = results["load_average"]
        print(f"load average (1 min) before {load['before']}, after {load['after']} on {os.cpu_count()} CPUs")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
