"""``portside.Worker``: serve typed capabilities with decorated async handlers.

::

    worker = portside.Worker(worker_id="resizer-1")

    @worker.handler("acme/images/resize", concurrency=4,
                    input_schema={"type": "object", "required": ["url"]})
    async def resize(input: dict, ctx: portside.TaskContext) -> dict:
        await ctx.progress(50, "downloaded")
        if ctx.cancelled.is_set():
            ...
        return {"url": "..."}

    await worker.run()          # until cancelled; or: await worker.start() ... await worker.stop()
    worker.run_forever()        # from a script: says when it connects, ends cleanly on Ctrl-C

The worker keeps one event stream open (``GET /v1/workers/{id}/events``), registers its
capabilities after every (re)connect, runs each lease in its own task, batches acks/nacks, sends
heartbeats that renew its leases, reconnects with exponential backoff, refreshes its token on 401
and, on ``stop()``, drains in-flight handlers before leaving.

Outcomes: a returned value is an ack; ``ctx.fail(...)`` / ``raise TaskFailed(...)`` is a terminal
failure; any other exception is retryable (the server redelivers with backoff until the task's
``max_attempts``); a cancel from the server (or ``stop`` timing out) cancels the handler's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import random
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx
from httpx_sse import EventSource

from portside._config import ClientConfig
from portside._tracing import handler_span, valid_traceparent
from portside._version import __version__

__all__ = ["TaskContext", "TaskFailed", "Worker"]

PROTOCOL_VERSION = "1.0.0"
TokenProvider = Callable[[], "str | Awaitable[str]"]
Handler = Callable[[Any, "TaskContext"], Any]
F = TypeVar("F", bound=Handler)


class TaskFailed(Exception):
    """Raise (or call ``ctx.fail``) to fail a task for good: no retry."""

    def __init__(self, reason: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.details = details


@dataclass
class _Capability:
    type: str
    fn: Handler
    concurrency: int
    scope: Any
    input_schema: Any
    output_schema: Any
    lease_ttl_ms: int | None
    description: str
    semaphore: asyncio.Semaphore | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "scope": self.scope, "concurrency": self.concurrency}
        if self.lease_ttl_ms is not None:
            out["leaseTtlMs"] = self.lease_ttl_ms
        if self.input_schema is not None:
            out["inputSchema"] = self.input_schema
        if self.output_schema is not None:
            out["outputSchema"] = self.output_schema
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class _Running:
    ctx: TaskContext
    task: asyncio.Task[None]


class TaskContext:
    """What a handler knows about the task it runs."""

    def __init__(self, worker: Worker, lease: dict[str, Any]) -> None:
        self._worker = worker
        self.lease_id: str = lease["leaseId"]
        self.task_id: str = lease["taskId"]
        self.capability: str = lease["capability"]
        self.attempt: int = int(lease.get("attempt") or 1)
        self.input: Any = lease.get("input")
        self.on_behalf_of: str | None = lease.get("onBehalfOf")
        self.metadata: dict[str, Any] = lease.get("metadata") or {}
        #: The submitter's W3C ``traceparent`` (from the task's metadata), when the server traces.
        self.traceparent: str | None = valid_traceparent(self.metadata.get("traceparent"))
        self.workflow_id: str | None = lease.get("workflowId")
        self.expires_at: str | None = lease.get("expiresAt")
        #: Set when the task is cancelled (by its submitter, a timeout, a lost lease or ``stop``).
        self.cancelled = asyncio.Event()
        self.cancel_reason: str | None = None
        self.log = logging.LoggerAdapter(worker.log, {"lease_id": self.lease_id, "task_id": self.task_id})

    async def progress(self, percent: float | None = None, message: str | None = None, data: Any = None) -> None:
        """Report progress; the submitter sees it on the task. Failures are logged, not raised."""
        await self._worker._post_progress(self.lease_id, percent, message, data)

    def fail(self, reason: str, *, code: str | None = None, details: Any = None) -> NoReturn:
        """Fail the task for good (no retry)."""
        raise TaskFailed(reason, code=code, details=details)


class Worker:
    """A worker process serving one or more capabilities over Portside's lease protocol.

    Arguments fall back to ``PORTSIDE_URL`` / ``PORTSIDE_API_KEY``. ``token`` may be given instead
    of a key: a callable returning a bearer token (sync or async), called again after a 401.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        worker_id: str | None = None,
        token: TokenProvider | None = None,
        labels: dict[str, Any] | None = None,
        heartbeat_interval: float | None = None,
        initial_reconnect_delay: float = 0.25,
        max_reconnect_delay: float = 30.0,
        stream_idle_timeout: float = 60.0,
        request_timeout: float = 30.0,
        drain_timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        config = ClientConfig.resolve(base_url, api_key)
        self.base_url = config.base_url
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.labels = dict(labels or {})
        self.log = logger or logging.getLogger("portside.worker")
        self._api_key = config.api_key
        self._token_provider = token
        self._token: str | None = None
        self._heartbeat_interval = heartbeat_interval
        self._initial_delay = initial_reconnect_delay
        self._max_delay = max_reconnect_delay
        self._idle_timeout = stream_idle_timeout
        self._request_timeout = request_timeout
        self._drain_timeout = drain_timeout
        self._transport = transport
        self._caps: dict[str, _Capability] = {}
        self._running: dict[str, _Running] = {}
        self._results: asyncio.Queue[dict[str, Any]] | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stream_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._started = False
        self._results_idle: asyncio.Event | None = None
        #: Set while the event stream is open and the registration accepted.
        self.registered = asyncio.Event()
        self.reconnects = 0

    # -- handlers -----------------------------------------------------------------------------

    def handler(
        self,
        capability: str,
        *,
        concurrency: int = 1,
        on_behalf_of: str | None = None,
        input_schema: Any = None,
        output_schema: Any = None,
        lease_ttl: float | None = None,
        description: str = "",
    ) -> Callable[[F], F]:
        """Decorator: serve ``capability`` with the decorated ``async def fn(input, ctx)``.

        ``on_behalf_of`` limits the worker to tasks submitted for that user (scope); schemas are
        registered with the server (which validates before dispatch and on ack) and checked here.
        ``lease_ttl`` (seconds) is how long a lease survives without heartbeats.
        """

        def deco(fn: F) -> F:
            self.add_handler(
                capability,
                fn,
                concurrency=concurrency,
                on_behalf_of=on_behalf_of,
                input_schema=input_schema,
                output_schema=output_schema,
                lease_ttl=lease_ttl,
                description=description,
            )
            return fn

        return deco

    def add_handler(
        self,
        capability: str,
        fn: Handler,
        *,
        concurrency: int = 1,
        on_behalf_of: str | None = None,
        input_schema: Any = None,
        output_schema: Any = None,
        lease_ttl: float | None = None,
        description: str = "",
    ) -> None:
        """Serve ``capability`` with ``fn`` (see ``handler``)."""
        if self._started:
            raise RuntimeError("add handlers before start()")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._caps[capability] = _Capability(
            type=capability,
            fn=fn,
            concurrency=concurrency,
            scope={"onBehalfOf": on_behalf_of} if on_behalf_of else "any",
            input_schema=input_schema,
            output_schema=output_schema,
            lease_ttl_ms=int(lease_ttl * 1000) if lease_ttl is not None else None,
            description=description,
        )

    @property
    def in_flight(self) -> int:
        """Handlers running now."""
        return len(self._running)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and register in the background (use ``wait_registered`` to wait for it)."""
        if self._started:
            return
        if not self._caps:
            raise RuntimeError("register at least one handler before start()")
        self._started = True
        self._stopping = False
        for cap in self._caps.values():
            cap.semaphore = asyncio.Semaphore(cap.concurrency)
        self._results = asyncio.Queue()
        self._results_idle = asyncio.Event()
        self._results_idle.set()
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self._request_timeout,
            transport=self._transport,
            headers={"User-Agent": f"portside-worker/{__version__}"},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self._stream_task = asyncio.create_task(self._stream_loop(), name="portside-worker-stream")
        self._tasks = [
            asyncio.create_task(self._results_loop(), name="portside-worker-results"),
            asyncio.create_task(self._heartbeat_loop(), name="portside-worker-heartbeat"),
        ]

    async def wait_registered(self, timeout: float | None = None) -> None:
        """Wait until the server accepted the registration."""
        await asyncio.wait_for(self.registered.wait(), timeout)

    async def stop(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop taking leases; let running handlers finish (up to ``timeout``), then leave.

        Handlers still running at the deadline are cancelled and their tasks go back to the queue.
        """
        if not self._started or self._stopping:
            return
        self._stopping = True
        self.registered.clear()
        if self._stream_task is not None:  # no new leases from here on
            self._stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stream_task
        deadline = self._drain_timeout if timeout is None else timeout
        running = [r.task for r in self._running.values()]
        if running and drain:
            _, pending = await asyncio.wait(running, timeout=deadline)
            for task in pending:
                self._cancel_lease(self._lease_of(task), "worker stopping")
            if pending:
                await asyncio.wait(pending, timeout=5)
        elif running:
            for lease_id in list(self._running):
                self._cancel_lease(lease_id, "worker stopping")
            await asyncio.wait(running, timeout=5)
        await self._flush_results(timeout=10)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._started = False

    async def run(self) -> None:
        """Start, serve until cancelled (e.g. Ctrl-C), then drain and stop."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.stop())

    def run_forever(self) -> None:
        """Serve from a script until Ctrl-C or SIGTERM: log connects to stderr, drain, return cleanly."""
        import signal

        if not self.log.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s portside-worker %(message)s", "%H:%M:%S"))
            self.log.addHandler(handler)
            if self.log.level == logging.NOTSET or self.log.level > logging.INFO:
                self.log.setLevel(logging.INFO)

        async def serve() -> None:
            main = asyncio.current_task()
            loop = asyncio.get_running_loop()
            if main is not None:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signal.SIGTERM, main.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await self.run()

        try:
            asyncio.run(serve())
        except KeyboardInterrupt:
            pass
        self.log.info("worker %s stopped", self.worker_id)

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _lease_of(self, task: asyncio.Task[None]) -> str:
        for lease_id, running in self._running.items():
            if running.task is task:
                return lease_id
        return ""

    # -- HTTP ---------------------------------------------------------------------------------

    async def _auth(self, refresh: bool = False) -> dict[str, str]:
        if self._token_provider is not None:
            if refresh or self._token is None:
                value = self._token_provider()
                self._token = await value if inspect.isawaitable(value) else value
            return {"Authorization": f"Bearer {self._token}"}
        if self._api_key:
            return {"Authorization": f"Bearer {self._api_key}"}
        return {}

    async def _post(self, path: str, body: Any) -> httpx.Response:
        """POST with one token refresh on 401."""
        assert self._client is not None
        response = await self._client.post(path, json=body, headers=await self._auth())
        if response.status_code == 401:
            response = await self._client.post(path, json=body, headers=await self._auth(refresh=True))
        return response

    def _path(self, suffix: str) -> str:
        return f"/v1/workers/{quote(self.worker_id, safe='')}/{suffix}"

    # -- the event stream ---------------------------------------------------------------------

    async def _stream_loop(self) -> None:
        attempt = 0
        refresh = False
        while not self._stopping:
            try:
                opened = await self._consume_stream(refresh)
                refresh = opened == "unauthorized"
                if opened == "opened":
                    attempt = 0
                    continue_fast = False
                else:
                    continue_fast = refresh
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.warning("worker stream error: %s", exc)
                continue_fast = False
            self.registered.clear()
            if self._stopping:
                return
            if continue_fast:
                continue
            delay = min(self._max_delay, self._initial_delay * (2**attempt))
            attempt += 1
            self.reconnects += 1
            await asyncio.sleep(random.uniform(delay / 2, delay))

    async def _consume_stream(self, refresh: bool) -> str:
        assert self._client is not None
        headers = {**(await self._auth(refresh=refresh)), "Accept": "text/event-stream", "Cache-Control": "no-store"}
        timeout = httpx.Timeout(self._request_timeout, read=self._idle_timeout)
        async with self._client.stream("GET", self._path("events"), headers=headers, timeout=timeout) as response:
            if response.status_code == 401 and not refresh:
                return "unauthorized"
            if response.status_code >= 400:
                await response.aread()
                self.log.warning("worker stream refused: %s %s", response.status_code, response.text[:300])
                return "refused"
            register = asyncio.create_task(self._register())
            try:
                async for sse in EventSource(response).aiter_sse():
                    if sse.data:
                        self._on_event(sse.event, sse.data)
            finally:
                register.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await register
            return "opened"

    async def _register(self) -> None:
        body = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": [c.wire() for c in self._caps.values()],
            "labels": self.labels,
        }
        response = await self._post(self._path("register"), body)
        if response.status_code >= 400:
            self.log.error("registration refused: %s %s", response.status_code, response.text[:500])
            return
        data = response.json()
        if self._heartbeat_interval is None and data.get("heartbeatIntervalMs"):
            self._heartbeat_interval = data["heartbeatIntervalMs"] / 1000
        serving = ", ".join(f"{c.type} (concurrency {c.concurrency})" for c in self._caps.values())
        self.log.info("worker %s connected to %s, serving %s", self.worker_id, self.base_url, serving)
        self.registered.set()

    def _on_event(self, event: str, raw: str) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            self.log.warning("dropped malformed frame %r", raw[:200])
            return
        kind = frame.get("type", event) if isinstance(frame, dict) else event
        if kind == "leases":
            for lease in frame.get("leases", []):
                self._start_lease(lease)
        elif kind == "cancel":
            self._cancel_lease(str(frame.get("leaseId")), str(frame.get("reason") or "cancelled"))
        elif kind == "registered":
            self.registered.set()
        elif kind == "disconnect":
            self.log.info("server closing the stream: %s", frame.get("reason"))

    # -- leases -------------------------------------------------------------------------------

    def _start_lease(self, lease: dict[str, Any]) -> None:
        cap = self._caps.get(lease.get("capability", ""))
        if cap is None or self._stopping:
            self._queue_result(
                {
                    "leaseId": lease["leaseId"],
                    "type": "nack",
                    "kind": "retryable",
                    "reason": "worker stopping" if cap else "no handler for this capability",
                }
            )
            return
        ctx = TaskContext(self, lease)
        task = asyncio.create_task(self._run_lease(cap, ctx, lease), name=f"lease-{ctx.lease_id}")
        self._running[ctx.lease_id] = _Running(ctx=ctx, task=task)
        task.add_done_callback(lambda _t: self._running.pop(ctx.lease_id, None))

    def _cancel_lease(self, lease_id: str, reason: str) -> None:
        running = self._running.get(lease_id)
        if running is None:
            return
        running.ctx.cancel_reason = reason
        running.ctx.cancelled.set()
        running.task.cancel()

    async def _run_lease(self, cap: _Capability, ctx: TaskContext, lease: dict[str, Any]) -> None:
        assert cap.semaphore is not None
        result: dict[str, Any]
        with handler_span(ctx.capability, ctx.task_id, ctx.attempt, ctx.metadata) as span:
            try:
                async with cap.semaphore:
                    result = await self._handle(cap, ctx, lease)
            except asyncio.CancelledError:
                result = _nack(ctx, "cancelled", ctx.cancel_reason or "handler cancelled", "CANCELLED")
            except TaskFailed as exc:
                result = _nack(ctx, "terminal", exc.reason or "failed", exc.code or "HANDLER_TERMINAL", exc.details)
            except Exception as exc:
                if ctx.cancelled.is_set():
                    result = _nack(ctx, "cancelled", ctx.cancel_reason or "handler cancelled", "CANCELLED")
                else:
                    ctx.log.warning("handler raised %r; the task will be retried", exc)
                    result = _nack(ctx, "retryable", str(exc) or type(exc).__name__, "HANDLER_THREW")
            if span.traceparent and ctx.traceparent:  # a tracing server records the result under this span
                result["traceparent"] = span.traceparent
                if result["type"] == "nack":
                    span.fail(str(result.get("reason") or result.get("kind")))
        self._queue_result(result)

    async def _handle(self, cap: _Capability, ctx: TaskContext, lease: dict[str, Any]) -> dict[str, Any]:
        """Check the input, run the handler and check its output: the ack or schema nack to post."""
        errors = _schema_errors(lease.get("inputSchema") or cap.input_schema, ctx.input)
        if errors:
            return _nack(ctx, "schema-mismatch", "input does not match inputSchema", "INPUT_SCHEMA_MISMATCH", errors)
        value = cap.fn(ctx.input, ctx)
        output = await value if inspect.isawaitable(value) else value
        errors = _schema_errors(lease.get("outputSchema") or cap.output_schema, output)
        if errors:
            return _nack(ctx, "schema-mismatch", "output does not match outputSchema", "OUTPUT_SCHEMA_MISMATCH", errors)
        return {"leaseId": ctx.lease_id, "type": "ack", "output": output}

    def _queue_result(self, result: dict[str, Any]) -> None:
        assert self._results is not None and self._results_idle is not None
        self._results_idle.clear()
        self._results.put_nowait(result)

    async def _results_loop(self) -> None:
        """Post acks/nacks; whatever queued while a POST was in flight goes in the next one."""
        assert self._results is not None and self._results_idle is not None
        attempt = 0
        pending: list[dict[str, Any]] = []
        while True:
            if not pending:
                if self._results.empty():
                    self._results_idle.set()
                pending.append(await self._results.get())
            while not self._results.empty() and len(pending) < 500:
                pending.append(self._results.get_nowait())
            try:
                response = await self._post(self._path("results"), {"results": pending})
            except httpx.HTTPError as exc:
                attempt += 1
                self.log.warning("posting %d results failed (%s); retrying", len(pending), exc)
                await asyncio.sleep(min(self._max_delay, self._initial_delay * 2**attempt))
                continue
            if response.status_code >= 500 or response.status_code in (401, 429):
                attempt += 1
                await asyncio.sleep(min(self._max_delay, self._initial_delay * 2**attempt))
                continue
            attempt = 0
            if response.status_code >= 400:
                self.log.error("results rejected: %s %s", response.status_code, response.text[:500])
            else:
                for item in response.json().get("results", []):
                    if item.get("error"):
                        self.log.warning("result for lease %s rejected: %s", item.get("leaseId"), item["error"])
            pending = []

    async def _flush_results(self, timeout: float) -> None:
        if self._results_idle is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._results_idle.wait(), timeout)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval or 10.0)
            if not self._running and not self.registered.is_set():
                continue
            try:
                response = await self._post(self._path("heartbeat"), {"inFlight": list(self._running)})
                if response.status_code < 400:
                    for lease_id in response.json().get("ended", []):
                        self._cancel_lease(lease_id, "lease lost")
            except httpx.HTTPError as exc:
                self.log.warning("heartbeat failed: %s", exc)

    async def _post_progress(self, lease_id: str, percent: float | None, message: str | None, data: Any) -> None:
        try:
            response = await self._post(
                self._path("progress"), {"leaseId": lease_id, "percent": percent, "message": message, "data": data}
            )
            if response.status_code >= 400:
                self.log.warning("progress rejected: %s %s", response.status_code, response.text[:300])
        except httpx.HTTPError as exc:
            self.log.warning("progress failed: %s", exc)


def _nack(ctx: TaskContext, kind: str, reason: str, code: str, details: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"leaseId": ctx.lease_id, "type": "nack", "kind": kind, "reason": reason[:5000], "code": code}
    if details is not None:
        out["details"] = details if isinstance(details, dict) else {"errors": details}
    return out


def _schema_errors(schema: Any, value: Any) -> list[str] | None:
    """Client-side JSON Schema check (skipped when jsonschema is not installed)."""
    if not schema or schema is True:
        return None
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
    except ImportError:  # pragma: no cover - the server validates anyway
        return None
    except Exception as exc:
        return [f"invalid schema: {exc}"]
    errors = [e.message for e in validator.iter_errors(value)]
    return errors[:10] or None


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    import jsonschema

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)
