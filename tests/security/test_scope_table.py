"""The dialect scope audit (docs/security.md) is data, and this test walks it.

For every row: the dialect route and its native equivalent answer 403 to a key holding every
scope but the listed one, and neither 401 nor 403 to a key holding only that scope. Every route the
app registers under a dialect prefix must have a row, so a new dialect route cannot skip the audit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from portside.server.auth import SCOPES
from tests.conftest import ADMIN_KEY, LiveServer, make_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
OWNER = "scope-audit"
DIALECT_PREFIXES = ("/flows", "/executions", "/agents", "/health", "/metrics", "/status", "/api/v1", "/neuron")

#: Bodies for routes whose scope is checked inside the service (after body validation).
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/user/keys/generate"): {"user_id": "audit-target"},
    ("DELETE", "/api/v1/user/keys/revoke"): {"user_id": "audit-target"},
    ("POST", "/neuron/register"): {"neuronId": "n-audit", "protocolVersion": "1.0", "capabilities": []},
    ("POST", "/neuron/update-capability"): {"neuronId": "n-audit", "capability": {"type": "audit.echo"}},
    ("POST", "/neuron/heartbeat"): {"neuronId": "n-audit", "inFlight": []},
    ("POST", "/neuron/ack"): {"leaseId": "lease-audit", "output": {}},
    ("POST", "/neuron/nack"): {"leaseId": "lease-audit", "kind": "retryable"},
    ("POST", "/neuron/progress"): {"leaseId": "lease-audit", "percent": 1},
    ("POST", "/v1/workers/{worker_id}/register"): {"capabilities": []},
    ("POST", "/v1/workers/{worker_id}/heartbeat"): {"in_flight": []},
    ("POST", "/v1/workers/{worker_id}/results"): {"results": [{"leaseId": "lease-audit", "type": "ack"}]},
    ("POST", "/v1/workers/{worker_id}/progress"): {"lease_id": "lease-audit", "percent": 1},
}
QUERIES: dict[str, dict[str, str]] = {
    "/api/v1/user/keys/my-key": {"user_id": OWNER},
    "/neuron/events": {"neuronId": "n-audit"},
}


@dataclass(frozen=True)
class Row:
    door: str
    method: str
    path: str
    scope: str
    native_method: str | None
    native_path: str | None
    native_scope: str
    note: str

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _cell(text: str) -> str:
    return text.strip().strip("`").strip()


def load_table() -> list[Row]:
    text = DOC.read_text(encoding="utf-8")
    body = text.split("<!-- scope-table:start -->", 1)[1].split("<!-- scope-table:end -->", 1)[0]
    rows: list[Row] = []
    for line in body.strip().splitlines()[2:]:
        cells = [_cell(c) for c in line.strip().strip("|").split("|")]
        door, method, path, scope, native, native_scope, note = cells
        native_method, native_path = native.split(" ", 1) if native != "-" else (None, None)
        rows.append(Row(door, method, path, scope, native_method, native_path, native_scope, note))
    return rows


ROWS = load_table()


def _routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: routes are flat
        for route in app.routes:
            if isinstance(route, APIRoute):
                for method in route.methods:
                    yield method, route.path, route
        return
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute):
            for method in ctx.methods or ():
                yield method, str(ctx.path), route


def _under_dialect(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in DIALECT_PREFIXES)


def _url(path: str) -> str:
    return re.sub(r"\{([a-z_]+)(:path)?\}", lambda m: f"audit-missing-{m.group(1).replace('_', '-')}", path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PORTSIDE_RATE_LIMIT_PER_MINUTE", "0")
        mp.setenv("PORTSIDE_METRICS_PUBLIC", "false")
        live = LiveServer(make_settings(tmp_path_factory.mktemp("scopes") / "data")).start()
        try:
            yield live
        finally:
            live.stop()


@pytest.fixture(scope="module")
def keys(server: LiveServer) -> dict[str, str]:
    """Per scope: a key with only that scope (``only:<s>``) and one with all but it (``but:<s>``)."""
    out: dict[str, str] = {}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=server.url, headers=admin, timeout=30) as c:
        for scope in sorted(SCOPES):
            sets = {f"only:{scope}": [scope], f"but:{scope}": sorted(SCOPES - {scope, "admin"})}
            for label, scopes in sets.items():
                r = c.post("/v1/keys", json={"name": f"audit {label}", "scopes": scopes, "owner": OWNER})
                assert r.status_code == 201, r.text
                out[label] = r.json()["key"]
    # The audit keys' owner owns the secrets namespace the routes are called on (others' namespaces
    # also need the ``secrets`` scope: same service rule on both doors).
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {out['only:write']}"}) as c:
        seed = {"agent_id": _url("{agent_id}"), "name": "seed", "value": "x"}
        assert c.post("/v1/secrets", json=seed).status_code in (200, 201)
    return out


def _call(server: LiveServer, method: str, path: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    json_body = BODIES.get((method, path), {} if method in {"POST", "PUT", "PATCH"} else None)
    query = QUERIES.get(path)
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
        with c.stream(method, _url(path), json=json_body, params=query) as resp:
            return resp.status_code  # streams (SSE) are closed unread


def _check(server: LiveServer, keys: dict[str, str], method: str, path: str, scope: str) -> None:
    if scope == "none":
        status = _call(server, method, path, None)
        assert status not in (401, 403), f"{method} {path} should need no key, got {status}"
        return
    if scope == "any":
        assert _call(server, method, path, None) == 401, f"{method} {path} should need a key"
        allowed = _call(server, method, path, keys["but:admin"])
        assert allowed not in (401, 403), f"{method} {path} with a valid key answered {allowed}"
        return
    denied = _call(server, method, path, keys[f"but:{scope}"])
    assert denied == 403, f"{method} {path} without '{scope}' answered {denied}, expected 403"
    allowed = _call(server, method, path, keys[f"only:{scope}"])
    assert allowed not in (401, 403), f"{method} {path} with only '{scope}' answered {allowed}"


def test_table_parses_and_scopes_are_known() -> None:
    assert len(ROWS) > 60
    for row in ROWS:
        assert row.scope in SCOPES | {"none"}, row
        assert row.native_scope in SCOPES | {"none", "any", "-"}, row
        if row.native_scope != "-" and row.scope != row.native_scope:
            # Allowed only when the dialect is stricter, and said so.
            assert row.note, f"{row.id}: dialect scope differs from native without a note"
            assert row.native_scope in ("none", "any") or row.scope == "admin", row


def test_every_dialect_route_is_in_the_table(server: LiveServer) -> None:
    listed = {(r.method, r.path) for r in ROWS}
    registered = {
        (method, path)
        for method, path, route in _routes(server.app)
        if method != "HEAD"
        and (_under_dialect(path) or route.endpoint.__module__.startswith("portside.server.dialects"))
    }
    assert registered - listed == set(), "dialect routes missing from docs/security.md"
    assert listed - registered == set(), "rows in docs/security.md for routes that do not exist"


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_dialect_route_scope(server: LiveServer, keys: dict[str, str], row: Row) -> None:
    _check(server, keys, row.method, row.path, row.scope)


NATIVE = sorted({(r.native_method, r.native_path, r.native_scope) for r in ROWS if r.native_method and r.native_path})


@pytest.mark.parametrize("native", NATIVE, ids=[f"{m} {p}" for m, p, _ in NATIVE])
def test_native_equivalent_scope(server: LiveServer, keys: dict[str, str], native: tuple[str, str, str]) -> None:
    method, path, scope = native
    _check(server, keys, method, path, scope)
