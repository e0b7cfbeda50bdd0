"""Tool review sessions: submit, analyse at once, decide (humans with the ``review`` scope), sign.

Statuses follow ``symbiont.ReviewStatus``::

    submitted -> analyzing -> pending_review -> (under_review) -> approved | rejected -> signed

The automated analysis (:func:`portside.server.reviews.analyze_tool`, plus the tool's Python source when
given) starts as soon as a session is created, in a background task. A ``reject`` verdict closes the
session as ``rejected`` by the analyzer (``auto_reject``); otherwise it waits in ``pending_review`` for
a human. Approved tools are signed by the server's SchemaPin :class:`KeyStore` over the canonical JSON
of the stored tool object, exactly as the signed-tool response returns it.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portside.server.auth import Principal
from portside.server.clock import utcnow
from portside.server.errors import Conflict, InvalidInput, NotFound
from portside.server.ids import new_id
from portside.server.reviews.analysis import analyze_tool
from portside.server.reviews.canonical import canonical_json
from portside.server.reviews.models import AnalysisResult, Severity
from portside.server.reviews.signing import KeyInfo, KeyStore
from portside.server.reviews.tables import ToolAnalysisRow, ToolReviewRow
from portside.server.store import Database

log = logging.getLogger("portside.reviews")

SUBMITTED, PENDING_ANALYSIS, ANALYZING = "submitted", "pending_analysis", "analyzing"
PENDING_REVIEW, UNDER_REVIEW = "pending_review", "under_review"
APPROVED, REJECTED, SIGNED = "approved", "rejected", "signed"
STATUSES: tuple[str, ...] = (
    SUBMITTED,
    PENDING_ANALYSIS,
    ANALYZING,
    PENDING_REVIEW,
    UNDER_REVIEW,
    APPROVED,
    REJECTED,
    SIGNED,
)
TERMINAL = frozenset({APPROVED, REJECTED, SIGNED})
ANALYSING = frozenset({SUBMITTED, PENDING_ANALYSIS, ANALYZING})
DECIDABLE = frozenset({PENDING_REVIEW, UNDER_REVIEW})
ANALYZER_ID = "portside-analyzer"
PRIORITIES = frozenset({"low", "normal", "high", "critical", "urgent"})
MAX_TOOL_BYTES = 256 * 1024
MAX_SOURCE_BYTES = 1024 * 1024
_SCHEMA_KEYS = ("schema", "tool_schema", "inputSchema", "input_schema", "parameters")
UNKNOWN_PROVIDER: dict[str, Any] = {"name": "unknown", "public_key_url": None}
_DECISIONS = {"approve": APPROVED, "approved": APPROVED, "reject": REJECTED, "rejected": REJECTED}


#: What ``reviews.service.normalize_tool`` accepts (its own code, ``invalid_tool``), for the document.
TOOL_DOC: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
        "description": {"type": "string"},
        "provider": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "public_key_url": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
        },
        **{
            key: {
                "type": "object",
                "properties": {
                    "properties": {"type": "object"},
                    "required": {"type": "array", "items": {"type": "string"}},
                },
            }
            for key in ("schema", "tool_schema", "inputSchema", "parameters")  # (and the alias input_schema)
        },
    },
}
DECISION_DOC: dict[str, Any] = {"enum": ["approve", "approved", "reject", "rejected"]}


def normalize_tool(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The stored (and signed) form of a submitted tool: the SDK ``Tool`` shape with ``schema``.

    Accepts the input schema under ``schema``, ``tool_schema`` (what the SDK sends), ``inputSchema``
    (MCP), ``input_schema`` or ``parameters``. Other top-level keys are kept, so what is analysed is
    what gets signed. ``schema`` gets ``type`` / ``properties`` / ``required`` defaults; ``provider``
    defaults to ``{"name": "unknown", "public_key_url": null}``.
    """
    if not isinstance(raw, Mapping):
        raise InvalidInput("tool must be a JSON object", code="invalid_tool")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput("tool.name must be a non-empty string of at most 200 characters", code="invalid_tool")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise InvalidInput("tool.description must be a string", code="invalid_tool")
    schema: Any = None
    for key in _SCHEMA_KEYS:
        if raw.get(key) is not None:
            schema = raw[key]
            break
    if schema is None:
        schema = {}
    if not isinstance(schema, Mapping):
        raise InvalidInput("tool.schema must be a JSON object", code="invalid_tool")
    schema = dict(schema)
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    schema.setdefault("required", [])
    if not isinstance(schema["properties"], Mapping) or not isinstance(schema["required"], list):
        raise InvalidInput("tool.schema needs an object 'properties' and a list 'required'", code="invalid_tool")
    provider = raw.get("provider")
    if provider is None:
        provider = dict(UNKNOWN_PROVIDER)
    if not isinstance(provider, Mapping) or not isinstance(provider.get("name"), str):
        raise InvalidInput("tool.provider must be an object with a 'name'", code="invalid_tool")
    out = {k: v for k, v in raw.items() if k not in _SCHEMA_KEYS}
    out.update({"name": name, "description": description, "schema": schema, "provider": dict(provider)})
    if len(canonical_json(out).encode("utf-8")) > MAX_TOOL_BYTES:
        raise InvalidInput(f"tool definition is larger than {MAX_TOOL_BYTES} bytes", code="invalid_tool")
    return out


def _visible(caller: Principal, row: ToolReviewRow) -> bool:
    return caller.has("review") or caller.owner == row.owner


@dataclass(frozen=True)
class SignedTool:
    """A signed review session and the public facts of the key that signed it."""

    review: ToolReviewRow
    key: KeyInfo | None


async def _awaiting_review(s: AsyncSession, review_id: str) -> ToolReviewRow:
    """The session, read in the caller's transaction, if it still awaits a human (404 / 409 otherwise)."""
    row = await s.get(ToolReviewRow, review_id)
    if row is None:
        raise NotFound(f"review session {review_id} not found", code="review_not_found")
    if row.status not in DECIDABLE:
        raise Conflict(
            f"review {review_id} is {row.status}; only sessions awaiting review can be claimed or decided",
            code="review_not_pending",
            details={"status": row.status},
        )
    return row


class ReviewService:
    """Review sessions, their automated analyses, human decisions and signatures."""

    def __init__(
        self,
        db: Database,
        keystore: KeyStore,
        *,
        signer_id: str = "portside",
        auto_reject: bool = True,
        use_bandit: bool = True,
        concurrency: int = 2,
    ) -> None:
        self.db = db
        self.keystore = keystore
        self.signer_id = signer_id
        self.auto_reject = auto_reject
        self.use_bandit = use_bandit
        self._sem = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Re-queue sessions whose analysis had not finished (e.g. after a restart)."""
        async with self.db.session() as s:
            ids = (await s.execute(select(ToolReviewRow.id).where(ToolReviewRow.status.in_(ANALYSING)))).scalars()
            for review_id in list(ids):
                self._spawn(review_id)

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, review_id: str) -> None:
        if self._stopping:
            return
        task = asyncio.get_running_loop().create_task(self._analyse(review_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ submit and read

    async def submit(
        self,
        caller: Principal,
        tool: Mapping[str, Any],
        *,
        source: str | None = None,
        submitted_by: str | None = None,
        priority: str = "normal",
    ) -> ToolReviewRow:
        """Create a session (status ``submitted``) and start its analysis."""
        normalized = normalize_tool(tool)
        if source is not None and len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
            raise InvalidInput(f"source is larger than {MAX_SOURCE_BYTES} bytes", code="invalid_source")
        priority = (priority or "normal").lower()
        if priority not in PRIORITIES:
            raise InvalidInput(f"priority must be one of {sorted(PRIORITIES)}", details={"priority": priority})
        now = utcnow()
        row = ToolReviewRow(
            id=new_id("rev"),
            owner=caller.owner,
            submitted_by=(submitted_by or caller.owner)[:200],
            submitted_key_id=caller.key_id,
            priority=priority,
            status=SUBMITTED,
            tool=normalized,
            tool_name=normalized["name"],
            source=source,
            critical_findings=[],
            estimated_completion=now + timedelta(seconds=10 if source else 5),
        )
        async with self.db.transaction() as s:
            s.add(row)
        self._spawn(row.id)
        return row

    async def _row(self, caller: Principal, review_id: str) -> ToolReviewRow:
        async with self.db.session() as s:
            row = await s.get(ToolReviewRow, review_id)
        if row is None or not _visible(caller, row):
            raise NotFound(
                f"review session {review_id} not found", code="review_not_found", details={"review_id": review_id}
            )
        return row

    async def get(self, caller: Principal, review_id: str) -> ToolReviewRow:
        return await self._row(caller, review_id)

    async def list(
        self,
        caller: Principal,
        *,
        status: str | None = None,
        author: str | None = None,
        page: int = 1,
        limit: int = 20,
    ) -> tuple[builtins.list[ToolReviewRow], int]:
        """One page of sessions, newest first, and the total that match."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {list(STATUSES)}", details={"status": status})
        if page < 1 or not 1 <= limit <= 200:
            raise InvalidInput("page must be >= 1 and limit between 1 and 200", details={"page": page, "limit": limit})
        stmt = select(ToolReviewRow)
        if not caller.has("review"):
            stmt = stmt.where(ToolReviewRow.owner == caller.owner)
        if status:
            stmt = stmt.where(ToolReviewRow.status == status)
        if author:
            stmt = stmt.where(ToolReviewRow.submitted_by == author)
        count = select(func.count()).select_from(stmt.subquery())
        async with self.db.session() as s:
            total = int((await s.execute(count)).scalar_one())
            rows = list(
                (
                    await s.execute(stmt.order_by(ToolReviewRow.id.desc()).offset((page - 1) * limit).limit(limit))
                ).scalars()
            )
        return rows, total

    async def analysis(self, caller: Principal, analysis_id: str) -> ToolAnalysisRow:
        async with self.db.session() as s:
            row = await s.get(ToolAnalysisRow, analysis_id)
            review = await s.get(ToolReviewRow, row.review_id) if row is not None else None
        if row is None or review is None or not _visible(caller, review):
            raise NotFound(
                f"analysis {analysis_id} not found", code="analysis_not_found", details={"analysis_id": analysis_id}
            )
        return row

    async def wait(
        self, caller: Principal, review_id: str, *, until: str = "analysis", timeout: float = 30.0
    ) -> ToolReviewRow:
        """Wait until the analysis is done (``until="analysis"``) or a final status (``"decision"``)."""
        if until not in ("analysis", "decision"):
            raise InvalidInput("until must be 'analysis' or 'decision'", details={"until": until})
        if not 0 <= timeout <= 300:
            raise InvalidInput("timeout must be between 0 and 300 seconds", details={"timeout": timeout})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.05
        while True:
            row = await self._row(caller, review_id)
            done = row.status not in ANALYSING if until == "analysis" else row.status in TERMINAL
            if done or loop.time() >= deadline:
                return row
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, 0.5)

    # ------------------------------------------------------------------ analysis

    async def _set(self, review_id: str, **values: Any) -> ToolReviewRow | None:
        async with self.db.transaction() as s:
            row = await s.get(ToolReviewRow, review_id)
            if row is None:
                return None
            for key, value in values.items():
                setattr(row, key, value)
        return row

    async def _analyse(self, review_id: str) -> None:
        try:
            async with self._sem:
                row = await self._set(review_id, status=ANALYZING)
                if row is None:
                    return
                result = await asyncio.to_thread(_analyse, row.tool, row.source, self.use_bandit)
                await self._record(row, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("analysis of review %s failed", review_id)
            await self._set(review_id, status=PENDING_REVIEW, error=f"analysis failed: {type(exc).__name__}: {exc}")

    async def _record(self, row: ToolReviewRow, result: AnalysisResult) -> None:
        now = utcnow()
        critical = [
            _finding_wire(f.model_dump(mode="json")) for f in result.findings if f.severity is Severity.CRITICAL
        ]
        analysis = ToolAnalysisRow(
            id=result.analysis_id,
            review_id=row.id,
            risk_score=result.risk_score,
            risk_level=result.risk_level.value,
            recommendation=result.recommendation,
            findings=[f.model_dump(mode="json") for f in result.findings],
            recommendations=list(result.recommendations),
            scanners=list(result.scanners),
            schema_hash=result.schema_hash,
            completed_at=result.completed_at,
        )
        rejected = self.auto_reject and result.recommendation == "reject"
        async with self.db.transaction() as s:
            s.add(analysis)
            fresh = await s.get(ToolReviewRow, row.id)
            if fresh is None:
                return
            fresh.analysis_id = analysis.id
            fresh.risk_score = result.risk_score
            fresh.recommendation = result.recommendation
            fresh.critical_findings = critical
            fresh.analysis_completed_at = now
            fresh.error = None
            if rejected:
                fresh.status = REJECTED
                fresh.decision = REJECTED
                fresh.reviewer_id = ANALYZER_ID
                fresh.decided_at = now
                fresh.decision_reason = (
                    f"automated analysis: risk score {result.risk_score}/100, {len(critical)} critical finding(s)"
                )
            else:
                fresh.status = PENDING_REVIEW
        log.info("review %s analysed: risk %d, %s", row.id, result.risk_score, result.recommendation)

    # ------------------------------------------------------------------ humans

    async def claim(self, caller: Principal, review_id: str, reviewer_id: str | None = None) -> ToolReviewRow:
        """A reviewer takes the session: ``pending_review`` -> ``under_review``."""
        caller.require("review")
        async with self.db.transaction() as s:
            row = await _awaiting_review(s, review_id)
            row.status = UNDER_REVIEW
            row.reviewer_id = (reviewer_id or caller.owner)[:200]
            row.reviewer_key_id = caller.key_id
            row.review_started_at = utcnow()
        return row

    async def decide(
        self,
        caller: Principal,
        review_id: str,
        decision: str,
        *,
        reviewer_id: str | None = None,
        reason: str | None = None,
    ) -> ToolReviewRow:
        """Record a human decision (``approve`` / ``reject``); the caller needs the ``review`` scope."""
        caller.require("review")
        status = _DECISIONS.get((decision or "").strip().lower())
        if status is None:
            raise InvalidInput("decision must be 'approve' or 'reject'", details={"decision": decision})
        if reason is not None and len(reason) > 10_000:
            raise InvalidInput("comments are longer than 10000 characters")
        now = utcnow()
        async with self.db.transaction() as s:
            row = await _awaiting_review(s, review_id)
            row.status = status
            row.decision = status
            row.decision_reason = reason
            row.reviewer_id = (reviewer_id or caller.owner)[:200]
            row.reviewer_key_id = caller.key_id
            row.decided_at = now
            row.review_started_at = row.review_started_at or now
        log.info("review %s %s by %s (key %s)", review_id, status, row.reviewer_id, caller.key_id)
        return row

    # ------------------------------------------------------------------ signing

    async def sign(self, caller: Principal, review_id: str, signing_key_id: str | None = None) -> SignedTool:
        """Sign an approved tool with the active key (409 unless approved; signed sessions are returned as is).

        ``signing_key_id`` (optional) must name the active key (its fingerprint, or ``active``/``default``):
        404 ``signing_key_not_found`` for an unknown id, 409 for a revoked or retired one.
        """
        caller.require("review")
        row = await self._row(caller, review_id)
        await asyncio.to_thread(self.keystore.check_signing_key, signing_key_id)
        if row.status == SIGNED:
            return await self.signed(caller, review_id)
        if row.status != APPROVED:
            raise Conflict(
                f"review {review_id} is {row.status}; only approved tools can be signed",
                code="review_not_approved",
                details={"status": row.status},
            )
        sig = await asyncio.to_thread(self.keystore.sign_tool, row.tool, signing_key_id)
        async with self.db.transaction() as s:
            fresh = await s.get(ToolReviewRow, review_id)
            if fresh is None:
                raise NotFound(f"review session {review_id} not found", code="review_not_found")
            if fresh.status != APPROVED:
                raise Conflict(
                    f"review {review_id} changed to {fresh.status} while signing",
                    code="review_not_approved",
                    details={"status": fresh.status},
                )
            fresh.status = SIGNED
            fresh.signature = sig.signature_b64
            fresh.signature_algorithm = sig.algorithm
            fresh.signer_id = self.signer_id
            fresh.key_fingerprint = sig.fingerprint
            fresh.signed_at = sig.signed_at
            fresh.signed_by = caller.owner
        log.info("review %s signed with %s", review_id, sig.fingerprint)
        return SignedTool(fresh, await asyncio.to_thread(self._key, sig.fingerprint))

    async def signed(self, caller: Principal, review_id: str) -> SignedTool:
        """The signed tool of a session (404 ``tool_not_signed`` before signing)."""
        row = await self._row(caller, review_id)
        if row.status != SIGNED or not row.signature:
            raise NotFound(
                f"review {review_id} has no signed tool (status {row.status})",
                code="tool_not_signed",
                details={"status": row.status},
            )
        return SignedTool(row, await asyncio.to_thread(self._key, row.key_fingerprint or ""))

    def _key(self, fingerprint: str) -> KeyInfo | None:
        try:
            return self.keystore.get(fingerprint)
        except NotFound:
            return None

    async def counts(self) -> dict[str, int]:
        """Sessions per status (for metrics)."""
        async with self.db.session() as s:
            rows = (await s.execute(select(ToolReviewRow.status, func.count()).group_by(ToolReviewRow.status))).all()
        return {str(status): int(n) for status, n in rows}


def _analyse(tool: dict[str, Any], source: str | None, use_bandit: bool) -> AnalysisResult:
    """Analyse a stored tool; the placeholder provider counts as no provider (that is a finding)."""
    if tool.get("provider") == UNKNOWN_PROVIDER:
        tool = {k: v for k, v in tool.items() if k != "provider"}
    return analyze_tool(tool, source, use_bandit=use_bandit)


def _finding_wire(f: Mapping[str, Any]) -> dict[str, Any]:
    """A finding as served: the SDK ``SecurityFinding`` fields plus rule, location and evidence."""
    return {
        "finding_id": f["finding_id"],
        "severity": f["severity"],
        "category": f["category"],
        "title": f["title"],
        "description": f["description"],
        "confidence": f["confidence"],
        "recommendation": f.get("recommendation"),
        "rule": f.get("rule"),
        "location": f.get("location"),
        "line": _line(str(f.get("location") or "")),
        "evidence": f.get("evidence"),
    }


def _line(location: str) -> int | None:
    if location.startswith("source:"):
        head = location[len("source:") :].split(":", 1)[0]
        return int(head) if head.isdigit() else None
    return None


finding_wire = _finding_wire
