"""SchemaPin-compatible signing: canonical form, key store, rotation/revocation, interop with schemapin."""

from __future__ import annotations

import base64
import copy
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from portside.server.errors import Conflict, InvalidInput, NotFound
from portside.server.reviews import (
    ALGORITHM,
    KeyStore,
    build_well_known,
    canonical_json,
    key_fingerprint,
    sign_tool_with_key,
    verify_tool,
)
from portside.server.reviews.signing import generate_private_key, public_key_pem
from portside.server.secrets import DecryptionError, SecretCipher, generate_key

TOOL: dict[str, Any] = {
    "name": "calculate_sum",
    "description": "Adds two numbers — überall, 日本語 ✓",
    "inputSchema": {
        "type": "object",
        "properties": {"b": {"type": "number"}, "a": {"type": "number", "description": "ä \u2028 \"q\""}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
    "annotations": {"readOnlyHint": True, "z": None, "n": [1, 2.5, -0.0, 10**20]},
}


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "signing_keys.json", SecretCipher(generate_key()), developer_name="Portside Test",
                    contact="security@portside.example")


def test_canonical_json_rules() -> None:
    text = canonical_json({"b": 1, "a": {"d": [3, {"y": 1, "x": "é"}], "c": None}})
    assert text == '{"a":{"c":null,"d":[3,{"x":"é","y":1}]},"b":1}'
    with pytest.raises(InvalidInput):
        canonical_json({"x": float("nan")})


def test_sign_and_verify_roundtrip(store: KeyStore) -> None:
    sig = store.sign_tool(TOOL)
    assert sig.algorithm == ALGORITHM == "ECDSA-P256-SHA256"
    assert sig.fingerprint == store.active_key().fingerprint
    assert sig.fingerprint.startswith("sha256:") and len(sig.fingerprint) == 7 + 64
    assert base64.b64decode(sig.signature_b64)[0] == 0x30  # DER SEQUENCE
    pem = store.active_key().public_key_pem
    assert verify_tool(TOOL, sig.signature_b64, pem)
    reordered = json.loads(json.dumps(TOOL, sort_keys=True))
    assert verify_tool(reordered, sig.signature_b64, pem)  # key order is irrelevant
    assert store.verify_tool(TOOL, sig.signature_b64)


def test_any_change_breaks_the_signature(store: KeyStore) -> None:
    sig = store.sign_tool(TOOL)
    pem = store.active_key().public_key_pem
    changed = copy.deepcopy(TOOL)
    changed["description"] = changed["description"].replace("Adds", "Adda")
    assert not verify_tool(changed, sig.signature_b64, pem)
    changed = copy.deepcopy(TOOL)
    changed["inputSchema"]["required"] = ["a"]
    assert not verify_tool(changed, sig.signature_b64, pem)
    raw = bytearray(base64.b64decode(sig.signature_b64))
    raw[-1] ^= 0x01
    assert not verify_tool(TOOL, base64.b64encode(bytes(raw)).decode(), pem)
    other = public_key_pem(generate_private_key())
    assert not verify_tool(TOOL, sig.signature_b64, other)
    assert not verify_tool(TOOL, "not base64!!", pem)
    assert not verify_tool(TOOL, sig.signature_b64, "garbage")


def test_private_key_encrypted_at_rest(tmp_path: Path) -> None:
    path = tmp_path / "signing_keys.json"
    master = SecretCipher(generate_key())
    store = KeyStore(path, master)
    fingerprint = store.active_key().fingerprint
    text = path.read_text()
    assert "PRIVATE KEY" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # another store with the same server secret uses the same key; another secret cannot
    assert KeyStore(path, master).sign_tool(TOOL).fingerprint == fingerprint
    with pytest.raises(DecryptionError):
        KeyStore(path, SecretCipher(generate_key())).sign_tool(TOOL)


def test_rotate_and_revoke(store: KeyStore) -> None:
    first = store.active_key()
    old_sig = store.sign_tool(TOOL)
    second = store.rotate()
    assert second.fingerprint != first.fingerprint
    assert store.active_key().fingerprint == second.fingerprint
    statuses = {k.fingerprint: k.status for k in store.keys()}
    assert statuses == {first.fingerprint: "retired", second.fingerprint: "active"}
    assert store.verify_tool(TOOL, old_sig.signature_b64)  # retired keys still verify
    assert store.sign_tool(TOOL).fingerprint == second.fingerprint

    store.revoke(first.fingerprint, "superseded")
    assert store.revoked_fingerprints() == [first.fingerprint]
    assert not store.verify_tool(TOOL, old_sig.signature_b64)
    with pytest.raises(Conflict):
        store.revoke(first.fingerprint)
    with pytest.raises(NotFound):
        store.revoke("sha256:" + "0" * 64)
    with pytest.raises(InvalidInput):
        store.revoke(second.fingerprint, "because")

    store.revoke(second.fingerprint)  # revoking the active key rotates
    third = store.active_key()
    assert third.fingerprint not in (first.fingerprint, second.fingerprint)
    doc = store.revocation_document("portside.example")
    assert {k["fingerprint"] for k in doc["revoked_keys"]} == {first.fingerprint, second.fingerprint}
    assert {k["reason"] for k in doc["revoked_keys"]} == {"superseded", "key_compromise"}


def test_well_known_document(store: KeyStore) -> None:
    first = store.active_key()
    store.rotate()
    store.revoke(first.fingerprint)
    doc = store.well_known(revocation_endpoint="https://portside.example/.well-known/schemapin-revocations.json")
    assert doc["schema_version"] == "1.2"
    assert doc["developer_name"] == "Portside Test"
    assert doc["contact"] == "security@portside.example"
    assert doc["public_key_pem"] == store.active_key().public_key_pem
    assert doc["revoked_keys"] == [first.fingerprint]
    assert build_well_known("PEM", "Dev")["revoked_keys"] == []


# --------------------------------------------------------------------------- schemapin interop

SCHEMAPIN_CHECK = r"""
import json, sys
from schemapin.core import SchemaPinCore
from schemapin.crypto import KeyManager, SignatureManager
from schemapin.utils import SchemaSigningWorkflow, create_well_known_response
from schemapin.verification import KeyPinStore, verify_schema_offline

p = json.loads(sys.stdin.buffer.read().decode("utf-8"))
tool, sig, pem, wk = p["tool"], p["signature"], p["public_key_pem"], p["well_known"]
pub = KeyManager.load_public_key_pem(pem)
out = {
    "canonical": SchemaPinCore.canonicalize_schema(tool),
    "fingerprint": KeyManager.calculate_key_fingerprint_from_pem(pem),
    "valid": SignatureManager.verify_schema_signature(SchemaPinCore.canonicalize_and_hash(tool), sig, pub),
    "tampered": [
        SignatureManager.verify_schema_signature(SchemaPinCore.canonicalize_and_hash(t), sig, pub)
        for t in p["tampered"]
    ],
    "offline": verify_schema_offline(tool, sig, "portside.example", tool["name"], wk, None, KeyPinStore()).to_dict(),
    "offline_revoked": verify_schema_offline(tool, sig, "portside.example", tool["name"], p["revoked_wk"], None,
                                             KeyPinStore()).to_dict(),
}
priv, _ = KeyManager.generate_keypair()
out["their_pem"] = KeyManager.export_public_key_pem(priv.public_key())
out["their_signature"] = SchemaSigningWorkflow(KeyManager.export_private_key_pem(priv)).sign_schema(tool)
out["their_fingerprint"] = KeyManager.calculate_key_fingerprint(priv.public_key())
out["their_well_known"] = create_well_known_response(pem, "Portside Test", contact="security@portside.example",
                                                     revoked_keys=wk.get("revoked_keys") or None)
print(json.dumps(out, ensure_ascii=False))
"""


def test_schemapin_verifies_portside_signatures(store: KeyStore, run_schemapin: Any) -> None:
    sig = store.sign_tool(TOOL)
    pem = store.active_key().public_key_pem
    tampered = copy.deepcopy(TOOL)
    tampered["inputSchema"]["properties"]["a"]["type"] = "numbeR"
    one_byte = json.loads(json.dumps(TOOL))
    one_byte["name"] = "calculate_sun"
    wk = store.well_known()
    revoked_wk = {**wk, "revoked_keys": [sig.fingerprint]}
    out = run_schemapin(SCHEMAPIN_CHECK, {"tool": TOOL, "signature": sig.signature_b64, "public_key_pem": pem,
                                          "well_known": wk, "revoked_wk": revoked_wk,
                                          "tampered": [tampered, one_byte]})
    assert out["canonical"] == canonical_json(TOOL)
    assert out["fingerprint"] == sig.fingerprint == key_fingerprint(pem)
    assert out["valid"] is True
    assert out["tampered"] == [False, False]
    assert out["offline"]["valid"] is True, out["offline"]
    assert out["offline"]["developer_name"] == "Portside Test"
    assert out["offline_revoked"]["valid"] is False
    assert out["offline_revoked"]["error_code"] == "key_revoked"
    # and the other direction: schemapin's signatures verify with Portside
    assert verify_tool(TOOL, out["their_signature"], out["their_pem"])
    assert key_fingerprint(out["their_pem"]) == out["their_fingerprint"]
    changed = {**TOOL, "name": "calculate_sun"}
    assert not verify_tool(changed, out["their_signature"], out["their_pem"])
    # our well-known document carries the same fields schemapin builds
    ours = store.well_known()
    for key, value in out["their_well_known"].items():
        assert ours[key] == value


def test_sign_with_explicit_key() -> None:
    key = generate_private_key()
    sig = sign_tool_with_key(TOOL, key)
    assert verify_tool(TOOL, sig.signature_b64, public_key_pem(key))
    assert sig.to_dict()["signed_at"].endswith("Z")
