"""Tool analysis entry point: run every scanner, score the findings, recommend a verdict.

Risk score (0-100, the ``risk_score`` of ``symbiont.AnalysisResults``)::

    p_i   = BASE[severity_i] * confidence_i / 100        BASE = low 20, medium 45, high 80, critical 100
    raw   = 100 * (1 - prod_i (1 - p_i))                 (noisy-OR: independent pieces of evidence)
    score = round(min(raw, CAP[max severity]))           CAP  = low 25, medium 60, high 90, critical 100

Verdict: ``reject`` if score >= 70 or any critical finding with confidence >= 0.8;
``needs_review`` if score >= 30 or any high finding; otherwise ``approve``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from portside.server.clock import utcnow
from portside.server.errors import InvalidInput
from portside.server.ids import new_id
from portside.server.reviews.canonical import schema_hash
from portside.server.reviews.code_scan import scan_source
from portside.server.reviews.models import AnalysisResult, Finding, Recommendation, Severity
from portside.server.reviews.poisoning import scan_name, scan_provider, scan_schema, scan_tool_text

SEVERITY_BASE: dict[Severity, float] = {Severity.LOW: 20, Severity.MEDIUM: 45, Severity.HIGH: 80,
                                        Severity.CRITICAL: 100}
SEVERITY_CAP: dict[Severity, float] = {Severity.LOW: 25, Severity.MEDIUM: 60, Severity.HIGH: 90,
                                       Severity.CRITICAL: 100}
REJECT_AT = 70
REVIEW_AT = 30


def risk_score(findings: Iterable[Finding]) -> int:
    """0-100 risk from findings (see module docstring)."""
    items = list(findings)
    if not items:
        return 0
    keep = 1.0
    for f in items:
        keep *= 1.0 - SEVERITY_BASE[f.severity] * f.confidence / 100.0
    worst = max(items, key=lambda f: f.severity.rank).severity
    return round(min(100.0 * (1.0 - keep), SEVERITY_CAP[worst]))


def risk_level(score: int) -> Severity:
    """Bucket a score: <30 low, <50 medium, <70 high, else critical."""
    if score >= REJECT_AT:
        return Severity.CRITICAL
    if score >= 50:
        return Severity.HIGH
    if score >= REVIEW_AT:
        return Severity.MEDIUM
    return Severity.LOW


def recommend(score: int, findings: Iterable[Finding]) -> Recommendation:
    """approve / needs_review / reject (see module docstring)."""
    items = list(findings)
    if score >= REJECT_AT or any(f.severity is Severity.CRITICAL and f.confidence >= 0.8 for f in items):
        return "reject"
    if score >= REVIEW_AT or any(f.severity.rank >= Severity.HIGH.rank for f in items):
        return "needs_review"
    return "approve"


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: dict[str, Finding] = {}
    for f in findings:
        seen.setdefault(f.finding_id, f)
    return sorted(seen.values(), key=lambda f: (-f.severity.rank, -f.confidence, f.location))


def analyze_tool(
    tool: Mapping[str, Any],
    source: str | None = None,
    *,
    provider: Mapping[str, Any] | None = None,
    use_bandit: bool = True,
) -> AnalysisResult:
    """Analyse an MCP tool definition and, optionally, its Python source.

    ``tool`` has ``name``, ``description`` and an input schema under ``inputSchema`` (MCP),
    ``schema`` (Symbiont SDK), ``input_schema`` or ``parameters``; ``provider`` (argument or
    ``tool["provider"]``) may carry ``name``, ``public_key_pem``, ``public_key_url``, ``domain``.
    """
    if not isinstance(tool, Mapping):
        raise InvalidInput("tool must be a JSON object", code="invalid_tool")
    prov = provider if provider is not None else tool.get("provider")
    findings: list[Finding] = []
    findings += scan_name(tool)
    findings += scan_tool_text(tool)
    findings += scan_schema(tool)
    findings += scan_provider(prov if isinstance(prov, Mapping) else None)
    scanners = ["poisoning", "schema", "name", "provider"]
    if source is not None:
        code_findings, ran = scan_source(source, use_bandit=use_bandit)
        findings += code_findings
        scanners += ran
    findings = _dedupe(findings)
    score = risk_score(findings)
    recs = list(dict.fromkeys(f.recommendation for f in findings if f.recommendation))
    return AnalysisResult(
        analysis_id=new_id("ana"),
        tool_name=str(tool.get("name") or ""),
        schema_hash=schema_hash(tool),
        risk_score=score,
        risk_level=risk_level(score),
        recommendation=recommend(score, findings),
        findings=findings,
        recommendations=recs,
        completed_at=utcnow(),
        scanners=scanners,
    )


def analyze_source(source: str, *, use_bandit: bool = True) -> AnalysisResult:
    """Analyse Python source on its own (no tool definition)."""
    findings, scanners = scan_source(source, use_bandit=use_bandit)
    findings = _dedupe(findings)
    score = risk_score(findings)
    return AnalysisResult(
        analysis_id=new_id("ana"),
        tool_name="",
        schema_hash="",
        risk_score=score,
        risk_level=risk_level(score),
        recommendation=recommend(score, findings),
        findings=findings,
        recommendations=list(dict.fromkeys(f.recommendation for f in findings if f.recommendation)),
        completed_at=utcnow(),
        scanners=scanners,
    )
