"""Offline verification of a signed-tool document (what ``GET .../signed/{id}`` returns)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portside.server.errors import InvalidInput
from portside.server.reviews.signing import key_fingerprint, verify_tool


@dataclass(frozen=True)
class Verification:
    """Outcome of :func:`verify_signed_document`."""

    valid: bool
    reason: str
    fingerprint: str | None = None
    pinned: bool = False
    """True when the key came from the caller (a PEM, a well-known document or a fingerprint pin)."""


def verify_signed_document(
    doc: Mapping[str, Any],
    *,
    public_key_pem: str | None = None,
    well_known: Mapping[str, Any] | None = None,
    fingerprint: str | None = None,
) -> Verification:
    """Check the SchemaPin signature of ``doc["tool"]``.

    The key is, in order: ``public_key_pem``; the well-known document's key (its ``revoked_keys`` are
    honoured); else the document's own ``public_key_pem`` (integrity only, unless ``fingerprint`` pins it).
    """
    tool = doc.get("tool")
    signature = doc.get("signature")
    if not isinstance(tool, Mapping) or not isinstance(signature, str):
        return Verification(False, "document has no 'tool' object or no 'signature' string")
    pinned = True
    revoked: list[str] = []
    pem = public_key_pem
    if pem is None and well_known is not None:
        pem = well_known.get("public_key_pem")
        revoked = [str(x) for x in well_known.get("revoked_keys") or []]
    if pem is None:
        pem = doc.get("public_key_pem")
        pinned = fingerprint is not None
    if not isinstance(pem, str) or not pem.strip():
        return Verification(False, "no public key: pass one, or a well-known document")
    try:
        fp = key_fingerprint(pem)
    except InvalidInput as exc:
        return Verification(False, f"unusable public key: {exc.message}")
    if fingerprint is not None and fp != fingerprint:
        return Verification(False, f"key fingerprint {fp} does not match the pinned {fingerprint}", fp, pinned)
    if fp in revoked:
        return Verification(False, f"key {fp} is revoked", fp, pinned)
    declared = doc.get("key_fingerprint")
    if isinstance(declared, str) and declared and declared != fp:
        return Verification(False, f"document was signed by {declared}, not by key {fp}", fp, pinned)
    if not verify_tool(tool, signature, pem):
        return Verification(False, "signature does not match the tool (tampered, or signed by another key)", fp, pinned)
    return Verification(True, "signature valid", fp, pinned)
