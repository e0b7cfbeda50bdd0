"""HTTP inputs: webhook endpoints that start a flow or give a deployed agent a task.

A request to ``/hooks/{input_id}`` passes, in order: the endpoint is running (503), the per-endpoint
rate limit (429), the body size (413), the endpoint's authentication — HMAC signature, fixed
``Authorization`` value, or JWT — (401), and the per-endpoint concurrency (429). Then the routing
rules pick the target and the work starts. Rejected requests only touch in-memory counters (no
store writes for unauthenticated traffic); dispatched ones are counted in the store and, with
``audit_enabled``, logged in ``http_input_requests``.

Rate limits, concurrency and the in-memory counters are per process (per replica).
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from portside.server.auth import Principal
from portside.server.clock import isoformat, utcnow
from portside.server.errors import DomainError, Forbidden, InvalidInput, NotFound, PayloadTooLarge, RateLimited
from portside.server.ids import new_id
from portside.server.inputs import auth
from portside.server.inputs.models import HttpInputRequestRow, HttpInputRow
from portside.server.inputs.spec import InputConfig, InputPatch, InputSpec, RoutingRule
from portside.server.inputs.targets import ACCEPTED, COMPLETED, FAILED, Dispatched, TargetRunner
from portside.server.ratelimit import RateLimiter
from portside.server.secrets.crypto import SecretCipher
from portside.server.store import Database

RUNNING, STOPPED = "running", "stopped"


def _not_found(input_id: str) -> NotFound:
    return NotFound(f"HTTP input '{input_id}' not found", code="input_not_found", details={"input_id": input_id})


@dataclass
class InputStats:
    """Per-process counters of one input."""

    received: int = 0
    completed: int = 0
    accepted: int = 0
    failed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    total_ms: float = 0.0
    timed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_received": self.received,
            "completed": self.completed,
            "accepted": self.accepted,
            "failed": self.failed,
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "active_connections": self.in_flight,
            "average_processing_time_ms": round(self.total_ms / self.timed, 3) if self.timed else 0.0,
        }


@dataclass(frozen=True)
class InputView:
    """An input as the doors render it (secrets only as flags)."""

    row: HttpInputRow
    config: InputConfig
    has_secret: bool
    has_auth_header: bool
    stats: InputStats

    @property
    def uptime_seconds(self) -> int | None:
        if self.row.status != RUNNING or self.row.started_at is None:
            return None
        return max(0, int((utcnow() - self.row.started_at).total_seconds()))


@dataclass(frozen=True)
class Endpoint:
    """A loaded input, ready to take a request."""

    row: HttpInputRow
    config: InputConfig
    secret: str | None
    auth_header: str | None


@dataclass(frozen=True)
class HookResult:
    """The answer to one webhook request."""

    status_code: int
    body: dict[str, Any]
    raw_text: str | None
    outcome: str
    target: str
    ref: str | None
    duration_ms: float
    cors: bool


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _matches(rule: RoutingRule, path: str, headers: Mapping[str, str], body: Any) -> bool:
    if rule.condition_type == "path_prefix":
        return path.startswith(rule.condition_value)
    target = rule.condition_target or ""
    if rule.condition_type == "header_equals":
        return headers.get(target.lower()) == rule.condition_value
    value = _lookup(body, target)
    if isinstance(value, bool):
        value = "true" if value else "false"
    return value is not None and str(value) == rule.condition_value


def route(config: InputConfig, default: str, path: str, headers: Mapping[str, str], body: Any) -> str:
    """The target of a request: the first matching routing rule's, else the input's own."""
    for rule in config.routing_rules:
        if _matches(rule, path, headers, body):
            return rule.agent_id
    return default


def parse_body(raw: bytes, content_type: str) -> Any:
    """JSON when it parses as JSON (or claims to be JSON), else UTF-8 text."""
    if not raw:
        return {}
    looks_json = "json" in content_type or raw.lstrip()[:1] in (b"{", b"[")
    if looks_json:
        try:
            return json.loads(raw)
        except ValueError:
            if "json" in content_type:
                raise InvalidInput("the request body is not valid JSON", code="invalid_body") from None
    return raw.decode("utf-8", "replace")


class InputService:
    """Create, change, start, stop and delete inputs; take and dispatch their requests."""

    def __init__(self, db: Database, cipher: SecretCipher, services: Mapping[str, Any]) -> None:
        self.db = db
        self.cipher = cipher.derive("http-inputs")
        self.runner = TargetRunner(services)
        self._stats: dict[str, InputStats] = {}
        self._limiters: dict[str, tuple[float, int, RateLimiter]] = {}

    # ------------------------------------------------------------------ store helpers

    def _seal(self, input_id: str, secret: str | None, auth_header: str | None) -> str | None:
        if not secret and not auth_header:
            return None
        return self.cipher.encrypt_text(json.dumps({"hmac": secret, "auth_header": auth_header}), aad=input_id)

    def _unseal(self, row: HttpInputRow) -> tuple[str | None, str | None]:
        if not row.secrets:
            return None, None
        data = json.loads(self.cipher.decrypt_text(row.secrets, aad=row.id))
        return data.get("hmac") or None, data.get("auth_header") or None

    def stats(self, input_id: str) -> InputStats:
        stats = self._stats.get(input_id)
        if stats is None:
            stats = self._stats[input_id] = InputStats()
        return stats

    def view(self, row: HttpInputRow) -> InputView:
        secret, header = self._unseal(row)
        return InputView(
            row, InputConfig.model_validate(row.config or {}), bool(secret), bool(header), self.stats(row.id)
        )

    @staticmethod
    def _visible(caller: Principal, row: HttpInputRow) -> bool:
        return caller.has("admin") or caller.owner == row.owner

    async def _row(self, caller: Principal | None, input_id: str) -> HttpInputRow:
        async with self.db.session() as s:
            row = await s.get(HttpInputRow, input_id)
        if row is None or (caller is not None and not self._visible(caller, row)):
            raise _not_found(input_id)
        return row

    @staticmethod
    def _check_jwt_scope(caller: Principal, config: InputConfig) -> None:
        if config.jwt_public_key_path and not caller.has("admin"):
            raise Forbidden(
                "only admins may point an input at a server-side key file (jwt_public_key_path)",
                details={"required_scope": "admin"},
            )

    # ------------------------------------------------------------------ CRUD

    async def create(self, caller: Principal, spec: InputSpec) -> InputView:
        config = spec.settings()
        self._check_jwt_scope(caller, config)
        now = utcnow()
        input_id = new_id("inp")
        row = HttpInputRow(
            id=input_id,
            owner=caller.owner,
            name=spec.name,
            target=spec.target or "",
            config=config.model_dump(mode="json"),
            secrets=self._seal(input_id, spec.secret, spec.auth_header),
            status=RUNNING if spec.enabled else STOPPED,
            started_at=now if spec.enabled else None,
            requests_processed=0,
            created_at=now,
            updated_at=now,
        )
        async with self.db.transaction() as s:
            s.add(row)
        return self.view(row)

    async def list(self, caller: Principal) -> builtins.list[InputView]:
        stmt = select(HttpInputRow).order_by(HttpInputRow.created_at, HttpInputRow.id)
        if not caller.has("admin"):
            stmt = stmt.where(HttpInputRow.owner == caller.owner)
        async with self.db.session() as s:
            rows = (await s.execute(stmt)).scalars().all()
        return [self.view(r) for r in rows]

    async def get(self, caller: Principal, input_id: str) -> InputView:
        return self.view(await self._row(caller, input_id))

    async def update(self, caller: Principal, input_id: str, patch: InputPatch) -> InputView:
        try:
            target = patch.new_target()
        except ValueError as exc:
            raise InvalidInput(str(exc), code="invalid_target") from None
        sent = patch.model_fields_set
        async with self.db.transaction() as s:
            row = await s.get(HttpInputRow, input_id)
            if row is None or not self._visible(caller, row):
                raise _not_found(input_id)
            merged = {**(row.config or {}), **patch.setting_changes()}
            try:
                config = InputConfig.model_validate(merged)
            except ValueError as exc:
                raise InvalidInput(f"invalid settings: {exc}", code="invalid_input_config") from None
            if "jwt_public_key_path" in sent:
                self._check_jwt_scope(caller, config)
            secret, header = self._unseal(row)
            if "secret" in sent:
                secret = patch.secret
            if "auth_header" in sent:
                header = patch.auth_header
            row.config = config.model_dump(mode="json")
            row.secrets = self._seal(row.id, secret, header)
            if target is not None:
                row.target = target
            if patch.name is not None:
                row.name = patch.name
            row.updated_at = utcnow()
        self._limiters.pop(input_id, None)
        return self.view(row)

    async def _set_status(self, caller: Principal, input_id: str, status: str) -> InputView:
        async with self.db.transaction() as s:
            row = await s.get(HttpInputRow, input_id)
            if row is None or not self._visible(caller, row):
                raise _not_found(input_id)
            if row.status != status:
                row.status = status
                row.started_at = utcnow() if status == RUNNING else None
                row.updated_at = utcnow()
        return self.view(row)

    async def start(self, caller: Principal, input_id: str) -> InputView:
        """Accept requests again."""
        return await self._set_status(caller, input_id, RUNNING)

    async def stop(self, caller: Principal, input_id: str) -> InputView:
        """Refuse requests (503 ``input_stopped``) until started."""
        return await self._set_status(caller, input_id, STOPPED)

    async def delete(self, caller: Principal, input_id: str) -> None:
        async with self.db.transaction() as s:
            row = await s.get(HttpInputRow, input_id)
            if row is None or not self._visible(caller, row):
                raise _not_found(input_id)
            await s.delete(row)
        self._limiters.pop(input_id, None)
        self._stats.pop(input_id, None)

    # ------------------------------------------------------------------ requests

    async def endpoint(self, input_id: str) -> Endpoint:
        """The input behind ``/hooks/{input_id}`` (404 when unknown)."""
        row = await self._row(None, input_id)
        secret, header = self._unseal(row)
        return Endpoint(row, InputConfig.model_validate(row.config or {}), secret, header)

    def _limiter(self, ep: Endpoint) -> RateLimiter | None:
        per_minute, burst = ep.config.rate_limit_per_minute, ep.config.rate_limit_burst
        if per_minute <= 0:
            return None
        hit = self._limiters.get(ep.row.id)
        if hit is None or hit[0] != per_minute or hit[1] != burst:
            hit = (per_minute, burst, RateLimiter(per_minute, burst))
            self._limiters[ep.row.id] = hit
        return hit[2]

    def reject(self, input_id: str, exc: DomainError) -> DomainError:
        """Count a refused request of ``input_id`` by its error code; returns ``exc`` to raise."""
        return self._reject(self.stats(input_id), exc)

    @staticmethod
    def _reject(stats: InputStats, exc: DomainError) -> DomainError:
        stats.rejected[exc.code] = stats.rejected.get(exc.code, 0) + 1
        return exc

    async def receive(
        self,
        ep: Endpoint,
        *,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        remote: str | None,
        caller: Principal | None = None,
    ) -> HookResult:
        """Check and dispatch one request. ``caller`` set = an authenticated trigger (no endpoint auth, no limit)."""
        stats = self.stats(ep.row.id)
        stats.received += 1
        started = time.perf_counter()
        received_at = utcnow()
        cfg = ep.config
        headers = {k.lower(): v for k, v in headers.items()}
        if ep.row.status != RUNNING:
            raise self._reject(stats, DomainError("this HTTP input is stopped", code="input_stopped", status=503))
        if caller is None:
            limiter = self._limiter(ep)
            if limiter is not None:
                try:
                    limiter.check(ep.row.id)
                except RateLimited as exc:
                    raise self._reject(stats, exc) from None
        if len(body) > cfg.max_body_bytes:
            raise self._reject(
                stats,
                PayloadTooLarge(
                    f"the body is larger than this input's limit of {cfg.max_body_bytes} bytes",
                    details={"max_body_bytes": cfg.max_body_bytes},
                ),
            )
        try:
            if caller is None:
                if ep.secret:
                    auth.check_signature(ep.secret, body, headers)
                if ep.auth_header:
                    auth.check_auth_header(ep.auth_header, headers)
                if cfg.jwt_public_key_path:
                    auth.check_jwt(cfg.jwt_public_key_path, headers)
            parsed = parse_body(body, headers.get("content-type", ""))
        except DomainError as exc:
            raise self._reject(stats, exc) from None
        if stats.in_flight >= cfg.concurrency:
            raise self._reject(
                stats,
                RateLimited(
                    f"this input already runs {cfg.concurrency} request(s); retry shortly",
                    code="too_many_concurrent_requests",
                    retry_after=1.0,
                ),
            )
        target = route(cfg, ep.row.target, path, headers, parsed)
        envelope = {
            "body": parsed,
            "headers": {h: headers[h] for h in cfg.forward_headers if h in headers},
            "method": method,
            "path": path,
            "query": dict(query),
            "input_id": ep.row.id,
            "received_at": isoformat(received_at),
        }
        stats.in_flight += 1
        try:
            done = await self.runner.run(
                target, envelope, owner=ep.row.owner, input_id=ep.row.id, wait=cfg.wait_seconds
            )
        finally:
            stats.in_flight -= 1
        duration = round((time.perf_counter() - started) * 1000, 3)
        result = self._answer(cfg, done, parsed, duration)
        stats.total_ms += duration
        stats.timed += 1
        if done.outcome == COMPLETED:
            stats.completed += 1
        elif done.outcome == ACCEPTED:
            stats.accepted += 1
        else:
            stats.failed += 1
        await self._record(ep, result, done, received_at, method, path, remote, len(body), caller)
        return result

    @staticmethod
    def _answer(cfg: InputConfig, done: Dispatched, parsed: Any, duration: float) -> HookResult:
        control = cfg.response_control
        base: dict[str, Any] = {"status": done.outcome, "target": done.target, **done.refs}
        raw: str | None = None
        if done.outcome == COMPLETED:
            status = control.default_status
            if control.agent_output_to_json:
                body = {**base, "output": done.output}
            else:
                body = done.output if isinstance(done.output, dict) else {**base, "output": done.output}
                raw = done.output if isinstance(done.output, str) else None
        elif done.outcome == ACCEPTED:
            status, body = 202, base
        else:
            status = control.error_status
            body = {**base, "error": done.error or {"code": "failed", "message": "the target failed"}}
            if control.echo_input_on_error:
                body["input"] = parsed
        return HookResult(status, body, raw, done.outcome, done.target, done.ref, duration, cfg.cors_enabled)

    async def _record(
        self,
        ep: Endpoint,
        result: HookResult,
        done: Dispatched,
        received_at: datetime,
        method: str,
        path: str,
        remote: str | None,
        size: int,
        caller: Principal | None,
    ) -> None:
        async with self.db.transaction() as s:
            await s.execute(
                update(HttpInputRow)
                .where(HttpInputRow.id == ep.row.id)
                .values(
                    requests_processed=HttpInputRow.requests_processed + 1,
                    last_request_at=received_at,
                    last_error=(done.error or {}).get("message") if done.outcome == FAILED else None,
                )
            )
            if ep.config.audit_enabled:
                s.add(
                    HttpInputRequestRow(
                        id=new_id("inreq"),
                        input_id=ep.row.id,
                        received_at=received_at,
                        source="trigger" if caller is not None else "webhook",
                        method=method[:10],
                        path=path[:2000],
                        remote_addr=(remote or "")[:100] or None,
                        body_bytes=size,
                        target=result.target[:300],
                        outcome=result.outcome,
                        status_code=result.status_code,
                        ref=result.ref,
                        error=(done.error or {}).get("message"),
                        duration_ms=result.duration_ms,
                    )
                )

    async def trigger(
        self, caller: Principal, input_id: str, payload: Any, headers: Mapping[str, str], path: str = ""
    ) -> HookResult:
        """Run an input as ``caller`` with ``payload`` (a test or manual run; endpoint auth is skipped)."""
        await self._row(caller, input_id)
        ep = await self.endpoint(input_id)
        body = json.dumps(payload, default=str).encode("utf-8")
        merged = {"content-type": "application/json", **{k.lower(): v for k, v in headers.items()}}
        return await self.receive(
            ep, method="POST", path=path, query={}, headers=merged, body=body, remote=None, caller=caller
        )

    # ------------------------------------------------------------------ reads for metrics and audit

    async def metrics(self, caller: Principal, input_id: str) -> dict[str, Any]:
        view = await self.get(caller, input_id)
        async with self.db.session() as s:
            stmt = (
                select(HttpInputRequestRow.outcome, func.count(), func.avg(HttpInputRequestRow.duration_ms))
                .where(HttpInputRequestRow.input_id == input_id)
                .group_by(HttpInputRequestRow.outcome)
            )
            rows = (await s.execute(stmt)).all()
        row = view.row
        return {
            "input_id": row.id,
            "server_id": row.id,
            "status": row.status,
            "uptime_seconds": view.uptime_seconds,
            "requests_processed": row.requests_processed,
            "last_request_at": isoformat(row.last_request_at) if row.last_request_at else None,
            "last_error": row.last_error,
            **view.stats.as_dict(),
            "audited": {
                str(outcome): {"count": int(count), "average_ms": round(float(avg or 0.0), 3)}
                for outcome, count, avg in rows
            },
            "rate_limit_per_minute": view.config.rate_limit_per_minute,
            "concurrency": view.config.concurrency,
        }

    async def requests(
        self, caller: Principal, input_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[builtins.list[HttpInputRequestRow], int]:
        """The audit log of one input, newest first."""
        await self._row(caller, input_id)
        cond = HttpInputRequestRow.input_id == input_id
        stmt = select(HttpInputRequestRow).where(cond).order_by(HttpInputRequestRow.received_at.desc())
        async with self.db.session() as s:
            total = (await s.execute(select(func.count()).select_from(HttpInputRequestRow).where(cond))).scalar_one()
            rows = (await s.execute(stmt.limit(limit).offset(offset))).scalars().all()
        return list(rows), int(total)

    def live_totals(self) -> dict[str, int]:
        """This process's in-flight and refused requests over every input."""
        return {
            "active_requests": sum(s.in_flight for s in self._stats.values()),
            "rejected": sum(sum(s.rejected.values()) for s in self._stats.values()),
        }

    async def counts(self) -> dict[str, Any]:
        """Inputs by status and requests processed (for metrics)."""
        async with self.db.session() as s:
            by_status = dict(
                (await s.execute(select(HttpInputRow.status, func.count()).group_by(HttpInputRow.status))).all()
            )
            processed = (
                await s.execute(select(func.coalesce(func.sum(HttpInputRow.requests_processed), 0)))
            ).scalar_one()
        return {
            "inputs": {str(k): int(v) for k, v in by_status.items()},
            "requests_processed": int(processed or 0),
            "rejected": sum(sum(s.rejected.values()) for s in self._stats.values()),
        }
