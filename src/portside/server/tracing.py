"""OpenTelemetry tracing: off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``PORTSIDE_TRACING`` is set.

When on, :func:`configure` installs a tracer provider (unless the process already has an SDK one,
e.g. a test's in-memory exporter), instruments the FastAPI app, httpx and the store's SQLAlchemy
engine, and :func:`span` records Portside's own spans (sandbox exec, task submit/result, flow
executions and nodes, MCP tool calls). The standard ``OTEL_*`` variables apply (service name,
resource attributes, sampler, exporter endpoint and headers). When off, :func:`span` is a shared
no-op context manager and :func:`enabled` a module attribute read: nothing else runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from portside._tracing import carrier_of

log = logging.getLogger("portside.tracing")

_enabled = False
_NULL: AbstractContextManager[None] = nullcontext()
_TRUE = {"1", "true", "yes", "on", "otlp", "console"}


def wanted(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for tracing."""
    env = os.environ if env is None else env
    flag = env.get("PORTSIDE_TRACING", "").strip().lower()
    if flag in ("0", "false", "no", "off"):
        return False
    return flag in _TRUE or bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def enabled() -> bool:
    """Whether this process records spans."""
    return _enabled


def _provider() -> Any:
    """The process's SDK tracer provider, set up from ``OTEL_*`` when none is installed yet."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "portside")}).merge(
        OTELResourceDetector().detect()
    )
    provider = TracerProvider(resource=resource)
    if os.environ.get("PORTSIDE_TRACING", "").strip().lower() == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def configure(app: Any, engine: Any) -> bool:
    """Turn tracing on for this process when the environment asks for it; instrument ``app`` and ``engine``."""
    global _enabled
    if not wanted():
        return False
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    except ImportError as exc:  # pragma: no cover - the server extra declares them
        log.warning("tracing requested but OpenTelemetry is not installed (%s); tracing stays off", exc)
        return False
    provider = _provider()
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, exclude_spans=["receive", "send"])
    httpx_instrumentor = HTTPXClientInstrumentor()
    if not httpx_instrumentor.is_instrumented_by_opentelemetry:
        httpx_instrumentor.instrument(tracer_provider=provider)
    # the instrumentation declares sqlalchemy < 2.1; its engine events work on 2.1 (tests/observability checks)
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider, skip_dep_check=True)
    _enabled = True
    return True


def span(name: str, attributes: Mapping[str, Any] | None = None, *, parent: Mapping[str, Any] | None = None) -> Any:
    """A context manager recording span ``name`` (a no-op while tracing is off).

    ``parent``: a carrier (task metadata) holding a ``traceparent`` to continue instead of the
    current span. The span is marked as an error when the block raises.
    """
    if not _enabled:
        return _NULL
    return _span(name, attributes, parent)


@contextmanager
def _span(name: str, attributes: Mapping[str, Any] | None, parent: Mapping[str, Any] | None) -> Iterator[Any]:
    from opentelemetry import propagate, trace

    context = propagate.extract(carrier_of(parent)) if parent is not None else None
    tracer = trace.get_tracer("portside.server")
    with tracer.start_as_current_span(name, context=context, attributes=dict(attributes or {})) as current:
        yield current


def inject(metadata: Any) -> Any:
    """Put the current trace context into ``metadata`` (kept when the caller set one already)."""
    if not _enabled or not isinstance(metadata, dict) or "traceparent" in metadata:
        return metadata
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" in carrier:
        metadata = {**metadata, **{k: v for k, v in carrier.items() if k in ("traceparent", "tracestate")}}
    return metadata


def current_trace_id() -> str | None:
    """The 32-hex id of the active trace (None when tracing is off or no span is active)."""
    if not _enabled:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def shutdown() -> None:
    """Turn Portside's spans and the httpx instrumentation off again (tests; apps keep theirs)."""
    global _enabled
    _enabled = False
    try:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    except ImportError:  # pragma: no cover
        return
    instrumentor = HTTPXClientInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
