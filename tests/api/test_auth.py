from __future__ import annotations

import httpx
import pytest

from tests.conftest import ADMIN_KEY


async def _make_key(api: httpx.AsyncClient, scopes: list[str]) -> dict[str, object]:
    r = await api.post("/v1/keys", json={"name": "t", "scopes": scopes})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


@pytest.mark.parametrize("header", [None, "Bearer sk_wrong_wrong_wrong_wrong", "Basic abc", "Bearer "])
async def test_missing_or_bad_key_is_401(api: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {"Authorization": ""}
    r = await api.get("/v1/keys", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


async def test_insufficient_scope_is_403(api: httpx.AsyncClient) -> None:
    key = await _make_key(api, ["read"])
    r = await api.get("/v1/keys", headers={"Authorization": f"Bearer {key['key']}"})
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "forbidden"
    assert err["details"]["required_scope"] == "admin"


async def test_key_lifecycle_and_revocation(api: httpx.AsyncClient) -> None:
    key = await _make_key(api, ["read", "write"])
    secret = str(key["key"])
    assert secret.startswith("sk_")
    me = await api.get("/v1/keys/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200
    assert me.json()["scopes"] == ["read", "write"]

    listed = (await api.get("/v1/keys")).json()
    assert key["id"] in {k["id"] for k in listed["items"]}
    assert all("key" not in k and "key_hash" not in k for k in listed["items"])

    assert (await api.delete(f"/v1/keys/{key['id']}")).json()["revoked"] is True
    r = await api.get("/v1/keys/me", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401


async def test_unknown_scope_is_rejected(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/keys", json={"name": "x", "scopes": ["root"]})
    assert r.status_code == 400
    assert r.json()["error"]["details"]["unknown"] == ["root"]


async def test_revoke_unknown_key_is_404(api: httpx.AsyncClient) -> None:
    r = await api.delete("/v1/keys/key_nope")
    assert r.status_code == 404


async def test_admin_key_from_env_works(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/keys/me", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.json()["scopes"] == ["admin"]
