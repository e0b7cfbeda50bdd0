"""Capability types, scopes and JSON Schema validation."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

from portside.server.errors import InvalidInput

#: Same pattern as holokai-neuron-sdk: ``owner/package[/name][.variant]`` (at least two segments).
CAPABILITY_TYPE_RE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)+$")
MAX_TYPE_LEN = 200
WORKER_ID_RE = re.compile(r"^[A-Za-z0-9_.:@+=~\-]{1,200}$")
MIN_TTL_MS, MAX_TTL_MS = 1_000, 3_600_000
MAX_CONCURRENCY = 10_000


#: A JSON Schema as the OpenAPI document describes ``inputSchema``/``outputSchema`` (a usable subset:
#: the service accepts any valid JSON Schema, ``check_schema``).
_SCHEMA_DOC: dict[str, Any] = {
    "type": "object",
    "description": "A JSON Schema (any valid one; this document lists the common keywords).",
    "properties": {
        "type": {"enum": ["object", "array", "string", "number", "integer", "boolean", "null"]},
        "properties": {"type": "object", "additionalProperties": {"type": "object", "maxProperties": 0}},
        "required": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "description": {"type": "string"},
    },
    "additionalProperties": False,
}
_SCOPE_DOC: dict[str, Any] = {
    "anyOf": [
        {"const": "any"},
        {
            "type": "object",
            "properties": {"onBehalfOf": {"type": "string", "minLength": 1, "maxLength": 200}},
            "required": ["onBehalfOf"],
            "additionalProperties": False,
        },
    ]
}
#: One capability of a register frame, as :func:`parse_capability` checks it (for the OpenAPI document).
CAPABILITY_DOC: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "maxLength": MAX_TYPE_LEN, "pattern": CAPABILITY_TYPE_RE.pattern},
        "scope": _SCOPE_DOC,
        "concurrency": {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY},
        "leaseTtlMs": {"type": "integer", "minimum": MIN_TTL_MS, "maximum": MAX_TTL_MS},
        "inputSchema": _SCHEMA_DOC,
        "outputSchema": _SCHEMA_DOC,
        "description": {"type": "string"},
    },
    "additionalProperties": False,
}
#: A register frame's ``capabilities`` (distinct types; checked by :func:`parse_capabilities`).
CAPABILITIES_DOC: dict[str, Any] = {"minItems": 1, "maxItems": 1000, "items": CAPABILITY_DOC}


def check_capability_type(value: Any) -> str:
    """Return ``value`` if it is a valid capability type, else raise 400 ``invalid_capability_type``."""
    if not isinstance(value, str) or len(value) > MAX_TYPE_LEN or not CAPABILITY_TYPE_RE.match(value):
        raise InvalidInput(
            "capability type must be namespaced: {owner}/{package}[/{name}][.{variant}]",
            code="invalid_capability_type",
            details={"capability": value if isinstance(value, str) else repr(value)[:200]},
        )
    return value


def check_worker_id(value: Any) -> str:
    """Worker (neuron) ids: 1-200 characters from ``[A-Za-z0-9_.:@+=~-]``."""
    if not isinstance(value, str) or not WORKER_ID_RE.match(value):
        raise InvalidInput(
            "worker id must be 1-200 characters of letters, digits and _.:@+=~-",
            code="invalid_worker_id",
            details={"worker_id": value if isinstance(value, str) else None},
        )
    return value


@dataclass(frozen=True)
class CapabilitySpec:
    """A capability offered by a worker: type, scope (None = any), concurrency, lease TTL, schemas."""

    type: str
    scope: str | None = None
    concurrency: int = 1
    lease_ttl_ms: int | None = None
    input_schema: Any = None
    output_schema: Any = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        """The neuron-protocol shape: ``{type, scope, concurrency[, leaseTtlMs]}``."""
        out: dict[str, Any] = {
            "type": self.type,
            "scope": "any" if self.scope is None else {"onBehalfOf": self.scope},
            "concurrency": self.concurrency,
        }
        if self.lease_ttl_ms is not None:
            out["leaseTtlMs"] = self.lease_ttl_ms
        return out

    def stored(self) -> dict[str, Any]:
        """The shape kept in ``workers.capabilities``."""
        out = self.wire()
        if self.input_schema is not None:
            out["inputSchema"] = self.input_schema
        if self.output_schema is not None:
            out["outputSchema"] = self.output_schema
        if self.description:
            out["description"] = self.description
        return out


def parse_scope(value: Any) -> str | None:
    """``"any"`` -> None; ``{"onBehalfOf": "u"}`` (or ``on_behalf_of``) -> ``"u"``."""
    if value is None or value == "any":
        return None
    if isinstance(value, dict):
        who = value.get("onBehalfOf", value.get("on_behalf_of"))
        extra = set(value) - {"onBehalfOf", "on_behalf_of"}
        if isinstance(who, str) and who and len(who) <= 200 and not extra:
            return who
    raise InvalidInput(
        'capability scope must be "any" or {"onBehalfOf": "<user id>"}',
        code="invalid_capability_scope",
        details={"scope": value if isinstance(value, (str, dict)) else repr(value)[:200]},
    )


def _integral(value: Any) -> Any:
    """``5.0`` is the JSON integer 5 (JSON Schema says so; some clients send it): as an ``int``."""
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2**53 else value


def parse_capability(raw: Any) -> CapabilitySpec:
    """Validate one capability object from a register frame (neuron or native)."""
    if not isinstance(raw, dict):
        raise InvalidInput("each capability must be an object", code="invalid_capability")
    ctype = check_capability_type(raw.get("type"))
    scope = parse_scope(raw.get("scope", "any"))
    concurrency = _integral(raw.get("concurrency", 1))
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InvalidInput(
            f"capability concurrency must be an integer in 1..{MAX_CONCURRENCY}",
            code="invalid_capability",
            details={"capability": ctype, "concurrency": concurrency if isinstance(concurrency, int) else None},
        )
    ttl = _integral(raw.get("leaseTtlMs", raw.get("lease_ttl_ms")))
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or not MIN_TTL_MS <= ttl <= MAX_TTL_MS):
        raise InvalidInput(
            f"leaseTtlMs must be an integer in {MIN_TTL_MS}..{MAX_TTL_MS}",
            code="invalid_capability",
            details={"capability": ctype},
        )
    input_schema = raw.get("inputSchema", raw.get("input_schema"))
    output_schema = raw.get("outputSchema", raw.get("output_schema"))
    for name, schema in (("inputSchema", input_schema), ("outputSchema", output_schema)):
        if schema is not None:
            check_schema(schema, name)
    description = raw.get("description") or ""
    return CapabilitySpec(
        type=ctype,
        scope=scope,
        concurrency=concurrency,
        lease_ttl_ms=ttl,
        input_schema=input_schema,
        output_schema=output_schema,
        description=str(description)[:2000],
    )


def parse_capabilities(raw: Any) -> list[CapabilitySpec]:
    """A non-empty list of capabilities with distinct types."""
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("capabilities must be a non-empty list", code="invalid_capability")
    if len(raw) > 1000:
        raise InvalidInput("at most 1000 capabilities per worker", code="invalid_capability")
    specs = [parse_capability(c) for c in raw]
    types = [s.type for s in specs]
    if len(set(types)) != len(types):
        dupes = sorted({t for t in types if types.count(t) > 1})
        raise InvalidInput(
            "duplicate capability types are not allowed in a single register frame",
            code="duplicate_capability",
            details={"duplicates": dupes},
        )
    return specs


def spec_from_stored(raw: dict[str, Any]) -> CapabilitySpec:
    """Rebuild a spec from ``workers.capabilities`` (trusted, already validated)."""
    scope = raw.get("scope", "any")
    return CapabilitySpec(
        type=raw["type"],
        scope=None if scope == "any" else scope["onBehalfOf"],
        concurrency=int(raw.get("concurrency", 1)),
        lease_ttl_ms=raw.get("leaseTtlMs"),
        input_schema=raw.get("inputSchema"),
        output_schema=raw.get("outputSchema"),
        description=raw.get("description", ""),
    )


# -- JSON Schema -------------------------------------------------------------------------------


def _is_empty(schema: Any) -> bool:
    return schema is None or (isinstance(schema, dict) and not schema) or schema is True


def check_schema(schema: Any, name: str = "schema") -> None:
    """Raise 400 ``invalid_schema`` unless ``schema`` is a valid JSON Schema."""
    if not isinstance(schema, (dict, bool)):
        raise InvalidInput(f"{name} must be a JSON Schema object", code="invalid_schema")
    try:
        _validator(json.dumps(schema, sort_keys=True))
    except jsonschema.SchemaError as exc:
        raise InvalidInput(
            f"{name} is not a valid JSON Schema: {exc.message}", code="invalid_schema", details={"schema": name}
        ) from exc


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: Validator = cls(schema)
    return validator


def schema_errors(schema: Any, value: Any, *, limit: int = 10) -> list[dict[str, Any]]:
    """The ways ``value`` violates ``schema`` (empty when valid or when there is no schema)."""
    if _is_empty(schema):
        return []
    validator = _validator(json.dumps(schema, sort_keys=True))
    out: list[dict[str, Any]] = []
    for err in validator.iter_errors(value):
        out.append({"path": "/" + "/".join(str(p) for p in err.absolute_path), "message": err.message[:500]})
        if len(out) >= limit:
            break
    return out
