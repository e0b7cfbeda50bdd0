"""Issue 13, bad input is never a 5xx: schemathesis over every operation of the live app.

A real server on a loopback port (SQLite, the bwrap driver, an admin key). Every operation in
``/openapi.json`` gets a few schema-conforming requests, and operations with a body or query get a
few schema-violating ones too. Any 500 fails, and so does any other 5xx without a stable error code; a
502/503/504 carrying a stable code is the server truthfully reporting an upstream the fuzzer itself
configured (an OS keyring on a machine without one, a Vault address where nothing listens). The budget is
bounded by examples per operation (a minute or two on 2 cores). Every schemathesis check runs
(``--checks all`` but response time), and any finding fails the test.

The server must never be made to reach outside this machine: every string the fuzzer puts under a key that
names an outbound target (a URL, an endpoint, a command) is replaced with a closed loopback port or
``/bin/false`` before the request is sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode

from tests.conftest import ADMIN_KEY, LiveServer, make_settings

EXAMPLES = 3
CHECKS_ALL: list[Any] = []

#: ``positive_data_acceptance`` (a schema-valid request must not get a 4xx other than 401/403/404/409/429,
#: schemathesis' default: a random id may name nothing, a random name may already exist) holds for every
#: operation: each request schema states the rules its service checks (patterns, enums, bounds,
#: required fields, one-of shapes, 64-bit integers in free-form JSON). These operations keep rules JSON
#: Schema cannot state, so a schema-valid request may still be refused with their stable 400 -- and only
#: these, for exactly that code:
SEMANTIC_400: dict[str, tuple[str, str]] = {
    # a flow is a DAG: dependency ids must name nodes of the flow, no cycles, an entry point that exists
    "POST /flows": ("invalid_flow", "DAG integrity"),
    "POST /v1/flows": ("invalid_flow", "DAG integrity"),
    "POST /v1/flows/validate": ("invalid_flow", "DAG integrity"),
    "PUT /flows/{flow_id}": ("invalid_flow", "DAG integrity"),
    "PUT /v1/flows/{flow_id}": ("invalid_flow", "DAG integrity"),
    # the AI Spine SDK's free-form agent_config (aliases agent_id/agent_type/worker_capability)
    "POST /agents": ("invalid_agent", "free-form agent_config with aliases"),
    # chunk_overlap must be smaller than chunk_size (or its default): a relation between two fields
    "POST /v1/knowledge/batch": ("invalid_chunking", "chunk_overlap < chunk_size"),
    "POST /v1/knowledge": ("invalid_chunking", "chunk_overlap < chunk_size"),
    # source_execution_ids must name executions of this caller (a 400 about the body, not a 404 of the URL)
    "POST /v1/skills/candidates": ("validation_error", "referenced executions exist"),
}
TIMEOUT = 5.0  # streams (SSE) stay open; a request that outlives this is not a server error


OUTBOUND_KEYS = {"url", "endpoint", "base_url", "endpoint_url", "webhook_url", "callback_url", "server_url", "uri"}
COMMAND_KEYS = {"command", "cmd", "executable"}
CLOSED_PORT_URL = "http://127.0.0.1:9/"  # discard port: nothing listens here


def _confine(value: Any) -> Any:
    """Point every outbound target in a generated body at a closed loopback port (see the module docstring)."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = key.lower() if isinstance(key, str) else key
            if name in OUTBOUND_KEYS and isinstance(item, str):
                out[key] = CLOSED_PORT_URL
            elif name in COMMAND_KEYS and isinstance(item, (str, list)):
                out[key] = "/bin/false" if isinstance(item, str) else ["/bin/false"]
            else:
                out[key] = _confine(item)
        return out
    if isinstance(value, list):
        return [_confine(item) for item in value]
    return value


def _server_error(status: int, text: str) -> bool:
    if status < 500:
        return False
    if status in (502, 503, 504):
        try:
            body = json.loads(text)
        except ValueError:
            return True
        code = body.get("code") or (body.get("error") or {}).get("code") if isinstance(body, dict) else None
        return code in (None, "internal_error")
    return True


def _semantic(label: str, response: Any) -> bool:
    """A 400 with the code :data:`SEMANTIC_400` allows for this operation."""
    allowed = SEMANTIC_400.get(label)
    if allowed is None or response.status_code != 400:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else body.get("code") if isinstance(body, dict) else None
    return bool(code == allowed[0])


def _has_inputs(raw: dict[str, Any]) -> bool:
    params = raw.get("parameters", [])
    return "requestBody" in raw or any(p.get("in") == "query" for p in params if isinstance(p, dict))


def all_checks() -> list[Any]:
    """Every check schemathesis has (``--checks all``) but the timing one (a slow shared machine is no bug)."""
    load_all_checks()
    # ``not_a_server_error`` is this test's own 5xx rule (_server_error: a 503 with a stable code is fine).
    skip = {"max_response_time", "not_a_server_error"}
    return [c for c in CHECKS.get_all() if getattr(c, "__name__", "") not in skip]


def _failure_lines(exc: BaseException) -> list[str]:
    found = list(exc.exceptions) if isinstance(exc, FailureGroup) else [exc]
    return [f"{getattr(f, 'title', type(f).__name__)}: {' '.join(str(f).split())[:300]}" for f in found]


def _fuzz(op: Any, mode: GenerationMode, base_url: str, failures: dict[str, list[str]]) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if isinstance(case.body, (dict, list)):
            case.body = _confine(case.body)
        if isinstance(case.query, dict):
            case.query = _confine(case.query)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        try:
            response = case.call(base_url=base_url, headers=headers, timeout=TIMEOUT)
        except requests.Timeout:
            return
        if _server_error(response.status_code, response.text):
            failures.setdefault(op.label, []).append(
                f"{response.status_code} {case.as_curl_command()} -> {response.text[:300]}"
            )
            return
        try:
            # ``headers`` marks the key as the caller's own credentials; the probes some checks send
            # (without a key, with a wrong one) must not get it back through the transport arguments.
            case.validate_response(
                response,
                checks=CHECKS_ALL,
                headers=headers,
                transport_kwargs={"base_url": base_url, "timeout": TIMEOUT},
            )
        except (Failure, FailureGroup) as exc:
            for line in _failure_lines(exc):
                if line.startswith("Schema-valid request rejected") and _semantic(op.label, response):
                    continue
                failures.setdefault(op.label, []).append(
                    f"{line} | {response.status_code} {case.as_curl_command(headers={})} -> {response.text[:200]}"
                )

    run()


@pytest.mark.timeout(900)
def test_no_operation_answers_5xx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The auth checks probe every operation with no key and with wrong keys, all from one address:
    # the failed-authentication lockout (429, tested in test_edge_rate_limits) would answer them instead.
    monkeypatch.setenv("PORTSIDE_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", "0")
    live = LiveServer(make_settings(tmp_path / "data")).start()
    failures: dict[str, list[str]] = {}
    CHECKS_ALL[:] = all_checks()
    try:
        schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 100
        for op in operations:
            modes = [GenerationMode.POSITIVE]
            if _has_inputs(op.definition.raw):
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                try:
                    _fuzz(op, mode, live.url, failures)
                except Unsatisfiable:  # nothing to violate in this operation's schema
                    pass
    finally:
        live.stop()
    assert not failures, json.dumps(failures, indent=1)
