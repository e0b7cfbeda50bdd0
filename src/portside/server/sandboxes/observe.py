"""Metrics and spans around sandbox creates and execs (cheap when tracing is off)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from portside.server import tracing
from portside.server.metrics.instruments import (
    SANDBOX_CREATE_DURATION,
    SANDBOX_CREATES,
    SANDBOX_EXEC_DURATION,
    SANDBOX_EXECS,
)


@contextmanager
def observe_create(driver: str, profile: str) -> Iterator[None]:
    """Time one sandbox creation; an exception counts as outcome ``error``."""
    started = time.perf_counter()
    outcome = "error"
    with tracing.span("sandbox.create", {"portside.sandbox.driver": driver, "portside.sandbox.profile": profile}):
        try:
            yield
            outcome = "ok"
        finally:
            SANDBOX_CREATE_DURATION.labels(driver, profile).observe(time.perf_counter() - started)
            SANDBOX_CREATES.labels(driver, profile, outcome).inc()


class ExecOutcome:
    """Set by the caller once the runtime answered: ``ok``, ``failed`` or ``timeout`` (default ``error``)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = "error"

    def of(self, success: bool, timed_out: bool) -> None:
        self.value = "timeout" if timed_out else ("ok" if success else "failed")


@contextmanager
def observe_exec(driver: str, profile: str, kind: str, sandbox_id: str) -> Iterator[ExecOutcome]:
    """Time one execution in a sandbox's runtime, with a ``sandbox.exec`` span when tracing."""
    started = time.perf_counter()
    outcome = ExecOutcome()
    attributes = {"portside.sandbox.id": sandbox_id, "portside.sandbox.profile": profile, "portside.exec.kind": kind}
    with tracing.span("sandbox.exec", attributes) as span:
        try:
            yield outcome
        finally:
            SANDBOX_EXEC_DURATION.labels(driver, profile, kind).observe(time.perf_counter() - started)
            SANDBOX_EXECS.labels(driver, profile, kind, outcome.value).inc()
            if span is not None:
                span.set_attribute("portside.exec.outcome", outcome.value)
