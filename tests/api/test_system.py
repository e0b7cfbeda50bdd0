from __future__ import annotations

import httpx


async def test_health_is_public_and_has_request_id(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/health", headers={"Authorization": ""})
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.headers["x-request-id"].startswith("req_")


async def test_request_id_is_echoed(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/health", headers={"X-Request-ID": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"


async def test_ready_reports_store_and_migrations(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["migrations"]["current"] == body["checks"]["migrations"]["heads"]


async def test_openapi_and_docs(api: httpx.AsyncClient) -> None:
    assert (await api.get("/openapi.json")).json()["info"]["title"] == "Portside"
    assert (await api.get("/docs")).status_code == 200


async def test_unknown_route_is_json_404(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_wrong_method_is_json_405(api: httpx.AsyncClient) -> None:
    r = await api.put("/v1/health")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
