"""Retries against a real flaky loopback server (no mocks of our own code)."""

from __future__ import annotations

import time

import pytest

import portside
from portside._config import backoff_delay
from portside._sync._http import HTTP
from tests.sdk.flaky import js, scripted_server

OK = js(200, {"status": "ok", "version": "x", "uptime_seconds": 1})


def test_get_retries_through_503_then_succeeds() -> None:
    with scripted_server([js(503, {}), js(502, {}), OK]) as (url, script):
        with portside.Client(url, "sk_x", max_retries=3) as c:
            assert c.health().status == "ok"
    assert len(script.requests) == 3


def test_gives_up_after_max_retries_with_server_error() -> None:
    with scripted_server([js(503, {"error": {"code": "unavailable", "message": "down"}})]) as (url, script):
        with portside.Client(url, "sk_x", max_retries=2) as c, pytest.raises(portside.ServerError) as ei:
            c.health()
    assert ei.value.status_code == 503 and ei.value.code == "unavailable"
    assert len(script.requests) == 3


def test_500_is_not_retried() -> None:
    with scripted_server([js(500, {}), OK]) as (url, script):
        with portside.Client(url, "sk_x", max_retries=3) as c, pytest.raises(portside.ServerError):
            c.health()
    assert len(script.requests) == 1


def test_post_without_idempotency_key_is_not_retried() -> None:
    with scripted_server([js(503, {}), js(201, {})]) as (url, script):
        http = HTTP(portside.Client(url, "sk_x", max_retries=3).config)
        with pytest.raises(portside.ServerError):
            http.request("POST", "/v1/things", json={})
    assert len(script.requests) == 1


def test_post_with_idempotency_key_is_retried_with_same_key() -> None:
    with scripted_server([js(503, {}), js(201, {"id": "x"})]) as (url, script):
        http = HTTP(portside.Client(url, "sk_x", max_retries=3).config)
        assert http.json("POST", "/v1/things", json={}, idempotency_key="idem-1") == {"id": "x"}
    assert [r["headers"]["idempotency-key"] for r in script.requests] == ["idem-1", "idem-1"]


def test_429_honours_retry_after() -> None:
    with scripted_server([js(429, {}, **{"Retry-After": "1"}), OK]) as (url, script):
        started = time.monotonic()
        with portside.Client(url, "sk_x", max_retries=2) as c:
            c.health()
        assert time.monotonic() - started >= 0.95
    assert len(script.requests) == 2


def test_rate_limit_error_carries_retry_after() -> None:
    body = {"error": {"code": "quota_exceeded", "message": "slow down"}}
    with scripted_server([js(429, body, **{"Retry-After": "7"})]) as (url, _):
        with portside.Client(url, "sk_x", max_retries=0) as c, pytest.raises(portside.RateLimitError) as ei:
            c.health()
    assert ei.value.retry_after == 7.0


def test_connection_refused_raises_connection_error_after_retries() -> None:
    from tests.conftest import free_port

    with portside.Client(f"http://127.0.0.1:{free_port()}", "sk_x", max_retries=1) as c:
        with pytest.raises(portside.APIConnectionError):
            c.health()


def test_timeout_raises_timeout_error() -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts, never answers
    port = listener.getsockname()[1]
    try:
        with portside.Client(f"http://127.0.0.1:{port}", "sk_x", timeout=0.3, max_retries=1) as c:
            with pytest.raises(portside.APITimeoutError):
                c.health()
    finally:
        threading.Thread(target=listener.close).start()


async def test_async_client_retries_too() -> None:
    with scripted_server([js(504, {}), OK]) as (url, script):
        async with portside.AsyncClient(url, "sk_x", max_retries=2) as c:
            assert (await c.health()).status == "ok"
    assert len(script.requests) == 2


def test_backoff_is_bounded_and_jittered() -> None:
    delays = [backoff_delay(a) for a in range(12)]
    assert all(0 < d <= 8.0 for d in delays)
    assert backoff_delay(0) <= 0.25
    assert backoff_delay(3, retry_after=2.5) == 2.5
