"""HTTP input (webhook) models."""

from __future__ import annotations

from typing import Any

from portside.types.common import Model


class HttpInput(Model):
    """A webhook endpoint: POST to ``url`` to start its target (``flow:<id>`` / ``agent:<id>``)."""

    id: str
    name: str = ""
    target: str
    url: str
    status: str
    has_secret: bool = False
    has_auth_header: bool = False
    max_body_bytes: int = 65536
    concurrency: int = 10
    routing_rules: list[dict[str, Any]] = []
    response_control: dict[str, Any] = {}
    forward_headers: list[str] = []
    cors_enabled: bool = False
    audit_enabled: bool = True
    jwt_public_key_path: str | None = None
    rate_limit_per_minute: float = 0.0
    rate_limit_burst: int = 0
    wait_seconds: float = 0.0
    uptime_seconds: int | None = None
    requests_processed: int = 0
    active_connections: int = 0
    last_request_at: str | None = None
    last_error: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class TriggerResult(Model):
    """What the webhook answered: ``status`` is ``completed``, ``accepted`` (still running) or ``failed``."""

    status: str
    response_code: int
    response_body: dict[str, Any] = {}
    processing_time_ms: float = 0.0
    target: str
    ref: str | None = None


class InputRequest(Model):
    """One audited webhook request."""

    id: str
    input_id: str
    received_at: str
    source: str
    method: str
    path: str = ""
    remote_addr: str | None = None
    body_bytes: int = 0
    target: str
    outcome: str
    status_code: int
    ref: str | None = None
    error: str | None = None
    duration_ms: float = 0.0
