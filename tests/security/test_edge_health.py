"""Issue 13, unauthenticated surface: health without a key says only up or down.

Before: ``/v1/ready`` without a key showed the engine id (host and server PID), the sandbox driver,
migration revisions and the vector index; the other health routes showed versions and checks.
"""

from __future__ import annotations

import os

import httpx
import pytest

from tests.conftest import ADMIN_KEY

NO_KEY = {"Authorization": ""}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/health", {"status"}),
        ("/v1/ready", {"status"}),
        ("/health", {"status", "timestamp"}),  # AI Spine HealthStatus: status (+ optional fields)
        ("/api/v1/health", {"status", "uptime_seconds", "timestamp", "version"}),  # Symbiont HealthResponse
    ],
)
async def test_health_without_key_says_only_up_or_down(api: httpx.AsyncClient, path: str, expected: set[str]) -> None:
    r = await api.get(path, headers=NO_KEY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == expected
    text = r.text
    for leak in (str(os.getpid()), "bwrap", "sandbox_driver", "migrations", "checks", "warnings", "engine"):
        assert leak not in text, (path, leak, text)


async def test_health_with_key_has_the_details(api: httpx.AsyncClient) -> None:
    ready = (await api.get("/v1/ready")).json()
    assert ready["checks"]["database"]["ok"] and "sandbox_driver" in ready["checks"]
    assert "version" in (await api.get("/v1/health")).json()
    assert "checks" in (await api.get("/health")).json()
    assert "checks" in (await api.get("/api/v1/health")).json()


async def test_wrong_key_on_health_is_401(api: httpx.AsyncClient) -> None:
    """A key on a health route is checked (so it is no free oracle for key guessing)."""
    r = await api.get("/v1/ready", headers={"Authorization": "Bearer sk_wrong_0123456789abcdefgh"})
    assert r.status_code == 401
    assert (await api.get("/v1/ready", headers={"Authorization": f"Bearer {ADMIN_KEY}"})).status_code == 200
