"""Checks a webhook request must pass: HMAC signature, a fixed Authorization header, or a JWT.

Signature scheme (GitHub's): ``X-Signature-256: sha256=<hex>`` where ``<hex>`` is
HMAC-SHA256(secret, raw request body). ``X-Hub-Signature-256`` is accepted too, so a GitHub
webhook can point at Portside directly.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

from portside.server.errors import DomainError, Unauthenticated

SIGNATURE_HEADERS = ("x-signature-256", "x-hub-signature-256")
_KEY_CACHE: dict[str, tuple[float, bytes]] = {}


def sign(secret: str, body: bytes) -> str:
    """The header value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check_signature(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """401 ``missing_signature`` / ``invalid_signature`` unless the body is signed with ``secret``."""
    given = next((headers[h] for h in SIGNATURE_HEADERS if headers.get(h)), None)
    if not given:
        raise Unauthenticated(
            "this endpoint needs an HMAC signature: X-Signature-256: sha256=<hex of HMAC-SHA256(secret, body)>",
            code="missing_signature",
        )
    value = given.strip()
    if value.lower().startswith("sha256="):
        value = value[7:]
    expected = sign(secret, body)[7:]
    if not hmac.compare_digest(value.lower().encode("ascii", "replace"), expected.encode("ascii")):
        raise Unauthenticated("the request signature does not match its body", code="invalid_signature")


def check_auth_header(expected: str, headers: Mapping[str, str]) -> None:
    """401 ``unauthorized`` unless ``Authorization`` is exactly ``expected``."""
    given = headers.get("authorization", "")
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise Unauthenticated("missing or wrong Authorization header for this endpoint", code="unauthorized")


def _public_key(path: str) -> bytes:
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        raise DomainError(
            "the endpoint's JWT public key cannot be read", code="jwt_key_unavailable", status=503
        ) from None
    hit = _KEY_CACHE.get(path)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    with open(path, "rb") as fh:
        data = fh.read(64 * 1024)
    _KEY_CACHE[path] = (mtime, data)
    return data


def check_jwt(public_key_path: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """Verify ``Authorization: Bearer <jwt>`` with the PEM public key at ``public_key_path`` (asymmetric algorithms)."""
    import jwt

    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("this endpoint needs 'Authorization: Bearer <JWT>'", code="missing_token")
    key = _public_key(public_key_path)
    try:
        claims: dict[str, Any] = jwt.decode(
            token.strip(),
            key,
            algorithms=["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"],
            options={"verify_aud": False},
        )
    except jwt.InvalidKeyError:
        raise DomainError(
            "the endpoint's JWT public key is not a usable key", code="jwt_key_invalid", status=503
        ) from None
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid token: {exc}", code="invalid_token") from None
    return claims
