"""Every JSON 2xx answer of the flows/executions/agents, reviews, signing, secrets, knowledge, MCP hub,
inputs, agent deployments, metrics, AI Spine, Symbiont and neuron routes has a concrete schema in
``/openapi.json``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from portside.server.app import create_app
from portside.server.settings import Settings

#: Path patterns of the routes this test covers.
AREAS = [
    r"^/v1/(flows|executions|agents|reviews|analyses|signing-keys|secrets|secret-backend|audit/secrets|knowledge)\b",
    r"^/v1/(mcp-servers|mcp-tools|mcp-resources|mcp-calls|inputs|symbiont-agents|agent-deployments|metrics)\b",
    r"^/\.well-known/schemapin",
    r"^/(flows|executions|agents|health|metrics|status)\b",
    r"^/api/v1/(users|user)/",
    # The Symbiont door (tool review, secrets, agents and deployments, DSL, health, metrics).
    r"^/api/v1/(tool-review|secrets|agents|dsl|health|metrics)\b",
    # ... knowledge and RAG, MCP, HTTP inputs, workflows.
    r"^/api/v1/(knowledge|rag|mcp|http-input|workflows)\b",
    # The neuron door (its SSE stream is declared with the streaming routes) and its token exchange.
    r"^/neuron/",
    r"^/api/v1/auth/token$",
]
#: Not JSON documents: server-sent events, Prometheus text, and webhooks (their reply is the target's own).
NOT_JSON = {
    ("get", "/v1/executions/{execution_id}/events"),
    ("get", "/metrics/prometheus"),
    ("get", "/neuron/events"),
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir: Path = tmp_path_factory.mktemp("openapi")
    return create_app(Settings(data_dir=data_dir)).openapi()


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        return dict(spec["components"]["schemas"][ref.rsplit("/", 1)[1]])
    return schema


def _concrete(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = _resolve(spec, schema)
    if schema.get("type") == "array":
        return _concrete(spec, schema.get("items") or {})
    if "anyOf" in schema:
        return all(_concrete(spec, s) for s in schema["anyOf"] if s.get("type") != "null")
    if schema.get("type") in {"string", "integer", "number", "boolean"}:
        return True
    return schema.get("type") == "object" and bool(schema.get("properties"))


def _covered(spec: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for path, ops in spec["paths"].items():
        if not any(re.search(p, path) for p in AREAS):
            continue
        for method, op in ops.items():
            if (method, path) in NOT_JSON:
                continue
            for code, response in op["responses"].items():
                if code.startswith("2") and "content" in response:
                    schema = response["content"].get("application/json", {}).get("schema", {})
                    out.append((method, path, code, schema))
    return out


def test_the_areas_have_routes(spec: dict[str, Any]) -> None:
    assert len(_covered(spec)) > 100


def test_every_dialect_door_route_is_covered(spec: dict[str, Any]) -> None:
    """The Symbiont, AI Spine and neuron doors (``/api/...``, ``/neuron/...``) are all in :data:`AREAS`."""
    doors = [p for p in spec["paths"] if p.startswith(("/api/", "/neuron/"))]
    assert doors
    assert [p for p in doors if not any(re.search(a, p) for a in AREAS)] == []


def test_every_json_success_has_a_concrete_schema(spec: dict[str, Any]) -> None:
    weak = [f"{m.upper()} {p} {c}" for m, p, c, s in _covered(spec) if not _concrete(spec, s)]
    assert weak == []


def test_wire_models_keep_unknown_keys_and_add_none() -> None:
    """``WireRoute`` + ``WireModel``: the body is exactly what the handler returned."""
    from fastapi import APIRouter, FastAPI
    from fastapi.testclient import TestClient

    from portside.server.api.wire import WireModel, WireRoute

    class Shape(WireModel):
        a: int
        b: str | None = None
        c: list[int] = []

    router = APIRouter(route_class=WireRoute)

    @router.get("/x", response_model=Shape)
    async def x() -> dict[str, Any]:
        return {"a": 1, "extra": {"k": [1, 2]}}

    app = FastAPI()
    app.include_router(router)
    assert TestClient(app).get("/x").json() == {"a": 1, "extra": {"k": [1, 2]}}
