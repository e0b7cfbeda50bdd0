"""Tool trust: static analysis of MCP tool definitions and source, and SchemaPin signing."""

from portside.server.reviews.analysis import analyze_source, analyze_tool, recommend, risk_level, risk_score
from portside.server.reviews.canonical import canonical_bytes, canonical_hash, canonical_json, schema_hash
from portside.server.reviews.models import AnalysisResult, Category, Finding, Severity
from portside.server.reviews.signing import (
    ALGORITHM,
    KeyInfo,
    KeyStore,
    Signature,
    build_well_known,
    key_fingerprint,
    load_public_key,
    sign_tool_with_key,
    verify_tool,
)

__all__ = [
    "ALGORITHM",
    "AnalysisResult",
    "Category",
    "Finding",
    "KeyInfo",
    "KeyStore",
    "Severity",
    "Signature",
    "analyze_source",
    "analyze_tool",
    "build_well_known",
    "canonical_bytes",
    "canonical_hash",
    "canonical_json",
    "key_fingerprint",
    "load_public_key",
    "recommend",
    "risk_level",
    "risk_score",
    "schema_hash",
    "sign_tool_with_key",
    "verify_tool",
]
