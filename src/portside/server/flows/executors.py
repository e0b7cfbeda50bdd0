"""Node executors: one async callable per node kind, looked up in a registry.

An executor gets a :class:`NodeCall` and returns the node's output (any JSON value), or raises
:class:`NodeError`. ``task``, ``python`` and ``skill`` use the workers, sandboxes and skills
services found in ``ctx.services`` at call time; when an area is absent the node fails with a
clear error. Other areas may add or replace kinds with :meth:`ExecutorRegistry.register`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from portside.server.agents.service import Agent, AgentService
from portside.server.flows.expr import ExpressionError, evaluate
from portside.server.flows.schema import OPTIONAL_AGENT_KINDS, _NodeFields

_SNIPPET = 300


class NodeError(Exception):
    """A node attempt failed. ``retryable`` errors are retried per the node's policy."""

    def __init__(
        self, message: str, *, retryable: bool = False, code: str = "node_failed", details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code
        self.details: dict[str, Any] = details or {}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable, "details": self.details}


@dataclass
class NodeCall:
    """Everything an executor may use for one attempt of one node."""

    execution_id: str
    flow_id: str
    node_id: str
    spec: _NodeFields
    input: Any
    scope: Mapping[str, Any]
    attempt: int
    timeout: float
    owner: str
    max_attempts: int | None
    external_ref: str | None
    set_external_ref: Callable[[str | None], Awaitable[None]]
    is_shutting_down: Callable[[], bool]
    services: Mapping[str, Any] = field(default_factory=dict)
    http: httpx.AsyncClient | None = None

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and resumes of this node: lets the callee de-duplicate."""
        return f"{self.execution_id}:{self.node_id}"


NodeExecutor = Callable[[NodeCall], Awaitable[Any]]


class ExecutorRegistry:
    """Node kind -> executor."""

    def __init__(self) -> None:
        self._executors: dict[str, NodeExecutor] = {}
        self._missing: dict[str, str] = {}

    def register(self, kind: str, executor: NodeExecutor) -> None:
        """Install (or replace) the executor of ``kind``."""
        self._executors[kind] = executor
        self._missing.pop(kind, None)

    def mark_unavailable(self, kind: str, reason: str) -> None:
        """Declare ``kind`` known but not runnable here, with the reason shown on failure."""
        if kind not in self._executors:
            self._missing[kind] = reason

    def disable(self, kind: str, reason: str) -> NodeExecutor | None:
        """Stop running ``kind`` here (nodes fail with ``reason``); returns the removed executor."""
        removed = self._executors.pop(kind, None)
        self._missing[kind] = reason
        return removed

    def get(self, kind: str) -> NodeExecutor | None:
        return self._executors.get(kind)

    def unavailable_reason(self, kind: str) -> str:
        return self._missing.get(kind) or f"no executor for node kind '{kind}' on this server"

    def kinds(self) -> dict[str, bool]:
        """Every known kind and whether it can run here."""
        return {**{k: False for k in self._missing}, **{k: True for k in self._executors}}


# ---------------------------------------------------------------- built-in executors


async def passthrough(call: NodeCall) -> Any:
    """input / output / noop nodes without an agent: the node's input is its output."""
    return call.input


async def condition(call: NodeCall) -> Any:
    """Evaluate ``expression``; downstream nodes test ``nodes.<id>.output.result`` in ``when``."""
    try:
        value = evaluate(call.spec.expression or "", {**call.scope, "input": call.scope.get("input")})
    except ExpressionError as exc:
        raise NodeError(f"condition failed: {exc}", code="expression_error") from None
    return {"result": bool(value), "value": value}


class TaskBackend(Protocol):
    """What the ``task`` kind needs from the workers area."""

    async def submit_task(self, capability: str, input: Any, **kwargs: Any) -> Any: ...
    async def wait_task(self, task_id: str, **kwargs: Any) -> Any: ...
    async def cancel_task(self, task_id: str, **kwargs: Any) -> Any: ...


class AgentExecutor:
    """Calls registered agents: ``POST <endpoint>/execute`` or a worker capability."""

    def __init__(self, agents: AgentService, tasks: Callable[[], Any]) -> None:
        self.agents = agents
        self._tasks = tasks

    async def __call__(self, call: NodeCall) -> Any:
        agent_id = call.spec.agent_id
        if not agent_id:
            if call.spec.type in OPTIONAL_AGENT_KINDS:
                return call.input
            raise NodeError(f"node kind '{call.spec.type}' needs an agent_id", code="invalid_node")
        agent = await self.agents.find(agent_id)
        if agent is None:
            raise NodeError(f"agent '{agent_id}' is not registered", code="agent_not_found")
        if not agent.is_active:
            raise NodeError(f"agent '{agent_id}' is inactive", code="agent_inactive")
        payload = {
            "execution_id": call.execution_id,
            "flow_id": call.flow_id,
            "node_id": call.node_id,
            "input": call.input,
            "config": {**agent.configuration, **call.spec.config},
        }
        if agent.capability:
            backend = self._tasks()
            if backend is None:
                raise NodeError(
                    f"agent '{agent_id}' is served by worker capability '{agent.capability}', "
                    "but the workers area is not installed on this server",
                    code="executor_unavailable",
                )
            result = await run_worker_task(call, backend, agent.capability, payload)
            return _unwrap(result)
        if agent.endpoint:
            return await self._http(call, agent, {**payload, "attempt": call.attempt})
        raise NodeError(f"agent '{agent_id}' has neither an endpoint nor a worker capability", code="agent_unbound")

    async def _http(self, call: NodeCall, agent: Agent, payload: dict[str, Any]) -> Any:
        assert call.http is not None
        url = f"{agent.endpoint}/execute"
        headers = {
            "Idempotency-Key": call.idempotency_key,
            "X-Portside-Execution-Id": call.execution_id,
            "X-Portside-Node-Id": call.node_id,
            "X-Portside-Attempt": str(call.attempt),
        }
        try:
            response = await call.http.post(url, json=payload, headers=headers, timeout=call.timeout)
        except httpx.TimeoutException:
            raise NodeError(
                f"agent '{agent.id}' timed out after {call.timeout:g}s", retryable=True, code="agent_timeout"
            ) from None
        except httpx.TransportError as exc:
            raise NodeError(
                f"cannot reach agent '{agent.id}' at {url}: {type(exc).__name__}: {exc}",
                retryable=True,
                code="agent_unreachable",
            ) from None
        text = response.text[:_SNIPPET]
        if response.status_code >= 400:
            retryable = response.status_code >= 500 or response.status_code in {408, 425, 429}
            raise NodeError(
                f"agent '{agent.id}' answered HTTP {response.status_code}: {text}",
                retryable=retryable,
                code="agent_error",
                details={"status": response.status_code, "body": text},
            )
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError:
            raise NodeError(f"agent '{agent.id}' returned non-JSON: {text}", code="agent_bad_response") from None
        return _unwrap(body)


def _unwrap(body: Any) -> Any:
    """AI Spine agents answer ``{"output": {...}}``; anything else is the output itself."""
    if isinstance(body, dict) and "output" in body:
        return body["output"]
    return body


async def run_worker_task(call: NodeCall, backend: Any, capability: str, task_input: Any) -> Any:
    """Submit (or re-attach to) a worker task, wait for it, cancel it if the node is cancelled.

    Retries of worker-backed nodes are the workers service's redeliveries (``max_attempts`` from
    the node's retry policy); the idempotency key is stable, so a resumed node finds its task again.
    """
    task_id = call.external_ref
    if task_id is None:
        try:
            task = await backend.submit_task(
                capability,
                task_input,
                idempotency_key=call.idempotency_key,
                timeout_s=call.timeout,
                owner=call.owner,
                max_attempts=call.max_attempts,
                metadata={"execution_id": call.execution_id, "node_id": call.node_id, "flow_id": call.flow_id},
                workflow_id=call.execution_id,
            )
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise NodeError(f"cannot submit a task on '{capability}': {message}", code="task_submit_failed") from None
        task_id = str(_field(task, "id"))
        await call.set_external_ref(task_id)
    try:
        task = await backend.wait_task(task_id, timeout=call.timeout)
    except asyncio.CancelledError:
        if not call.is_shutting_down():
            await _quiet_cancel(backend, task_id)
        raise
    except Exception as exc:
        raise NodeError(f"task {task_id} on '{capability}': {exc}", code="task_error") from None
    status = str(_field(task, "status") or "")
    if status in {"succeeded", "completed"}:
        return _field(task, "output")
    if status in {"failed", "cancelled"}:
        error = _field(task, "error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise NodeError(
            f"task {task_id} on '{capability}' {status}: {message or 'no details'}",
            code="task_failed",
            details={"task_id": task_id, "status": status, "error": error if isinstance(error, dict) else None},
        )
    await _quiet_cancel(backend, task_id)
    raise NodeError(
        f"task {task_id} on '{capability}' did not finish within {call.timeout:g}s",
        code="task_timeout",
        details={"task_id": task_id, "status": status},
    )


async def _quiet_cancel(backend: Any, task_id: str) -> None:
    try:
        await asyncio.shield(backend.cancel_task(task_id))
    except Exception:  # the task may already be finished; nothing else to do
        pass


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


class TaskExecutor:
    """``task`` nodes: run the node's input as a worker task on ``capability``."""

    def __init__(self, tasks: Callable[[], Any]) -> None:
        self._tasks = tasks

    async def __call__(self, call: NodeCall) -> Any:
        backend = self._tasks()
        if backend is None:
            raise NodeError(
                "node kind 'task' needs the workers area, which is not installed on this server",
                code="executor_unavailable",
            )
        return await run_worker_task(call, backend, call.spec.capability or "", call.input)


OUTPUT_MARKER = "__PORTSIDE_FLOW_OUTPUT__"


def _caller(owner: str) -> Any:
    from portside.server.auth import Principal

    return Principal(key_id="flow-engine", name="flow engine", owner=owner, scopes=frozenset({"read", "write"}))


def python_program(code: str, node_input: Any) -> str:
    """The cell run in the sandbox: ``input`` is bound, the code may set ``output``."""
    literal = json.dumps(json.dumps(node_input, default=str))
    return (
        f"import json as _ps_json\ninput = _ps_json.loads({literal})\noutput = None\n"
        f"{code}\n"
        f"print({OUTPUT_MARKER!r} + _ps_json.dumps(output, default=str))\n"
    )


class PythonExecutor:
    """``python`` nodes: run ``code`` in a fresh sandbox; ``input`` is bound, ``output`` is returned.

    The sandbox is deleted afterwards, and at once on cancellation (which interrupts the kernel).
    """

    def __init__(self, services: Mapping[str, Any]) -> None:
        self.services = services

    async def __call__(self, call: NodeCall) -> Any:
        sandboxes = self.services.get("sandboxes")
        if sandboxes is None:
            raise NodeError(
                "node kind 'python' needs the sandboxes area, which is not installed on this server",
                code="executor_unavailable",
            )
        caller = _caller(call.owner)
        if call.external_ref:  # a sandbox left behind by an interrupted attempt
            await _quiet(sandboxes.delete(caller, call.external_ref))
        profile = str(call.spec.config.get("profile", "python-default"))
        try:
            box = await sandboxes.create(caller, profile=profile, ttl=int(call.timeout) + 120)
        except Exception as exc:
            raise NodeError(
                f"cannot create a sandbox: {getattr(exc, 'message', exc)}", retryable=True, code="sandbox_error"
            ) from None
        await call.set_external_ref(box.id)
        try:
            result = await sandboxes.exec_python(
                caller, box.id, python_program(call.spec.code or "", call.input), timeout=call.timeout
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise NodeError(f"python node: {getattr(exc, 'message', exc)}", code="python_error") from None
        finally:
            await _quiet(asyncio.shield(sandboxes.delete(caller, box.id)))
            await call.set_external_ref(None)
        stdout = str(result.output or "")
        if not result.success:
            raise NodeError(
                f"python node raised: {(result.error or '').strip()[-2000:]}",
                code="python_error",
                details={"stdout": stdout[-4000:]},
            )
        logs, marker, tail = stdout.rpartition(OUTPUT_MARKER)
        if not marker:
            return {"stdout": stdout}
        value = json.loads(tail.strip().splitlines()[0] if tail.strip() else "null")
        return value if value is not None else {"stdout": logs}


class SkillExecutor:
    """``skill`` nodes: run the active release of skill ``key`` (``key@stage`` picks a stage)."""

    def __init__(self, services: Mapping[str, Any]) -> None:
        self.services = services

    async def __call__(self, call: NodeCall) -> Any:
        skills = self.services.get("skills")
        if skills is None:
            raise NodeError(
                "node kind 'skill' needs the skills area, which is not installed on this server",
                code="executor_unavailable",
            )
        key, _, stage = (call.spec.skill or "").partition("@")
        try:
            result = await skills.run_skill(
                _caller(call.owner),
                key,
                input=call.input,
                stage=stage or call.spec.config.get("stage"),
                timeout=call.timeout,
            )
        except Exception as exc:
            raise NodeError(f"skill '{key}': {getattr(exc, 'message', exc)}", code="skill_error") from None
        if not result.success:
            raise NodeError(
                f"skill '{key}' v{result.version} failed: {result.error or 'no details'}",
                code="skill_failed",
                details={"run_id": result.run_id, "release_id": result.release_id},
            )
        return result.result if result.result is not None else {"output": result.output}


async def _quiet(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:  # best-effort clean-up
        pass


def output_size(value: Any) -> int:
    """Bytes of ``value`` as stored JSON."""
    return len(json.dumps(value, separators=(",", ":"), default=str))


def default_registry(agents: AgentService, services: Mapping[str, Any]) -> ExecutorRegistry:
    """The built-in executors; ``python`` and ``skill`` wait for their areas."""
    registry = ExecutorRegistry()

    def tasks() -> Any:
        return services.get("workers")

    agent = AgentExecutor(agents, tasks)
    for kind in ("processor", "agent", "input", "output", "conditional"):
        registry.register(kind, agent)
    registry.register("noop", passthrough)
    registry.register("condition", condition)
    registry.register("task", TaskExecutor(tasks))
    registry.register("python", PythonExecutor(services))
    registry.register("skill", SkillExecutor(services))
    return registry
