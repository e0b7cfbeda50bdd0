"""An in-memory OpenTelemetry exporter for the process, and tracing switched on only inside a test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from portside.server import tracing

_EXPORTER = InMemorySpanExporter()


def _install() -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_portside_test_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._portside_test_exporter = True  # type: ignore[attr-defined]


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on (``PORTSIDE_TRACING=1``) for apps created in the test; their spans land here."""
    _install()
    _EXPORTER.clear()
    monkeypatch.setenv("PORTSIDE_TRACING", "1")
    try:
        yield _EXPORTER
    finally:
        tracing.shutdown()
        _EXPORTER.clear()
