"""Issue 13, bad input is never a 5xx: schemathesis over every operation of the live app.

A real server on a loopback port (SQLite, the bwrap driver, an admin key). Every operation in
``/openapi.json`` gets a few schema-conforming requests, and operations with a body or query get a
few schema-violating ones too. Any 500 fails, and so does any other 5xx without a stable error code; a
502/503/504 carrying a stable code is the server truthfully reporting an upstream the fuzzer itself
configured (an OS keyring on a machine without one, a Vault address where nothing listens). The budget is
bounded by examples per operation (a few minutes on 2 cores).

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
from schemathesis.generation import GenerationMode

from tests.conftest import ADMIN_KEY, LiveServer, make_settings

EXAMPLES = 3
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


def _has_inputs(raw: dict[str, Any]) -> bool:
    params = raw.get("parameters", [])
    return "requestBody" in raw or any(p.get("in") == "query" for p in params if isinstance(p, dict))


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
        try:
            response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=TIMEOUT)
        except requests.Timeout:
            return
        if _server_error(response.status_code, response.text):
            failures.setdefault(op.label, []).append(
                f"{response.status_code} {case.as_curl_command()} -> {response.text[:300]}"
            )

    run()


@pytest.mark.timeout(900)
def test_no_operation_answers_5xx(tmp_path: Path) -> None:
    live = LiveServer(make_settings(tmp_path / "data")).start()
    failures: dict[str, list[str]] = {}
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
