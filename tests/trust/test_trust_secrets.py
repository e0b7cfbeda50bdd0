"""Secrets: AES-GCM envelope, key loading, encrypted file / keyring / Vault backends, SecretValue."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pickle
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from keyring.backend import KeyringBackend as _KeyringBase

from portside.server.errors import InvalidInput, NotFound
from portside.server.secrets import (
    DecryptionError,
    EncryptedFileBackend,
    KeyringBackend,
    SecretBackend,
    SecretCipher,
    SecretValue,
    VaultBackend,
    backend_from_config,
    generate_key,
    parse_key,
    resolve_master_key,
)

PLAINTEXT = "hvs.s3cr3t-value-ünïcode-🔑"


# --------------------------------------------------------------------------- cipher


def test_cipher_round_trip_and_envelope() -> None:
    c = SecretCipher(generate_key())
    env = c.encrypt(b"hello", b"ctx")
    assert env[0] == 1 and len(env) == 1 + 4 + 12 + 5 + 16
    assert c.decrypt(env, b"ctx") == b"hello"
    assert c.encrypt(b"hello", b"ctx") != env  # random nonce
    assert c.decrypt_text(c.encrypt_text(PLAINTEXT, "a/b"), "a/b") == PLAINTEXT


def test_wrong_key_fails_cleanly() -> None:
    env = SecretCipher(generate_key()).encrypt(b"hello")
    with pytest.raises(DecryptionError) as exc:
        SecretCipher(generate_key()).decrypt(env)
    assert exc.value.code == "wrong_secret_key"
    assert "hello" not in exc.value.message


@pytest.mark.parametrize("where", [0, 3, 10, 20, -1])
def test_tampering_fails(where: int) -> None:
    c = SecretCipher(generate_key())
    env = bytearray(c.encrypt(b"attack at dawn", b"ctx"))
    env[where] ^= 0x01
    with pytest.raises(DecryptionError):
        c.decrypt(bytes(env), b"ctx")


def test_wrong_aad_and_truncation_fail() -> None:
    c = SecretCipher(generate_key())
    env = c.encrypt(b"x", b"ns/a")
    with pytest.raises(DecryptionError) as exc:
        c.decrypt(env, b"ns/b")
    assert exc.value.code == "decryption_failed"
    with pytest.raises(DecryptionError) as exc:
        c.decrypt(env[:10])
    assert exc.value.code == "ciphertext_malformed"


def test_previous_keys_still_decrypt() -> None:
    old, new = generate_key(), generate_key()
    env = SecretCipher(old).encrypt(b"legacy")
    rotated = SecretCipher(new, previous_keys=[old])
    assert rotated.decrypt(env) == b"legacy"
    assert rotated.decrypt(rotated.encrypt(b"x")) == b"x"
    with pytest.raises(DecryptionError):
        SecretCipher(old).decrypt(rotated.encrypt(b"x"))


def test_derived_ciphers_are_independent() -> None:
    c = SecretCipher(generate_key())
    a, b = c.derive("signing-keys"), c.derive("other")
    assert a.key_id != b.key_id != c.key_id
    with pytest.raises(DecryptionError):
        b.decrypt(a.encrypt(b"x"))
    assert c.derive("signing-keys").decrypt(a.encrypt(b"x")) == b"x"


def test_parse_key_formats() -> None:
    key = generate_key()
    assert parse_key(key.hex()) == key
    assert parse_key(base64.b64encode(key).decode()) == key
    assert parse_key(base64.urlsafe_b64encode(key).decode().rstrip("=")) == key
    for bad in ("short", "00" * 31, base64.b64encode(b"x" * 16).decode(), "é" * 44):
        with pytest.raises(InvalidInput):
            parse_key(bad)


def test_master_key_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTSIDE_SECRET_KEY", raising=False)
    key = resolve_master_key(None, tmp_path)
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert resolve_master_key(None, tmp_path) == key  # stable across restarts
    env_key = generate_key()
    monkeypatch.setenv("PORTSIDE_SECRET_KEY", env_key.hex())
    assert resolve_master_key(None, tmp_path) == env_key
    explicit = generate_key()
    assert resolve_master_key(base64.b64encode(explicit).decode(), tmp_path) == explicit
    monkeypatch.delenv("PORTSIDE_SECRET_KEY")
    with pytest.raises(InvalidInput):
        resolve_master_key(None, None)


# --------------------------------------------------------------------------- SecretValue


def test_secret_value_never_shows() -> None:
    v = SecretValue(PLAINTEXT)
    for shown in (repr(v), str(v), f"{v}", f"{v!r}", repr([v]), repr({"k": v})):
        assert PLAINTEXT not in shown
    assert v.reveal() == PLAINTEXT
    assert v == SecretValue(PLAINTEXT)
    with pytest.raises(TypeError):
        pickle.dumps(v)


# --------------------------------------------------------------------------- backends


async def _exercise(backend: SecretBackend) -> None:
    ns = f"agent-{uuid.uuid4().hex[:8]}"
    assert await backend.list_names(ns) == []
    await backend.set(ns, "api_key", PLAINTEXT)
    await backend.set(ns, "db.password", SecretValue("pw-1"))
    assert (await backend.get(ns, "api_key")).reveal() == PLAINTEXT
    assert await backend.list_names(ns) == ["api_key", "db.password"]
    await backend.set(ns, "db.password", "pw-2")
    assert (await backend.get(ns, "db.password")).reveal() == "pw-2"
    assert await backend.delete(ns, "db.password") is True
    assert await backend.delete(ns, "db.password") is False
    with pytest.raises(NotFound):
        await backend.get(ns, "db.password")
    assert await backend.list_names(ns) == ["api_key"]
    assert await backend.list_names(f"{ns}-other") == []
    with pytest.raises(InvalidInput):
        await backend.set(ns, "../etc", "x")
    with pytest.raises(InvalidInput):
        await backend.get("bad/ns", "x")
    await backend.delete(ns, "api_key")


async def test_encrypted_file_backend(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    cipher = SecretCipher(generate_key())
    backend = EncryptedFileBackend(path, cipher)
    await _exercise(backend)
    await backend.set("agent-1", "token", PLAINTEXT)
    raw = path.read_bytes()
    assert PLAINTEXT.encode() not in raw and b"s3cr3t" not in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    meta = await backend.metadata("agent-1", "token")
    assert meta["created_at"].endswith("Z")
    # a fresh instance (e.g. after restart) reads the same data
    assert (await EncryptedFileBackend(path, cipher).get("agent-1", "token")).reveal() == PLAINTEXT
    leftovers = [n for n in await asyncio.to_thread(os.listdir, tmp_path) if n.endswith(".tmp")]
    assert not leftovers  # atomic writes leave no temp files


async def test_file_backend_wrong_key_and_tamper(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    await EncryptedFileBackend(path, SecretCipher(generate_key())).set("agent-1", "token", PLAINTEXT)
    with pytest.raises(DecryptionError) as exc:
        await EncryptedFileBackend(path, SecretCipher(generate_key())).get("agent-1", "token")
    assert exc.value.code == "wrong_secret_key"

    cipher = SecretCipher(generate_key())
    backend = EncryptedFileBackend(path, cipher)
    await backend.set("agent-1", "a", "value-a")
    await backend.set("agent-1", "b", "value-b")
    data = json.loads(path.read_text())
    entries = data["secrets"]["agent-1"]
    entries["a"]["ciphertext"] = entries["b"]["ciphertext"]  # swap ciphertexts between names
    path.write_text(json.dumps(data))
    with pytest.raises(DecryptionError):
        await backend.get("agent-1", "a")
    token = bytearray(base64.b64decode(entries["b"]["ciphertext"]))
    token[25] ^= 0x80
    entries["b"]["ciphertext"] = base64.b64encode(bytes(token)).decode()
    path.write_text(json.dumps(data))
    with pytest.raises(DecryptionError):
        await backend.get("agent-1", "b")


async def test_file_backend_concurrent_writers(tmp_path: Path) -> None:
    cipher = SecretCipher(generate_key())
    backends = [EncryptedFileBackend(tmp_path / "s.json", cipher) for _ in range(3)]
    await asyncio.gather(*(b.set("ns", f"k{i}-{j}", "v") for j, b in enumerate(backends) for i in range(5)))
    assert len(await backends[0].list_names("ns")) == 15


class MemoryKeyring(_KeyringBase):
    """A real keyring backend (keyring's own interface) that keeps passwords in a dict."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if (service, username) not in self.store:
            raise PasswordDeleteError(username)
        del self.store[(service, username)]


async def test_keyring_backend() -> None:
    kr = MemoryKeyring()
    await _exercise(KeyringBackend(keyring_backend=kr))
    encrypted = KeyringBackend(keyring_backend=kr, cipher=SecretCipher(generate_key()))
    await _exercise(encrypted)
    await encrypted.set("agent-9", "k", PLAINTEXT)
    assert all(PLAINTEXT not in v for v in kr.store.values())


def _vault_env() -> dict[str, Any] | None:
    addr, token = os.environ.get("VAULT_ADDR"), os.environ.get("VAULT_TOKEN")
    if not addr or not token:
        return None
    try:
        import hvac

        if not hvac.Client(url=addr, token=token, timeout=3).is_authenticated():
            return None
    except Exception:
        return None
    return {"url": addr, "auth_method": "token", "token": token}


async def test_vault_backend() -> None:
    cfg = _vault_env()
    if cfg is None:
        pytest.skip("no reachable Vault (set VAULT_ADDR and VAULT_TOKEN with a KV v2 mount at secret/)")
    await _exercise(VaultBackend.from_config(cfg, prefix=f"portside-test-{uuid.uuid4().hex[:6]}"))


def test_backend_from_config(tmp_path: Path) -> None:
    cipher = SecretCipher(generate_key())
    b = backend_from_config({"backend_type": "encrypted_file"}, cipher=cipher, data_dir=tmp_path)
    assert isinstance(b, EncryptedFileBackend) and b.path == tmp_path / "secrets.json"
    own_key = generate_key().hex()
    b2 = backend_from_config({"backend_type": "encrypted_file", "file_path": "x.json",
                              "encryption_key": own_key}, cipher=cipher, data_dir=tmp_path)
    assert isinstance(b2, EncryptedFileBackend) and b2.path == tmp_path / "secrets" / "x.json"
    with pytest.raises(InvalidInput):  # confined to <data_dir>/secrets/
        backend_from_config({"backend_type": "encrypted_file", "file_path": str(tmp_path / "x.json")},
                            cipher=cipher, data_dir=tmp_path)
    v = backend_from_config({"backend_type": "vault", "vault_config": {"url": "http://127.0.0.1:1",
                                                                       "auth_method": "token", "token": "t"}},
                            cipher=cipher, data_dir=tmp_path)
    assert isinstance(v, VaultBackend) and v.backend_type == "vault"
    with pytest.raises(InvalidInput):
        backend_from_config({"backend_type": "vault"}, cipher=cipher, data_dir=tmp_path)
    with pytest.raises(InvalidInput):
        backend_from_config({"backend_type": "floppy"}, cipher=cipher, data_dir=tmp_path)
