"""AES-256-GCM encryption at rest with a versioned envelope.

Master key
    ``PORTSIDE_SECRET_KEY`` (32 bytes, as 64 hex chars or base64/base64url, padding optional), or,
    when unset, a key file ``<data_dir>/secret.key`` (base64, mode 0600) generated on first use.

Envelope (version 1)::

    0x01 | key_id (4 bytes) | nonce (12 bytes) | ciphertext || GCM tag (16 bytes)

``key_id`` is the first 4 bytes of ``SHA-256("portside-key-id:" || key)``; it lets decryption pick
the right key after a rotation and report "wrong key" cleanly instead of "tampered". The GCM
associated data is ``header (5 bytes) || aad``, so the version, the key id and the caller's
context (e.g. ``namespace/name``) are all authenticated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from portside.server.errors import DomainError, InvalidInput

log = logging.getLogger(__name__)

ENV_VAR = "PORTSIDE_SECRET_KEY"
KEY_FILE_NAME = "secret.key"
KEY_SIZE = 32
ENVELOPE_VERSION = 1
_NONCE_SIZE = 12
_KID_SIZE = 4
_HEADER_SIZE = 1 + _KID_SIZE
_TAG_SIZE = 16
_HEX_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class DecryptionError(DomainError):
    """Stored ciphertext could not be decrypted (wrong key, tampering, corruption)."""

    code = "decryption_failed"
    status = 500


def parse_key(value: str) -> bytes:
    """Decode a 32-byte key given as 64 hex chars or base64 / base64url (padding optional)."""
    text = value.strip()
    if _HEX_RE.match(text):
        return bytes.fromhex(text)
    padded = (text + "=" * (-len(text) % 4)).replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) == KEY_SIZE:
        return raw
    raise InvalidInput(
        f"{ENV_VAR} must be 32 bytes encoded as 64 hex characters or base64",
        code="invalid_secret_key",
    )


def generate_key() -> bytes:
    """A fresh random 32-byte key."""
    return os.urandom(KEY_SIZE)


def encode_key(key: bytes) -> str:
    """Base64 text of a key, as written to the key file and accepted by :func:`parse_key`."""
    return base64.b64encode(key).decode("ascii")


def load_or_create_key_file(path: Path) -> bytes:
    """Read the key file, or create it (mode 0600, exclusive create) when it does not exist."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = generate_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won the race: read its key below
        else:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(encode_key(key) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            log.info("generated new secret key file %s", path)
            return key
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("secret key file %s has loose permissions %o; expected 0600", path, mode)
    return parse_key(path.read_text(encoding="ascii"))


def resolve_master_key(secret_key: str | None = None, data_dir: Path | None = None) -> bytes:
    """The master key: explicit value, else ``$PORTSIDE_SECRET_KEY``, else ``<data_dir>/secret.key``."""
    value = secret_key if secret_key else os.environ.get(ENV_VAR)
    if value:
        return parse_key(value)
    if data_dir is None:
        raise InvalidInput(f"no {ENV_VAR} set and no data dir for a key file", code="invalid_secret_key")
    return load_or_create_key_file(Path(data_dir) / KEY_FILE_NAME)


def key_id(key: bytes) -> bytes:
    """4-byte identifier of a key (not secret-revealing: a truncated hash)."""
    return hashlib.sha256(b"portside-key-id:" + key).digest()[:_KID_SIZE]


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte subkey for one purpose (HKDF-SHA256, info ``portside/<purpose>``)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=f"portside/{purpose}".encode())
    return hkdf.derive(master)


@dataclass(frozen=True)
class _Key:
    kid: bytes
    aead: AESGCM


class SecretCipher:
    """AES-256-GCM with a versioned envelope; old keys may be kept for decryption only."""

    def __init__(self, key: bytes, *, previous_keys: Iterable[bytes] = ()) -> None:
        keys = [key, *previous_keys]
        for k in keys:
            if len(k) != KEY_SIZE:
                raise InvalidInput("secret keys must be 32 bytes", code="invalid_secret_key")
        self._master = key
        self._primary = _Key(key_id(key), AESGCM(key))
        self._by_kid = {key_id(k): _Key(key_id(k), AESGCM(k)) for k in reversed(keys)}
        self._by_kid[self._primary.kid] = self._primary

    @classmethod
    def from_settings(cls, secret_key: str | None, data_dir: Path | None) -> SecretCipher:
        """Build from ``Settings.secret_key`` / ``$PORTSIDE_SECRET_KEY`` / the data-dir key file."""
        return cls(resolve_master_key(secret_key, data_dir))

    @property
    def key_id(self) -> str:
        """Hex id of the primary key (safe to log)."""
        return self._primary.kid.hex()

    def derive(self, purpose: str) -> SecretCipher:
        """A cipher keyed by an HKDF subkey of the primary key, for one purpose."""
        return SecretCipher(derive_key(self._master, purpose))

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt and authenticate ``plaintext`` bound to ``aad``; returns the envelope bytes."""
        header = bytes([ENVELOPE_VERSION]) + self._primary.kid
        nonce = os.urandom(_NONCE_SIZE)
        return header + nonce + self._primary.aead.encrypt(nonce, plaintext, header + aad)

    def decrypt(self, envelope: bytes, aad: bytes = b"") -> bytes:
        """Decrypt an envelope; raises :class:`DecryptionError` on any failure."""
        if len(envelope) < _HEADER_SIZE + _NONCE_SIZE + _TAG_SIZE:
            raise DecryptionError("ciphertext is truncated", code="ciphertext_malformed")
        version = envelope[0]
        if version != ENVELOPE_VERSION:
            raise DecryptionError(f"unknown envelope version {version}", code="ciphertext_malformed")
        header, kid = envelope[:_HEADER_SIZE], envelope[1:_HEADER_SIZE]
        key = self._by_kid.get(kid)
        if key is None:
            raise DecryptionError(
                f"data was encrypted with a different key (key id {kid.hex()}, current {self.key_id})",
                code="wrong_secret_key",
            )
        nonce = envelope[_HEADER_SIZE : _HEADER_SIZE + _NONCE_SIZE]
        try:
            return key.aead.decrypt(nonce, envelope[_HEADER_SIZE + _NONCE_SIZE :], header + aad)
        except InvalidTag:
            raise DecryptionError(
                "authentication failed: ciphertext or its context was tampered with",
                code="decryption_failed",
            ) from None

    def encrypt_text(self, plaintext: str, aad: str = "") -> str:
        """Encrypt UTF-8 text; returns base64 of the envelope."""
        return base64.b64encode(self.encrypt(plaintext.encode("utf-8"), aad.encode("utf-8"))).decode("ascii")

    def decrypt_text(self, token: str, aad: str = "") -> str:
        """Inverse of :meth:`encrypt_text`."""
        try:
            raw = base64.b64decode(token.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise DecryptionError("ciphertext is not valid base64", code="ciphertext_malformed") from None
        return self.decrypt(raw, aad.encode("utf-8")).decode("utf-8")

    def __repr__(self) -> str:
        return f"SecretCipher(key_id={self.key_id!r})"
