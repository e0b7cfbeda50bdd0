"""SchemaPin-compatible tool signing, key storage, rotation and revocation.

Wire format (identical to ``schemapin`` 1.3.0, see ``schemapin/core.py`` and ``schemapin/crypto.py``):

* payload: ``h = SHA-256(canonical_json(tool))`` (:mod:`portside.server.reviews.canonical`);
* signature: ``ECDSA-P256(SHA-256)`` over the 32 bytes ``h`` (``private_key.sign(h, ECDSA(SHA256()))``,
  so the curve operation sees ``SHA-256(h)``), DER-encoded (ASN.1 ``SEQUENCE{r, s}``), standard
  Base64 with padding;
* key fingerprint: ``"sha256:" + hex(SHA-256(DER SubjectPublicKeyInfo))``;
* public keys: PEM SubjectPublicKeyInfo.

The algorithm label is ``ECDSA-P256-SHA256`` rather than JOSE ``ES256`` because ES256 means raw
``r||s`` over a single hash, which SchemaPin does not use.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as UnsupportedAlgorithmError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from portside.server.clock import isoformat, utcnow
from portside.server.errors import Conflict, InvalidInput, NotFound
from portside.server.reviews.canonical import canonical_hash, schema_hash
from portside.server.secrets.crypto import SecretCipher

try:
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

ALGORITHM = "ECDSA-P256-SHA256"
SCHEMAPIN_SCHEMA_VERSION = "1.2"
RevocationReason = Literal["key_compromise", "superseded", "cessation_of_operation", "privilege_withdrawn"]
REVOCATION_REASONS: tuple[str, ...] = ("key_compromise", "superseded", "cessation_of_operation",
                                      "privilege_withdrawn")
#: ``signing_key_id`` values that explicitly ask for whatever key is active now.
ACTIVE_KEY_ALIASES: frozenset[str] = frozenset({"active", "default"})


@dataclass(frozen=True)
class Signature:
    """A detached SchemaPin signature of one tool definition."""

    signature_b64: str
    algorithm: str
    fingerprint: str
    signed_at: datetime
    schema_hash: str
    """``sha256:<hex>`` of the canonical tool JSON that was signed."""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form (``signed_at`` as ISO-8601 Z)."""
        return {
            "signature": self.signature_b64,
            "signature_algorithm": self.algorithm,
            "fingerprint": self.fingerprint,
            "signed_at": isoformat(self.signed_at),
            "schema_hash": self.schema_hash,
        }


# --------------------------------------------------------------------------- primitives


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """A new ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def public_key_pem(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """PEM SubjectPublicKeyInfo of a key (private keys give their public half)."""
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: str) -> ec.EllipticCurvePublicKey:
    """Parse a PEM public key; raises ``InvalidInput(code="invalid_public_key")`` unless P-256."""
    try:
        key = serialization.load_pem_public_key(pem.encode("utf-8"))
    except (ValueError, TypeError, UnsupportedAlgorithmError) as exc:
        raise InvalidInput(f"not a PEM public key: {exc}", code="invalid_public_key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidInput("public key is not ECDSA P-256", code="invalid_public_key")
    return key


def key_fingerprint(key: str | ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """SchemaPin fingerprint ``sha256:<hex>`` of the DER SubjectPublicKeyInfo."""
    if isinstance(key, str):
        key = load_public_key(key)
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def sign_tool_with_key(tool: Mapping[str, Any], private_key: ec.EllipticCurvePrivateKey) -> Signature:
    """Sign a tool definition with a given private key (SchemaPin format)."""
    if not isinstance(private_key.curve, ec.SECP256R1):
        raise InvalidInput("signing key is not ECDSA P-256", code="invalid_signing_key")
    digest = canonical_hash(tool)
    der = private_key.sign(digest, ec.ECDSA(hashes.SHA256()))
    return Signature(
        signature_b64=base64.b64encode(der).decode("ascii"),
        algorithm=ALGORITHM,
        fingerprint=key_fingerprint(private_key),
        signed_at=utcnow(),
        schema_hash="sha256:" + digest.hex(),
    )


def verify_tool(tool: Mapping[str, Any], signature_b64: str, public_key_pem: str) -> bool:
    """True iff ``signature_b64`` is a valid SchemaPin signature of ``tool`` by ``public_key_pem``.

    Never raises for bad input (malformed key, signature or tool all give ``False``).
    """
    try:
        key = load_public_key(public_key_pem)
        sig = base64.b64decode(signature_b64.encode("ascii"), validate=True)
        digest = canonical_hash(tool)
        key.verify(sig, digest, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, InvalidInput, binascii.Error, ValueError, UnicodeEncodeError, TypeError):
        return False
    return True


def build_well_known(
    public_key_pem: str,
    developer_name: str,
    *,
    contact: str | None = None,
    revoked_keys: list[str] | None = None,
    revocation_endpoint: str | None = None,
    schema_version: str = SCHEMAPIN_SCHEMA_VERSION,
) -> dict[str, Any]:
    """The ``/.well-known/schemapin.json`` document (``schemapin.utils.create_well_known_response``).

    Unlike schemapin, ``revoked_keys`` is always present (an empty list when nothing is revoked);
    the spec (section 8.4) says empty arrays mean "no keys revoked".
    """
    doc: dict[str, Any] = {
        "schema_version": schema_version,
        "developer_name": developer_name,
        "public_key_pem": public_key_pem,
        "revoked_keys": list(revoked_keys or []),
    }
    if contact:
        doc["contact"] = contact
    if revocation_endpoint:
        doc["revocation_endpoint"] = revocation_endpoint
    return doc


# --------------------------------------------------------------------------- key store


@dataclass
class KeyInfo:
    """Public facts about one signing key."""

    fingerprint: str
    public_key_pem: str
    created_at: str
    status: Literal["active", "retired", "revoked"]
    revoked_at: str | None = None
    revocation_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "public_key_pem": self.public_key_pem,
            "created_at": self.created_at,
            "status": self.status,
            "revoked_at": self.revoked_at,
            "revocation_reason": self.revocation_reason,
        }


@dataclass
class _State:
    active: str | None = None
    keys: list[dict[str, Any]] = field(default_factory=list)


class KeyStore:
    """Portside's signing keys in one JSON file; private keys AES-GCM encrypted at rest.

    The private key (PKCS#8 PEM) is encrypted with ``cipher.derive("signing-keys")``, an HKDF
    subkey of the server secret key, with the key fingerprint as associated data. A key is
    generated on first use; :meth:`rotate` makes a new active key and keeps old ones ("retired")
    for verification; :meth:`revoke` lists a fingerprint in ``revoked_keys``.
    """

    def __init__(
        self,
        path: Path | str,
        cipher: SecretCipher,
        *,
        developer_name: str = "Portside",
        contact: str | None = None,
    ) -> None:
        self.path = Path(path)
        self._cipher = cipher.derive("signing-keys")
        self.developer_name = developer_name
        self.contact = contact
        self._tlock = threading.Lock()
        self._cache: dict[str, ec.EllipticCurvePrivateKey] = {}

    # -- persistence
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._tlock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if fcntl is None:  # pragma: no cover
                yield
                return
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _load(self) -> _State:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _State()
        return _State(active=data.get("active"), keys=list(data.get("keys", [])))

    def _save(self, state: _State) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"version": 1, "active": state.active, "keys": state.keys}, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _new_entry(self) -> tuple[dict[str, Any], ec.EllipticCurvePrivateKey]:
        priv = generate_private_key()
        fp = key_fingerprint(priv)
        pem = priv.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        entry = {
            "fingerprint": fp,
            "public_key_pem": public_key_pem(priv),
            "private_key_enc": base64.b64encode(self._cipher.encrypt(pem, fp.encode())).decode("ascii"),
            "created_at": isoformat(utcnow()),
            "status": "active",
            "revoked_at": None,
            "revocation_reason": None,
        }
        self._cache[fp] = priv
        return entry, priv

    def _private(self, entry: Mapping[str, Any]) -> ec.EllipticCurvePrivateKey:
        fp = str(entry["fingerprint"])
        cached = self._cache.get(fp)
        if cached is not None:
            return cached
        pem = self._cipher.decrypt(base64.b64decode(entry["private_key_enc"]), fp.encode())
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):  # pragma: no cover - we only store EC keys
            raise InvalidInput("stored signing key is not EC", code="invalid_signing_key")
        self._cache[fp] = key
        return key

    def _ensure_active(self, state: _State) -> tuple[dict[str, Any], bool]:
        for entry in state.keys:
            if entry["fingerprint"] == state.active and entry["status"] == "active":
                return entry, False
        entry, _ = self._new_entry()
        state.keys.append(entry)
        state.active = entry["fingerprint"]
        return entry, True

    @staticmethod
    def _info(entry: Mapping[str, Any]) -> KeyInfo:
        return KeyInfo(
            fingerprint=entry["fingerprint"],
            public_key_pem=entry["public_key_pem"],
            created_at=entry["created_at"],
            status=entry["status"],
            revoked_at=entry.get("revoked_at"),
            revocation_reason=entry.get("revocation_reason"),
        )

    # -- public API
    def active_key(self) -> KeyInfo:
        """The active key, generated (and persisted) on first use."""
        with self._locked():
            state = self._load()
            entry, created = self._ensure_active(state)
            if created:
                self._save(state)
            return self._info(entry)

    def keys(self) -> list[KeyInfo]:
        """All keys, oldest first (active, retired and revoked)."""
        with self._locked():
            return [self._info(e) for e in self._load().keys]

    def get(self, fingerprint: str) -> KeyInfo:
        """One key by fingerprint; ``NotFound(code="signing_key_not_found")`` otherwise."""
        for info in self.keys():
            if info.fingerprint == fingerprint:
                return info
        raise NotFound(f"signing key {fingerprint} not found", code="signing_key_not_found")

    def revoked_fingerprints(self) -> list[str]:
        """Fingerprints of revoked keys (the well-known ``revoked_keys`` list)."""
        return [k.fingerprint for k in self.keys() if k.status == "revoked"]

    def rotate(self) -> KeyInfo:
        """Make a new active key; the previous one becomes ``retired`` (still verifies)."""
        with self._locked():
            state = self._load()
            for entry in state.keys:
                if entry["status"] == "active":
                    entry["status"] = "retired"
            entry, _ = self._new_entry()
            state.keys.append(entry)
            state.active = entry["fingerprint"]
            self._save(state)
            return self._info(entry)

    def revoke(self, fingerprint: str, reason: str = "key_compromise") -> KeyInfo:
        """Revoke a key. Revoking the active key rotates to a fresh one first."""
        if reason not in REVOCATION_REASONS:
            raise InvalidInput(f"unknown revocation reason {reason!r}", code="invalid_revocation_reason")
        with self._locked():
            state = self._load()
            target = next((e for e in state.keys if e["fingerprint"] == fingerprint), None)
            if target is None:
                raise NotFound(f"signing key {fingerprint} not found", code="signing_key_not_found")
            if target["status"] == "revoked":
                raise Conflict(f"signing key {fingerprint} is already revoked", code="signing_key_revoked")
            target["status"] = "revoked"
            target["revoked_at"] = isoformat(utcnow())
            target["revocation_reason"] = reason
            self._cache.pop(fingerprint, None)
            if state.active == fingerprint:
                state.active = None
                self._ensure_active(state)
            self._save(state)
            return self._info(target)

    def check_signing_key(self, signing_key_id: str | None) -> None:
        """404/409 unless ``signing_key_id`` (when given) names the active key (see :meth:`sign_tool`)."""
        if signing_key_id is None or signing_key_id in ACTIVE_KEY_ALIASES:
            return
        with self._locked():
            state = self._load()
            entry, created = self._ensure_active(state)
            if created:
                self._save(state)
            _check_requested(state.keys, signing_key_id, entry["fingerprint"])

    def sign_tool(self, tool: Mapping[str, Any], signing_key_id: str | None = None) -> Signature:
        """Sign a tool definition with the active key.

        ``signing_key_id`` (optional) must name that key: its fingerprint, or one of
        :data:`ACTIVE_KEY_ALIASES`. Another of our keys is a 409 (``signing_key_revoked`` /
        ``signing_key_not_active``), anything else a 404 ``signing_key_not_found``: a request for a
        key is never silently served with a different one.
        """
        with self._locked():
            state = self._load()
            entry, created = self._ensure_active(state)
            if created:
                self._save(state)
            if signing_key_id is not None and signing_key_id not in ACTIVE_KEY_ALIASES:
                _check_requested(state.keys, signing_key_id, entry["fingerprint"])
            key = self._private(entry)
        return sign_tool_with_key(tool, key)

    def verify_tool(self, tool: Mapping[str, Any], signature_b64: str, fingerprint: str | None = None) -> bool:
        """Verify against one of our non-revoked keys (all of them when no fingerprint given)."""
        for info in self.keys():
            if info.status == "revoked" or (fingerprint is not None and info.fingerprint != fingerprint):
                continue
            if verify_tool(tool, signature_b64, info.public_key_pem):
                return True
        return False

    def well_known(self, *, revocation_endpoint: str | None = None) -> dict[str, Any]:
        """``/.well-known/schemapin.json`` for the active key with our revoked fingerprints."""
        active = self.active_key()
        return build_well_known(
            active.public_key_pem,
            self.developer_name,
            contact=self.contact,
            revoked_keys=self.revoked_fingerprints(),
            revocation_endpoint=revocation_endpoint,
        )

    def revocation_document(self, domain: str) -> dict[str, Any]:
        """Standalone SchemaPin 1.2 revocation document (``schemapin.revocation.RevocationDocument``)."""
        revoked = [k for k in self.keys() if k.status == "revoked"]
        updated = max((k.revoked_at or "" for k in revoked), default="") or isoformat(utcnow())
        return {
            "schemapin_version": SCHEMAPIN_SCHEMA_VERSION,
            "domain": domain,
            "updated_at": updated,
            "revoked_keys": [
                {"fingerprint": k.fingerprint, "revoked_at": k.revoked_at, "reason": k.revocation_reason}
                for k in revoked
            ],
        }


def _check_requested(keys: list[dict[str, Any]], requested: str, active: str) -> None:
    if requested == active:
        return
    known = next((e for e in keys if e["fingerprint"] == requested), None)
    if known is None:
        raise NotFound(
            f"signing key {requested!r} not found; use the active key's fingerprint (GET /v1/signing-keys) or 'active'",
            code="signing_key_not_found",
            details={"signing_key_id": requested},
        )
    if known["status"] == "revoked":
        raise Conflict(f"signing key {requested} is revoked", code="signing_key_revoked")
    raise Conflict(
        f"signing key {requested} is {known['status']}; only the active key signs",
        code="signing_key_not_active",
        details={"status": known["status"], "active": active},
    )


def tool_schema_hash(tool: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a tool's canonical JSON (re-exported for callers of this module)."""
    return schema_hash(tool)

