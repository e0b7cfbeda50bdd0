"""One key-scope rule for every door (issue 13): no key creates a key beyond its own scopes, and
key management needs ``admin`` on AI Spine's ``/api/v1/user/keys/*`` as on ``/v1/keys``."""

from __future__ import annotations

import httpx

from portside.server.auth import Principal


async def _key(api: httpx.AsyncClient, scopes: list[str], owner: str) -> str:
    r = await api.post("/v1/keys", json={"name": owner, "scopes": scopes, "owner": owner})
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_read_key_cannot_generate_a_write_key_through_ai_spine(api: httpx.AsyncClient) -> None:
    reader = await _key(api, ["read"], "alice")
    other = await _key(api, ["read", "write"], "alice")
    r = await api.post("/api/v1/user/keys/generate", json={"user_id": "alice"}, headers=_as(reader))
    assert r.status_code == 403, r.text
    assert "api_key" not in r.json()
    # nothing was created and nothing revoked: both of alice's keys still work, no third one exists
    for key in (reader, other):
        assert (await api.get("/v1/keys/me", headers=_as(key))).status_code == 200
    alice = [k for k in (await api.get("/v1/keys")).json()["items"] if k["owner"] == "alice"]
    assert len(alice) == 2 and not any(k["revoked"] for k in alice)


async def test_read_write_key_cannot_rotate_or_revoke_through_ai_spine(api: httpx.AsyncClient) -> None:
    key = await _key(api, ["read", "write"], "bob")
    r = await api.post("/api/v1/user/keys/generate", json={"user_id": "bob"}, headers=_as(key))
    assert r.status_code == 403 and r.json()["code"] in {"forbidden", "scope_escalation"}
    r = await api.request("DELETE", "/api/v1/user/keys/revoke", json={"user_id": "bob"}, headers=_as(key))
    assert r.status_code == 403, r.text
    assert (await api.get("/v1/keys/me", headers=_as(key))).status_code == 200
    # looking at one's own key stays allowed (masked); another user's is not
    mine = await api.get("/api/v1/user/keys/my-key", params={"user_id": "bob"}, headers=_as(key))
    assert mine.status_code == 200 and mine.json()["has_api_key"] is True
    other = await api.get("/api/v1/user/keys/my-key", params={"user_id": "carol"}, headers=_as(key))
    assert other.status_code == 403


async def test_native_create_names_the_escalation(api: httpx.AsyncClient) -> None:
    reader = await _key(api, ["read"], "dave")
    r = await api.post("/v1/keys", json={"name": "x", "scopes": ["read", "write"]}, headers=_as(reader))
    assert r.status_code == 403 and r.json()["error"]["code"] == "scope_escalation", r.text
    assert r.json()["error"]["details"]["requested_beyond"] == ["write"]
    r = await api.post("/v1/keys", json={"name": "x", "scopes": ["read"]}, headers=_as(reader))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert (await api.get("/v1/keys", headers=_as(reader))).status_code == 403


async def test_admin_still_generates_and_rotates_user_keys(api: httpx.AsyncClient) -> None:
    first = await api.post("/api/v1/user/keys/generate", json={"user_id": "erin"})
    assert first.status_code == 200 and first.json()["action"] == "created"
    again = await api.post("/api/v1/user/keys/generate", json={"user_id": "erin"})
    assert again.status_code == 200 and again.json()["action"] == "regenerated"
    old, new = first.json()["api_key"], again.json()["api_key"]
    assert (await api.get("/v1/keys/me", headers=_as(old))).status_code == 401
    me = (await api.get("/v1/keys/me", headers=_as(new))).json()
    assert me["owner"] == "erin" and me["scopes"] == ["read", "write"]


async def test_the_rule_lives_in_the_key_service(api: httpx.AsyncClient) -> None:
    """Any door calling ``KeyService.create`` gets the same answer (here: called directly)."""
    import pytest

    from portside.server.errors import Forbidden

    keys = api._transport.app.state.ctx.keys  # type: ignore[attr-defined]
    worker = Principal(key_id="k", name="w", owner="w", scopes=frozenset({"worker", "read"}))
    with pytest.raises(Forbidden) as exc:
        await keys.create(worker, "x", ["worker", "write"], "w")
    assert exc.value.code == "scope_escalation"
    with pytest.raises(Forbidden) as exc:
        await keys.create(worker, "x", ["worker"], "w")
    assert exc.value.code == "forbidden"
    with pytest.raises(Forbidden):
        await keys.revoke(worker, "key_whatever")


async def test_neuron_token_carries_only_the_keys_scopes(api: httpx.AsyncClient) -> None:
    worker = await _key(api, ["worker"], "nina")
    reader = await _key(api, ["read"], "nina")
    assert (await api.post("/api/v1/auth/token", json={}, headers=_as(reader))).status_code == 403
    r = await api.post("/api/v1/auth/token", json={"neuronId": "n1"}, headers=_as(worker))
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["scp"] == ["worker"]
    # a worker token is no API key
    assert (await api.get("/v1/flows", headers=_as(token))).status_code == 401
