"""The SDK against a real server on a loopback port."""

from __future__ import annotations

import pytest

import portside
from tests.conftest import ADMIN_KEY, LiveServer


def test_health_keys_and_errors(live_server: LiveServer) -> None:
    with portside.Client(live_server.url, ADMIN_KEY) as c:
        assert c.health().status == "ok"
        assert c.ready()["status"] == "ready"
        created = c.keys.create(name="reader", scopes=["read"])
        assert created.key.startswith("sk_") and created.scopes == ["read"]
        assert created.id in {k.id for k in c.keys.list()}

        with portside.Client(live_server.url, created.key) as reader:
            with pytest.raises(portside.PermissionDeniedError) as ei:
                reader.keys.list()
            assert ei.value.request_id and ei.value.request_id.startswith("req_")

        c.keys.revoke(created.id)
        with pytest.raises(portside.NotFoundError):
            c.keys.revoke("key_missing")

    with portside.Client(live_server.url, "sk_not_a_real_key_000000") as bad:
        with pytest.raises(portside.AuthenticationError):
            bad.keys.list()


async def test_async_client_live(live_server: LiveServer) -> None:
    async with portside.AsyncClient(live_server.url, ADMIN_KEY) as c:
        assert (await c.health()).status == "ok"
        key = await c.keys.create(name="w", scopes=["write"])
        assert key.scopes == ["write"]


def test_env_config(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTSIDE_URL", live_server.url)
    monkeypatch.setenv("PORTSIDE_API_KEY", ADMIN_KEY)
    monkeypatch.setenv("PORTSIDE_TIMEOUT", "5")
    monkeypatch.setenv("PORTSIDE_MAX_RETRIES", "4")
    with portside.Client() as c:
        assert c.config.timeout == 5.0 and c.config.max_retries == 4
        assert len(c.keys.list()) >= 1
