"""Issue 13, bad input is never a 5xx.

Attacks: a lone surrogate ``"\\ud800"`` in JSON strings (500s, some while rendering the 400 itself),
``offset``/``page`` beyond int64 on list routes (500 from the store), NaN / huge numbers; and an
unhandled error must still carry ``X-Request-ID``, keep the connection and be logged as a 500.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import ADMIN_KEY, LiveServer, make_settings

LONE = '"\\ud800"'
JSON = {"Content-Type": "application/json"}
BIG = str(2**64)

SURROGATE_BODIES = [
    ("POST", "/v1/keys", f'{{"name": "k", "scopes": [{LONE}]}}'),  # crashed while rendering the 400
    ("POST", "/v1/keys", f'{{"name": {LONE}}}'),
    ("POST", "/flows", f'{{"flow_id": {LONE}, "name": "x", "nodes": []}}'),
    ("POST", "/v1/inputs", f'{{"name": {LONE}}}'),
    ("POST", "/api/v1/secrets", f'{{"key": {LONE}, "value": "v"}}'),
    ("POST", "/v1/sandboxes", f'{{"profile": "python-default", "metadata": {{{LONE}: 1}}}}'),
]


@pytest.mark.parametrize(("method", "path", "body"), SURROGATE_BODIES)
async def test_lone_surrogate_is_a_400(api: httpx.AsyncClient, method: str, path: str, body: str) -> None:
    r = await api.request(method, path, content=body, headers=JSON)
    assert r.status_code == 400, r.text
    assert r.headers["x-request-id"]
    assert "validation_error" in r.text


@pytest.mark.parametrize(
    "path",
    [
        "/v1/executions",
        "/executions",
        "/v1/skills/candidates",
        "/v1/skills/releases",
        "/v1/reviews",
        "/api/v1/tool-review/sessions",
    ],
)
async def test_offset_beyond_int64_is_a_400(api: httpx.AsyncClient, path: str) -> None:
    r = await api.get(path, params={"offset": BIG, "page": BIG})
    assert r.status_code in (400, 404), r.text  # 404 only if the dialect has no such list
    assert r.status_code != 500


@pytest.mark.parametrize(
    "body",
    ['{"name": "k", "scopes": ["read"], "x": NaN}', '{"name": "k", "n": 1e999}', f'{{"name": "k", "n": {BIG}}}'],
)
async def test_numbers_json_cannot_carry_are_a_400(api: httpx.AsyncClient, body: str) -> None:
    r = await api.post("/v1/keys", content=body, headers=JSON)
    assert r.status_code == 400, r.text


async def test_invalid_utf8_is_a_400(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/keys", content=b'{"name": "\xed\xa0\x80"}', headers=JSON)
    assert r.status_code == 400, r.text


def test_unhandled_error_keeps_request_id_and_connection(tmp_path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """A route that raises: 500 in the door's shape, X-Request-ID, logged as 500, connection reused."""
    live = LiveServer(make_settings(tmp_path / "data"))
    app: FastAPI = live.app

    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/v1/_test_boom", boom)
    app.add_api_route("/status/_test_boom", boom)  # an AI Spine path: its error shape
    live.start()
    try:
        with caplog.at_level(logging.INFO, logger="portside"):
            with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
                r = c.get("/v1/_test_boom", headers={"X-Request-ID": "trace-boom"})
                assert r.status_code == 500
                assert r.headers["x-request-id"] == "trace-boom"
                assert r.json()["error"] == {
                    "code": "internal_error",
                    "message": "internal server error",
                    "details": {},
                    "request_id": "trace-boom",
                }
                spine = c.get("/status/_test_boom")
                assert spine.status_code == 500 and spine.json()["details"]["error_code"] == "internal_error"
                health = c.get("/v1/health")
                assert health.status_code == 200
                # one connection served all three requests: the 500s did not close it
                ports = {x.extensions["network_stream"].get_extra_info("client_addr")[1] for x in (r, spine, health)}
                assert len(ports) == 1, ports
            access = [rec.getMessage() for rec in caplog.records if rec.name == "portside.access"]
            assert any(m.startswith("GET /v1/_test_boom 500") for m in access), access
            assert any("boom" in (rec.exc_text or "") or rec.exc_info for rec in caplog.records if rec.levelno >= 40)
    finally:
        live.stop()
