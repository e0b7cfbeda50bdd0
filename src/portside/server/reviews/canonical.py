"""SchemaPin canonical JSON and hashing.

Matches ``schemapin.core.SchemaPinCore`` (schemapin 1.3.0) byte for byte::

    json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")

The only difference is that NaN and Infinity are refused (``allow_nan=False``): they are not
JSON, and schemapin would emit the non-standard tokens ``NaN``/``Infinity`` for them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from portside.server.errors import InvalidInput


def canonical_json(obj: Mapping[str, Any]) -> str:
    """The canonical string of a JSON object: keys sorted at every level, no whitespace."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"tool is not canonicalizable JSON: {exc}", code="invalid_tool") from exc


def canonical_bytes(obj: Mapping[str, Any]) -> bytes:
    """UTF-8 bytes of :func:`canonical_json`."""
    return canonical_json(obj).encode("utf-8")


def canonical_hash(obj: Mapping[str, Any]) -> bytes:
    """SHA-256 digest of the canonical bytes (what SchemaPin signs)."""
    return hashlib.sha256(canonical_bytes(obj)).digest()


def schema_hash(obj: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical bytes; a stable content id for a tool definition."""
    return "sha256:" + canonical_hash(obj).hex()
