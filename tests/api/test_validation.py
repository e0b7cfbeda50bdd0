from __future__ import annotations

import httpx


async def test_body_validation_is_400_with_field_details(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/keys", json={"name": 5, "scopes": "read"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    fields = {e["field"] for e in err["details"]["errors"]}
    assert {"name", "scopes"} <= fields


async def test_malformed_json_is_400_not_500(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/keys", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "validation_error"
