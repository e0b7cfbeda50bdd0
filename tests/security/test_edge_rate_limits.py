"""Issue 13, rate limits on every door and failed-authentication limiting per client address.

Before: ``PORTSIDE_RATE_LIMIT_PER_MINUTE`` only covered the AI Spine and Symbiont routes, requests
with a bad key were never charged, and nothing slowed down a key-guessing client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, LiveServer, free_port, make_settings

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PORTSIDE_RATE_LIMIT_PER_MINUTE", "6")
    monkeypatch.setenv("PORTSIDE_RATE_LIMIT_BURST", "3")
    live = LiveServer(make_settings(tmp_path / "data")).start()
    try:
        yield live.url
    finally:
        live.stop()


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/v1/sandboxes", {}),
        ("GET", "/v1/keys", {}),
        ("POST", "/neuron/token", {"json": {}}),
        ("POST", "/mcp", {"json": {"jsonrpc": "2.0", "id": 1, "method": "ping"}}),
        ("GET", "/api/v1/agents", {}),
        ("GET", "/flows", {}),
    ],
)
def test_every_door_is_rate_limited(limited: str, method: str, path: str, kwargs: dict[str, object]) -> None:
    with httpx.Client(base_url=limited, headers=AUTH, timeout=30) as c:
        statuses = [c.request(method, path, **kwargs).status_code for _ in range(4)]  # type: ignore[arg-type]
        assert 429 not in statuses[:3], statuses
        assert statuses[3] == 429, statuses
        last = c.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1
        assert c.get("/v1/health").status_code == 200  # health is never limited


def test_failed_authentications_lock_the_address_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTSIDE_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", "5")
    live = LiveServer(make_settings(tmp_path / "data")).start()
    try:
        with httpx.Client(base_url=live.url, timeout=30) as c:
            bad = [c.get("/v1/sandboxes", headers={"Authorization": f"Bearer sk_guess_{i:020d}"}) for i in range(5)]
            assert [r.status_code for r in bad] == [401] * 5
            # the budget is used up: even the right key is refused from this address, on any door
            for path in ("/v1/sandboxes", "/flows", "/api/v1/agents"):
                r = c.get(path, headers=AUTH)
                assert r.status_code == 429, (path, r.text)
                assert int(r.headers["retry-after"]) >= 1
            r = c.post("/neuron/token", json={"api_key": "sk_guess_x_0123456789abcdef"})
            assert r.status_code == 429
            # key-less monitoring still works; a key on health is checked like anywhere else
            assert c.get("/v1/health").json() == {"status": "ok"}
            assert c.get("/v1/ready", headers=AUTH).status_code == 429
    finally:
        live.stop()


def test_default_failure_budget_does_not_hit_a_few_mistakes(tmp_path: Path) -> None:
    live = LiveServer(make_settings(tmp_path / "data")).start()
    try:
        with httpx.Client(base_url=live.url, timeout=30) as c:
            for _ in range(10):
                assert (
                    c.get("/v1/sandboxes", headers={"Authorization": "Bearer sk_wrong_0123456789abcdef"}).status_code
                    == 401
                )
            assert c.get("/v1/sandboxes", headers=AUTH).status_code == 200
    finally:
        live.stop()


def test_forwarded_for_cannot_dodge_the_lockout(tmp_path: Path) -> None:
    """A real ``portside serve``: rotating ``X-Forwarded-For`` does not give a guessing client new budgets.

    uvicorn trusts forwarded headers from 127.0.0.1 by default; Portside turns that off unless
    ``PORTSIDE_FORWARDED_ALLOW_IPS`` names the proxies to trust.
    """
    from tests.reliability.server_process import server_process

    port = free_port()
    env: dict[str, str | None] = {"PORTSIDE_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE": "3"}
    with server_process(tmp_path / "data", port, tmp_path / "server.log", env_overrides=env):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            statuses = [
                c.get(
                    "/v1/sandboxes",
                    headers={"Authorization": f"Bearer sk_guess_{i:020d}", "X-Forwarded-For": f"203.0.113.{i}"},
                ).status_code
                for i in range(6)
            ]
    assert statuses[:3] == [401] * 3, statuses
    assert statuses[3:] == [429] * 3, statuses
