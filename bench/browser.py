"""Browser benchmark: how long until a new sandbox's browser answers, and snapshot latency on a small page.

.venv/bin/python bench/browser.py [--sandboxes 5] [--snapshots 100]

Goes through the real app (native/Bay API over ASGI, SQLite, bwrap sandboxes, Chromium inside the sandbox).
"browser ready" = POST /v1/sandboxes (profile browser-python) + the first ``open about:blank`` (which starts
the in-sandbox agent and Chromium). Snapshot times are whole API round trips (history write included).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from portside.server.app import create_app
from portside.server.sandboxes.browser_session import find_chromium
from portside.server.settings import Settings

KEY = "sk_bench_admin_0123456789abcdefghijklmnop"
PAGE = (
    """<!doctype html><title>Small form</title><h1>Contact</h1>
<form><label>Name <input name=n></label><label>Email <input type=email name=e></label>
<label>Message <textarea name=m></textarea></label><label><input type=checkbox> Copy to me</label>
<select><option>Sales</option><option>Support</option></select><button>Send</button></form>
<ul>"""
    + "".join(f"<li><a href='#{i}'>Item {i}</a></li>" for i in range(20))
    + "</ul>"
)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(name: str, samples: list[float]) -> None:
    print(
        f"{name:<32} n={len(samples):<4} p50={pct(samples, 0.5):8.1f} ms  p95={pct(samples, 0.95):8.1f} ms"
        f"  mean={statistics.fmean(samples) * 1000:8.1f} ms"
    )


async def main(sandboxes: int, snapshots: int) -> None:
    if find_chromium() is None:
        raise SystemExit("Chromium is not installed (apt-get install chromium)")
    root = Path(tempfile.mkdtemp(prefix="portside-browser-bench-"))
    settings = Settings(data_dir=root / "data", api_key=KEY, sandbox_warm_pool=0, log_level="WARNING")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {KEY}"}, timeout=120
        ) as api:
            created: list[float] = []
            first: list[float] = []
            ready: list[float] = []
            ids: list[str] = []
            for _ in range(sandboxes):
                t0 = time.perf_counter()
                res = await api.post("/v1/sandboxes", json={"profile": "browser-python", "ttl": 600})
                res.raise_for_status()
                sid = res.json()["id"]
                t1 = time.perf_counter()
                out = await api.post(f"/v1/sandboxes/{sid}/browser/exec", json={"cmd": "open about:blank"})
                assert out.json()["success"], out.text
                t2 = time.perf_counter()
                created.append(t1 - t0)
                first.append(t2 - t1)
                ready.append(t2 - t0)
                ids.append(sid)
            print(f"sandboxes={sandboxes} snapshots={snapshots} chromium={find_chromium()}")
            report("sandbox create", created)
            report("first command (agent+chromium)", first)
            report("browser ready (new sandbox)", ready)

            sid = ids[0]
            await api.put(f"/v1/sandboxes/{sid}/filesystem/files", json={"path": "small.html", "content": PAGE})
            await api.post(f"/v1/sandboxes/{sid}/browser/exec", json={"cmd": "open /workspace/small.html"})
            for cmd in ("snapshot", "snapshot -i", "get title"):
                samples = []
                for _ in range(snapshots):
                    t = time.perf_counter()
                    res = await api.post(f"/v1/sandboxes/{sid}/browser/exec", json={"cmd": cmd})
                    samples.append(time.perf_counter() - t)
                    assert res.json()["success"], res.text
                report(f"{cmd} (small page)", samples)
            for sid in ids:
                await api.delete(f"/v1/sandboxes/{sid}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sandboxes", type=int, default=5)
    parser.add_argument("--snapshots", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.sandboxes, args.snapshots))
