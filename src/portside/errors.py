"""Typed SDK errors, each carrying the HTTP status, stable code and request id."""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "ConflictError",
    "ExecutionTimeoutError",
    "NotFoundError",
    "PermissionDeniedError",
    "PortsideError",
    "RateLimitError",
    "ServerError",
    "ValidationError",
]

_SNIPPET = 500


class PortsideError(Exception):
    """Base of every error raised by the SDK."""


class APIConnectionError(PortsideError):
    """The server could not be reached (after retries)."""


class APITimeoutError(APIConnectionError):
    """The request timed out (after retries)."""


class APIError(PortsideError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str = "error",
        request_id: str | None = None,
        body: Any = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.body = body
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        rid = f", request_id={self.request_id}" if self.request_id else ""
        return f"{self.status_code} {self.code}: {self.message}{rid}"


class ValidationError(APIError):
    """400 / 422: the request was rejected as invalid."""


class AuthenticationError(APIError):
    """401: missing or invalid API key."""


class PermissionDeniedError(APIError):
    """403: the key lacks a needed scope."""


class NotFoundError(APIError):
    """404: no such resource."""


class ConflictError(APIError):
    """409: the resource is in a state that forbids the request."""


class RateLimitError(APIError):
    """429: slow down; ``retry_after`` seconds is the server's hint."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the server failed."""


class ExecutionTimeoutError(ServerError):
    """504 ``timeout`` from a sandbox execution: it ran past its timeout and was interrupted (Python:
    the kernel's state is kept) or killed (shell). It is still recorded in the sandbox's history under
    ``execution_id``."""

    @property
    def execution_id(self) -> str | None:
        """The recorded execution (``sandbox.get_execution(...)``, ``portside sandbox history``)."""
        value = self.details.get("execution_id")
        return str(value) if value is not None else None


_BY_STATUS: dict[int, type[APIError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds, when it is a number."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def is_idempotency_in_progress(response: httpx.Response) -> bool:
    """A 409 saying the first request with this ``Idempotency-Key`` is still running (retry later)."""
    if response.status_code != 409:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return False
    details = err.get("details")
    reason = details.get("reason") if isinstance(details, dict) else None
    return "idempotency_in_progress" in (err.get("code"), reason)


def error_from_response(response: httpx.Response) -> APIError:
    """Build the typed error for an error response; non-JSON bodies keep a bounded snippet."""
    status = response.status_code
    request_id = response.headers.get("x-request-id")
    raw = response.content
    body: Any
    code = "error"
    details: dict[str, Any] = {}
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code") or code)
        message = str(err.get("message") or f"HTTP {status}")
        details = err.get("details") if isinstance(err.get("details"), dict) else {}
        request_id = request_id or err.get("request_id")
    elif isinstance(body, dict) and ("detail" in body or "message" in body):
        message = str(body.get("message") or body.get("detail"))
    else:
        snippet = raw[:_SNIPPET].decode("utf-8", "replace")
        body = snippet
        message = f"HTTP {status} returned a non-JSON error response"
        details = {"raw_response_snippet": snippet}
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    if status == 504 and code == "timeout" and "execution_id" in details:
        cls = ExecutionTimeoutError
    kwargs: dict[str, Any] = {
        "status_code": status,
        "code": code,
        "request_id": request_id,
        "body": body,
        "details": details,
    }
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after_seconds(response), **kwargs)
    return cls(message, **kwargs)
