"""W3C trace context for the SDK's worker, with OpenTelemetry only when it is installed.

The server puts the submitter's ``traceparent`` (and ``tracestate``) in a task's metadata when
tracing is on. :class:`portside.Worker` runs each handler inside a span that continues that trace
when ``opentelemetry-api`` is importable (and a tracer provider is configured by the worker's
process); without it, the handler still sees ``ctx.traceparent`` and nothing else happens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")

try:  # optional: the base SDK depends on httpx and pydantic only
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised where opentelemetry-api is absent
    _propagate = None  # type: ignore[assignment]
    _trace = None  # type: ignore[assignment]


def valid_traceparent(value: object) -> str | None:
    """``value`` when it is a well-formed W3C ``traceparent`` with non-zero ids, else None."""
    if not isinstance(value, str) or len(value) != 55:
        return None
    match = _TRACEPARENT.match(value)
    if match is None or set(match.group(1)) == {"0"} or set(match.group(2)) == {"0"}:
        return None
    return value


def trace_id_of(traceparent: object) -> str | None:
    """The 32-hex trace id of a ``traceparent``, or None."""
    value = valid_traceparent(traceparent)
    return value[3:35] if value else None


def carrier_of(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """The trace headers found in a task's metadata."""
    out: dict[str, str] = {}
    if not metadata:
        return out
    parent = valid_traceparent(metadata.get("traceparent"))
    if parent:
        out["traceparent"] = parent
        state = metadata.get("tracestate")
        if isinstance(state, str) and len(state) <= 512:
            out["tracestate"] = state
    return out


def current_traceparent() -> str | None:
    """The ``traceparent`` of the active OpenTelemetry span, when there is one."""
    if _propagate is None:
        return None
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return valid_traceparent(carrier.get("traceparent"))


class HandlerSpan:
    """What :func:`handler_span` yields: the span's own ``traceparent`` and a way to mark it failed."""

    def __init__(self, span: Any = None) -> None:
        self._span = span
        self.traceparent: str | None = current_traceparent() if span is not None else None

    def fail(self, reason: str) -> None:
        if self._span is not None and _trace is not None:
            self._span.set_status(_trace.Status(_trace.StatusCode.ERROR, reason[:200]))


_NO_SPAN = HandlerSpan()


@contextmanager
def handler_span(
    capability: str, task_id: str, attempt: int, metadata: Mapping[str, Any] | None
) -> Iterator[HandlerSpan]:
    """A CONSUMER span around one handler run, child of the submitter's span (no-op without OTel)."""
    carrier = carrier_of(metadata)
    if (
        _trace is None
        or _propagate is None
        or (not carrier and isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider))
    ):
        yield _NO_SPAN  # nothing to continue and nowhere to record: no span at all
        return
    parent = _propagate.extract(carrier)
    tracer = _trace.get_tracer("portside.worker")
    with tracer.start_as_current_span(
        f"task {capability}",
        context=parent,
        kind=_trace.SpanKind.CONSUMER,
        attributes={"portside.task.id": task_id, "portside.task.capability": capability, "portside.attempt": attempt},
    ) as span:
        yield HandlerSpan(span)
