"""Start-up and configuration truthfulness (issue 13).

* Without bubblewrap the server starts, says how to fix it (log and ``/v1/health``) and answers
  sandbox calls with 503 ``sandbox_driver_unavailable``; everything else works.
* The start banner never prints a configured ``PORTSIDE_API_KEY`` and says where a generated key is.
* An unknown ``signing_key_id`` is a 404 on both doors, never silently the active key.
* Configuring a Vault backend checks it: unreachable → 502, rejected token → 400.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx

from tests.conformance.test_symbiont_trust import _VaultKV, vault  # noqa: F401  (the in-test Vault KV v2 server)
from tests.conftest import ADMIN_KEY, free_port
from tests.reliability.server_process import server_process
from tests.trust.test_trust_api import TOOL

WIDE = {"COLUMNS": "400"}  # the banner must not be wrapped by rich


# ---------------------------------------------------------------- no bubblewrap


def test_server_starts_without_bwrap_and_says_how_to_fix_it(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    env = {**WIDE, "PORTSIDE_SANDBOX_BWRAP": str(tmp_path / "no-such-bwrap")}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with (
        server_process(tmp_path / "data", port, log, env_overrides=env),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as c,
    ):
        health = c.get("/v1/health").json()
        assert any("apt-get install bubblewrap" in w for w in health["warnings"]), health
        ready = c.get("/v1/ready").json()
        assert ready["checks"]["sandbox_driver"]["available"] is False
        r = c.post("/v1/sandboxes", json={})
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "sandbox_driver_unavailable"
        assert "apt-get install bubblewrap" in error["details"]["fix"]
        # other areas are fine
        assert c.get("/v1/flows").status_code == 200
        assert c.post("/v1/secrets", json={"agent_id": "a1", "name": "n", "value": "v"}).status_code in (200, 201)
    text = log.read_text()
    assert "apt-get install bubblewrap" in text and "Traceback" not in text


# ---------------------------------------------------------------- start banner


def test_banner_never_prints_a_configured_key(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    with server_process(tmp_path / "data", port, log, env_overrides=WIDE):
        pass
    text = log.read_text()
    assert "serving on" in text
    assert ADMIN_KEY not in text
    assert "saved" not in text and not (tmp_path / "data" / "admin_key").exists()
    assert "PORTSIDE_API_KEY" in text


def test_banner_prints_a_generated_key_and_where_it_is(tmp_path: Path) -> None:
    port, log, data = free_port(), tmp_path / "server.log", tmp_path / "data"
    with server_process(data, port, log, env_overrides={**WIDE, "PORTSIDE_API_KEY": None}):
        pass
    saved = data / "admin_key"
    key = saved.read_text().strip()
    text = log.read_text()
    assert key.startswith("sk_") and key in text and str(saved.resolve()) in text
    # the next start generated nothing: no key printed, the file named
    log2 = tmp_path / "server2.log"
    with server_process(data, free_port(), log2, env_overrides={**WIDE, "PORTSIDE_API_KEY": None}):
        pass
    again = log2.read_text()
    assert key not in again and str(saved.resolve()) in again


# ---------------------------------------------------------------- signing_key_id


async def test_unknown_signing_key_id_is_404_on_every_door(api: httpx.AsyncClient) -> None:
    rid = (await api.post("/v1/reviews", json={"tool": TOOL})).json()["review_id"]
    waited = await api.get(f"/v1/reviews/{rid}/wait", params={"timeout": 60})
    assert waited.status_code == 200
    native = await api.post(f"/v1/reviews/{rid}/sign", json={"signing_key_id": "key-456"})
    assert native.status_code == 404 and native.json()["error"]["code"] == "signing_key_not_found", native.text
    symbiont = await api.post("/api/v1/tool-review/sign", json={"review_id": rid, "signing_key_id": "key-456"})
    assert symbiont.status_code == 404 and symbiont.json()["code"] == "signing_key_not_found", symbiont.text
    # approve, then: the unknown id still 404 (nothing signed), the active key's fingerprint signs
    await api.post(f"/v1/reviews/{rid}/claim", json={"reviewer_id": "rita"})
    assert (await api.post(f"/v1/reviews/{rid}/decision", json={"decision": "approve"})).status_code == 200
    assert (await api.post(f"/v1/reviews/{rid}/sign", json={"signing_key_id": "key-456"})).status_code == 404
    assert (await api.get(f"/v1/reviews/{rid}")).json()["status"] == "approved"
    fp = next(k["fingerprint"] for k in (await api.get("/v1/signing-keys")).json()["items"] if k["status"] == "active")
    signed = await api.post(f"/v1/reviews/{rid}/sign", json={"signing_key_id": fp})
    assert signed.status_code == 200, signed.text


async def test_retired_signing_key_is_refused(api: httpx.AsyncClient) -> None:
    old = next(k["fingerprint"] for k in (await api.get("/v1/signing-keys")).json()["items"] if k["status"] == "active")
    assert (await api.post("/v1/signing-keys/rotate")).status_code == 201
    rid = (await api.post("/v1/reviews", json={"tool": TOOL})).json()["review_id"]
    r = await api.post(f"/v1/reviews/{rid}/sign", json={"signing_key_id": old})
    assert r.status_code == 409 and r.json()["error"]["code"] == "signing_key_not_active", r.text


# ---------------------------------------------------------------- Vault backend check


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns


def _vault_body(url: str, token: str) -> dict[str, Any]:
    return {"backend_type": "vault", "vault_config": {"url": url, "auth_method": "token", "token": token}}


async def test_vault_backend_is_checked_when_configured(api: httpx.AsyncClient, vault: str) -> None:  # noqa: F811
    before = (await api.get("/v1/secret-backend")).json()
    down = await api.put("/v1/secret-backend", json=_vault_body(f"http://127.0.0.1:{_closed_port()}", _VaultKV.token))
    assert down.status_code == 502 and down.json()["error"]["code"] == "secret_backend_unreachable", down.text
    for nonsense in ("\u0084Lj7", "vault.example", "ftp://127.0.0.1/", "http://127.0.0.1:99999/"):
        invalid = await api.put("/v1/secret-backend", json=_vault_body(nonsense, _VaultKV.token))
        assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "invalid_vault_url", invalid.text
    bad = await api.post("/api/v1/secrets/config", json=_vault_body(vault, "hvs.wrong"))
    assert bad.status_code == 400 and bad.json()["code"] == "secret_backend_auth_failed", bad.text
    assert "hvs.wrong" not in bad.text
    assert (await api.get("/v1/secret-backend")).json() == before  # a failed check changes nothing
    good = await api.put("/v1/secret-backend", json=_vault_body(vault, _VaultKV.token))
    assert good.status_code == 200 and good.json()["backend_type"] == "vault", good.text
