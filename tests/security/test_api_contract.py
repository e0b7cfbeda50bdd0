"""Issue 21 (api1): what the OpenAPI contract found at the edge.

schemathesis' ``ignored_auth`` probe sends a wrong ``X-API-Key`` next to a valid Bearer key: the
server used to take the Bearer one and answer 200. Two different keys are now refused (401).
"""

from __future__ import annotations

import httpx

from tests.conftest import ADMIN_KEY


async def test_two_different_keys_are_refused(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/sandboxes", headers={"X-API-Key": "sk_wrong"})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized" or r.json()["error"]["code"]
    same = await api.get("/v1/sandboxes", headers={"X-API-Key": ADMIN_KEY})
    assert same.status_code == 200
    only_header = await api.get("/v1/sandboxes", headers={"Authorization": "", "X-API-Key": ADMIN_KEY})
    assert only_header.status_code == 200


async def test_an_empty_upload_path_is_a_documented_400(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/sandboxes/sbx_nope/filesystem/upload", files={"file": ("a", b"x")}, data={"path": ""})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "validation_error"
