"""Tool review and signing: ``/v1/reviews``, ``/v1/analyses``, ``/v1/signing-keys``, ``/.well-known/schemapin.json``.

Reading needs ``read``; submitting needs ``write``; claiming, deciding and signing need ``review``;
rotating and revoking signing keys need ``admin``. The well-known documents are public.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.params import MAX_PAGE
from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.deps import require
from portside.server.errors import NotFound
from portside.server.reviews import views
from portside.server.reviews.schemas import (
    AnalysisOut,
    ReviewPageOut,
    ReviewSessionOut,
    RevocationDocument,
    SchemaPinDocument,
    SignedTool,
    SigningKeyList,
    SigningKeyOut,
)
from portside.server.reviews.service import DECISION_DOC, TOOL_DOC, ReviewService
from portside.server.reviews.signing import REVOCATION_REASONS, KeyStore
from portside.server.secrets.service import cipher_of

router = APIRouter(prefix="/v1", tags=["reviews"], route_class=WireRoute)
well_known = APIRouter(tags=["reviews"], route_class=WireRoute)
Reader = Depends(require("read"))
Writer = Depends(require("write"))
Reviewer = Depends(require("review"))
Admin = Depends(require("admin"))


def svc(ctx: AppContext = Depends(get_ctx)) -> ReviewService:
    return ctx.service("reviews", ReviewService)


class SubmitReview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: dict[str, Any] = Field(
        description="Tool definition: name, description, schema (or inputSchema), provider.",
        json_schema_extra=TOOL_DOC,
    )
    source: str | None = Field(default=None, description="The tool's Python source, scanned as well.")
    submitted_by: str | None = Field(default=None, max_length=200)
    priority: str = "normal"


class Decision(BaseModel):
    decision: str = Field(description="approve or reject", json_schema_extra=DECISION_DOC)
    reason: str | None = Field(default=None, max_length=10_000)
    comments: str | None = Field(default=None, max_length=10_000, description="Alias of reason.")
    reviewer_id: str | None = Field(default=None, max_length=200)


class Claim(BaseModel):
    reviewer_id: str | None = Field(default=None, max_length=200)


class SignRequest(BaseModel):
    signing_key_id: str | None = Field(default=None, max_length=200)


class Revoke(BaseModel):
    reason: Literal["key_compromise", "superseded", "cessation_of_operation", "privilege_withdrawn"] = "key_compromise"


# ---------------------------------------------------------------- sessions


@router.post("/reviews", status_code=201, response_model=ReviewSessionOut)
async def submit_review(body: SubmitReview, s: ReviewService = Depends(svc), caller: Principal = Writer) -> Any:
    """Submit a tool (and optionally its source); the automated analysis starts at once."""
    row = await s.submit(caller, body.tool, source=body.source, submitted_by=body.submitted_by, priority=body.priority)
    return views.session(row)


@router.get("/reviews", response_model=ReviewPageOut)
async def list_reviews(
    status: str | None = None,
    author: str | None = None,
    page: int = Query(1, ge=1, le=MAX_PAGE),
    limit: int = Query(20, ge=1, le=200),
    s: ReviewService = Depends(svc),
    caller: Principal = Reader,
) -> dict[str, Any]:
    rows, total = await s.list(caller, status=status, author=author, page=page, limit=limit)
    return {
        "items": [views.session(r) for r in rows],
        "total": total,
        "page": page,
        "limit": limit,
        "has_next": page * limit < total,
    }


@router.get("/reviews/{review_id}", response_model=ReviewSessionOut)
async def get_review(review_id: str, s: ReviewService = Depends(svc), caller: Principal = Reader) -> Any:
    return views.session(await s.get(caller, review_id))


@router.get("/reviews/{review_id}/wait", response_model=ReviewSessionOut)
async def wait_review(
    review_id: str,
    until: Literal["analysis", "decision"] = "analysis",
    timeout: float = Query(30.0, ge=0, le=300),
    s: ReviewService = Depends(svc),
    caller: Principal = Reader,
) -> Any:
    """Block until the analysis is done (or a final decision, ``until=decision``) or the timeout passes."""
    return views.session(await s.wait(caller, review_id, until=until, timeout=timeout))


@router.get("/reviews/{review_id}/analysis", response_model=AnalysisOut)
async def review_analysis(review_id: str, s: ReviewService = Depends(svc), caller: Principal = Reader) -> Any:
    row = await s.get(caller, review_id)
    if row.analysis_id is None:
        raise NotFound(f"review {review_id} has no analysis yet (status {row.status})", code="analysis_not_found")
    return views.analysis(await s.analysis(caller, row.analysis_id))


@router.get("/analyses/{analysis_id}", response_model=AnalysisOut)
async def get_analysis(analysis_id: str, s: ReviewService = Depends(svc), caller: Principal = Reader) -> Any:
    return views.analysis(await s.analysis(caller, analysis_id))


@router.post("/reviews/{review_id}/claim", response_model=ReviewSessionOut)
async def claim_review(
    review_id: str, body: Claim | None = None, s: ReviewService = Depends(svc), caller: Principal = Reviewer
) -> Any:
    return views.session(await s.claim(caller, review_id, (body or Claim()).reviewer_id))


@router.post("/reviews/{review_id}/decision", response_model=ReviewSessionOut)
async def decide_review(
    review_id: str, body: Decision, s: ReviewService = Depends(svc), caller: Principal = Reviewer
) -> Any:
    row = await s.decide(
        caller,
        review_id,
        body.decision,
        reviewer_id=body.reviewer_id,
        reason=body.reason if body.reason is not None else body.comments,
    )
    return views.session(row)


@router.post("/reviews/{review_id}/sign", response_model=SignedTool)
async def sign_review(
    review_id: str, body: SignRequest | None = None, s: ReviewService = Depends(svc), caller: Principal = Reviewer
) -> Any:
    """Sign an approved tool (409 otherwise); returns the signed tool."""
    return views.signed_tool(await s.sign(caller, review_id, (body or SignRequest()).signing_key_id))


@router.get("/reviews/{review_id}/signed", response_model=SignedTool)
async def signed_tool(review_id: str, s: ReviewService = Depends(svc), caller: Principal = Reader) -> Any:
    return views.signed_tool(await s.signed(caller, review_id))


# ---------------------------------------------------------------- signing keys


@router.get("/signing-keys", response_model=SigningKeyList)
async def list_signing_keys(s: ReviewService = Depends(svc), _: Principal = Reader) -> dict[str, Any]:
    keys = await asyncio.to_thread(s.keystore.keys)
    if not keys:
        keys = [await asyncio.to_thread(s.keystore.active_key)]
    return {"items": [k.to_dict() for k in keys], "total": len(keys)}


@router.post("/signing-keys/rotate", status_code=201, response_model=SigningKeyOut)
async def rotate_signing_key(s: ReviewService = Depends(svc), _: Principal = Admin) -> dict[str, Any]:
    """Make a new active key; the old one is retired (its signatures still verify)."""
    return (await asyncio.to_thread(s.keystore.rotate)).to_dict()


@router.post("/signing-keys/{fingerprint}/revoke", response_model=SigningKeyOut)
async def revoke_signing_key(
    fingerprint: str, body: Revoke | None = None, s: ReviewService = Depends(svc), _: Principal = Admin
) -> dict[str, Any]:
    """Revoke a key (listed in ``revoked_keys``); revoking the active key rotates first."""
    reason = (body or Revoke()).reason
    assert reason in REVOCATION_REASONS
    return (await asyncio.to_thread(s.keystore.revoke, fingerprint, reason)).to_dict()


# ---------------------------------------------------------------- well-known (public)


@well_known.get("/.well-known/schemapin.json", response_model=SchemaPinDocument)
async def schemapin_well_known(request: Request, s: ReviewService = Depends(svc)) -> dict[str, Any]:
    """SchemaPin discovery document: the active public key and revoked fingerprints."""
    endpoint = str(request.url_for("schemapin_revocations"))
    return await asyncio.to_thread(lambda: s.keystore.well_known(revocation_endpoint=endpoint))


@well_known.get(
    "/.well-known/schemapin-revocations.json", name="schemapin_revocations", response_model=RevocationDocument
)
async def schemapin_revocations(request: Request, s: ReviewService = Depends(svc)) -> dict[str, Any]:
    """SchemaPin revocation document (``schemapin.revocation.RevocationDocument``)."""
    domain = request.url.hostname or "localhost"
    return await asyncio.to_thread(s.keystore.revocation_document, domain)


# ---------------------------------------------------------------- wiring


def install(app: FastAPI, ctx: AppContext) -> None:
    """Build the key store and review service; mount the routes."""
    settings = ctx.settings
    data_dir = settings.ensure_data_dir()
    keystore = KeyStore(
        data_dir / "signing_keys.json",
        cipher_of(ctx.services, settings.secret_key, data_dir),
        developer_name=settings.instance_name,
    )
    service = ReviewService(ctx.db, keystore, signer_id=settings.instance_name)
    ctx.services["reviews"] = service
    ctx.on_start.append(service.start)
    ctx.on_stop.append(service.stop)
    app.include_router(router)
    app.include_router(well_known)
