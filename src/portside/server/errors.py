"""Domain errors: raised by services, mapped to HTTP by the doors.

Codes follow the Bay (shipyard-neo) vocabulary where one exists, because the
native API is also the Bay API: ``validation_error``, ``unauthorized``,
``forbidden``, ``not_found``, ``conflict``, ``quota_exceeded``, ``timeout``.

Every error carries a stable machine-readable ``code``, a human ``message``,
an HTTP ``status`` the native door uses, and optional structured ``details``.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class of every error a service raises on purpose."""

    code: str = "error"
    status: int = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details: dict[str, Any] = details or {}


class InvalidInput(DomainError):
    """The caller sent something the service cannot accept (400)."""

    code = "validation_error"
    status = 400


class Unauthenticated(DomainError):
    code = "unauthorized"
    status = 401


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = 413


class RateLimited(DomainError):
    code = "quota_exceeded"
    status = 429

    def __init__(self, message: str, *, retry_after: float = 1.0, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        self.details.setdefault("retry_after", retry_after)


class Unavailable(DomainError):
    code = "unavailable"
    status = 503


class UpstreamTimeout(DomainError):
    code = "timeout"
    status = 504
