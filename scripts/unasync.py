"""Generate the sync SDK (``src/portside/_sync``) from the async one (``src/portside/_async``).

One definition of every resource: edit ``_async``, then run ``python scripts/unasync.py``.
``--check`` exits 1 when the generated files are stale (CI runs it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "portside"
SRC, DST = ROOT / "_async", ROOT / "_sync"
HEADER = "# Generated from portside/_async by scripts/unasync.py. Do not edit.\n"

RULES: list[tuple[str, str]] = [
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\baread\b", "read"),
    (r"\baiter_lines\b", "iter_lines"),
    (r"\baiter_bytes\b", "iter_bytes"),
    (r"\baiter_raw\b", "iter_raw"),
    (r"\baiter_sse\b", "iter_sse"),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\bimport asyncio\b", "import time"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\bportside\._async\b", "portside._sync"),
    (r"\bAsyncBaseTransport\b", "BaseTransport"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"\banext\(", "next("),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\b__aiter__\b", "__iter__"),
    (r"\b__anext__\b", "__next__"),
    (r"\bThe async SDK\b", "The sync SDK"),
]


def transform(text: str) -> str:
    for pattern, repl in RULES:
        text = re.sub(pattern, repl, text)
    return HEADER + text


def generate() -> dict[Path, str]:
    out: dict[Path, str] = {}
    for src in sorted(SRC.rglob("*.py")):
        out[DST / src.relative_to(SRC)] = transform(src.read_text())
    return out


def main() -> int:
    files = generate()
    if "--check" in sys.argv:
        stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
        extra = [p for p in DST.rglob("*.py") if p not in files]
        for p in stale + extra:
            print(f"stale: {p.relative_to(ROOT.parent.parent)}")
        if stale or extra:
            print("run: python scripts/unasync.py")
            return 1
        return 0
    for p in DST.rglob("*.py"):
        if p not in files:
            p.unlink()
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
