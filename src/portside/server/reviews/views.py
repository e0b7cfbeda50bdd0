"""JSON shapes of review sessions, analyses and signed tools.

Each shape is a superset of the Symbiont SDK model of the same name (``ReviewSession``,
``ReviewSessionResponse``, ``AnalysisResults``, ``SigningResponse``, ``SignedTool``), so the native API
and the Symbiont door serve the same bodies; the SDK ignores the extra keys.
"""

from __future__ import annotations

from typing import Any

from portside.server.clock import isoformat
from portside.server.reviews.canonical import schema_hash
from portside.server.reviews.service import ANALYZER_ID, SignedTool, finding_wire
from portside.server.reviews.tables import ToolAnalysisRow, ToolReviewRow

_PHASE = {
    "submitted": "queued",
    "pending_analysis": "queued",
    "analyzing": "automated_analysis",
    "pending_review": "awaiting_human_review",
    "under_review": "human_review",
    "approved": "decided",
    "rejected": "decided",
    "signed": "signed",
}


def _ts(value: Any) -> str | None:
    return isoformat(value) if value is not None else None


def session(row: ToolReviewRow) -> dict[str, Any]:
    """``ReviewSession`` plus risk, decision and signature facts."""
    human = row.reviewer_id if row.reviewer_id and row.reviewer_id != ANALYZER_ID else None
    return {
        "review_id": row.id,
        "tool": row.tool,
        "status": row.status,
        "state": {
            "type": _PHASE.get(row.status, row.status),
            "analysis_id": row.analysis_id,
            "analysis_completed_at": _ts(row.analysis_completed_at),
            "critical_findings": list(row.critical_findings or []),
            "human_reviewer_id": human,
            "review_started_at": _ts(row.review_started_at),
        },
        "submitted_by": row.submitted_by,
        "submitted_at": isoformat(row.created_at),
        "estimated_completion": _ts(row.estimated_completion),
        "priority": row.priority,
        "has_source": row.source is not None,
        "risk_score": row.risk_score,
        "recommendation": row.recommendation,
        "decision": row.decision,
        "decision_reason": row.decision_reason,
        "reviewer_id": row.reviewer_id,
        "decided_at": _ts(row.decided_at),
        "signed_at": _ts(row.signed_at),
        "key_fingerprint": row.key_fingerprint,
        "error": row.error,
    }


def submitted(row: ToolReviewRow) -> dict[str, Any]:
    """``ReviewSessionResponse``."""
    return {
        "review_id": row.id,
        "status": row.status,
        "submitted_at": isoformat(row.created_at),
        "estimated_completion": _ts(row.estimated_completion),
    }


def analysis(row: ToolAnalysisRow) -> dict[str, Any]:
    """``AnalysisResults``; each finding also has ``rule``, ``location``, ``line`` and ``evidence``."""
    return {
        "analysis_id": row.id,
        "review_id": row.review_id,
        "risk_score": row.risk_score,
        "risk_level": row.risk_level,
        "recommendation": row.recommendation,
        "findings": [finding_wire(f) for f in row.findings],
        "recommendations": list(row.recommendations),
        "scanners": list(row.scanners),
        "schema_hash": row.schema_hash,
        "completed_at": isoformat(row.completed_at),
    }


def signing(signed: SignedTool) -> dict[str, Any]:
    """``SigningResponse`` plus the key fingerprint and review id."""
    row = signed.review
    return {
        "signature": row.signature,
        "signed_at": _ts(row.signed_at),
        "signer_id": row.signer_id,
        "signature_algorithm": row.signature_algorithm,
        "key_fingerprint": row.key_fingerprint,
        "review_id": row.id,
    }


def signed_tool(signed: SignedTool) -> dict[str, Any]:
    """``SignedTool``: the tool exactly as signed, plus what an offline verifier needs.

    Verify with ``verify_tool(body["tool"], body["signature"], body["public_key_pem"])`` — and pin
    the key (``key_fingerprint``) against ``/.well-known/schemapin.json``.
    """
    row = signed.review
    return {
        **signing(signed),
        "tool": row.tool,
        "schema_hash": schema_hash(row.tool),
        "public_key_pem": signed.key.public_key_pem if signed.key else None,
        "key_status": signed.key.status if signed.key else "unknown",
    }
