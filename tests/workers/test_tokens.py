"""Worker tokens are standard HS256 JWTs made and checked by PyJWT (issue 21: they were hand-built).

The wire format the holokai neuron SDK receives from ``POST /api/v1/auth/token`` is unchanged: a
compact JWS with header ``{"alg":"HS256","typ":"JWT"}``; any PyJWT-made token with the same key and
claims is accepted, and the classic JWT attacks (``alg: none``, another algorithm, a foreign issuer,
an expired token) are refused with 401.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from portside.server.workers.tokens import ISSUER, TokenSigner

REGISTER = {
    "neuronId": "n-jwt",
    "protocolVersion": "1.0.0",
    "capabilities": [{"type": "acme/tests/jwt", "scope": "any", "concurrency": 1}],
}


def _secret(app: FastAPI) -> bytes:
    return app.state.ctx.service("workers.tokens", TokenSigner)._key()  # type: ignore[no-any-return]


async def _register(api: httpx.AsyncClient, token: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Authorization": f"Bearer {token}"}
    ) as client:
        return await client.post("/neuron/register", json=REGISTER)


async def test_minted_token_is_a_standard_hs256_jwt(app: FastAPI, api: httpx.AsyncClient) -> None:
    r = await api.post("/api/v1/auth/token", json={"neuronId": "n-jwt", "ttlSeconds": 60})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, _secret(app), algorithms=["HS256"], issuer=ISSUER)
    assert claims["nid"] == "n-jwt" and claims["exp"] - claims["iat"] == 60
    assert "admin" in claims["scp"] and isinstance(claims["sub"], str)
    assert (await _register(api, token)).status_code == 200


@pytest.mark.filterwarnings("ignore:The HMAC key")  # the HS512 forgery uses our 32-byte key on purpose
async def test_pyjwt_tokens_are_accepted_and_attacks_refused(app: FastAPI, api: httpx.AsyncClient) -> None:
    r = await api.post("/api/v1/auth/token", json={"neuronId": "n-jwt", "ttlSeconds": 60})
    claims: dict[str, Any] = jwt.decode(r.json()["token"], _secret(app), algorithms=["HS256"], issuer=ISSUER)
    key = _secret(app)

    assert (await _register(api, jwt.encode(claims, key, algorithm="HS256"))).status_code == 200

    bad = {
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "HS512": jwt.encode(claims, key, algorithm="HS512"),
        "other key": jwt.encode(claims, b"k" * 32, algorithm="HS256"),
        "other issuer": jwt.encode({**claims, "iss": "elsewhere"}, key, algorithm="HS256"),
        "no owner": jwt.encode({k: v for k, v in claims.items() if k != "own"}, key, algorithm="HS256"),
        "no expiry": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, key, algorithm="HS256"),
        "garbage": "not-a-jwt",
        "bad base64": "a.b.c",
    }
    for name, token in bad.items():
        r = await _register(api, token)
        assert r.status_code == 401, (name, r.text)

    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, key, algorithm="HS256")
    r = await _register(api, expired)
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"
