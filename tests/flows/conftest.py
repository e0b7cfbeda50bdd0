"""Fixtures for flow tests: local HTTP agents and helpers to register flows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from portside.server.app import create_app
from tests.conftest import ADMIN_KEY, create_pg_database, drop_pg_database, make_settings
from tests.flows.agents import AgentServer, running_agents


@pytest.fixture
def agents() -> Iterator[AgentServer]:
    with running_agents() as server:
        yield server


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database per backend for the flow tests (app start-up is the slow part of a test)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('flows') / 'portside.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def mapi(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client on one app shared by the flow tests (flow ids must differ between tests)."""
    data_dir: Path = tmp_path_factory.mktemp("data")
    app = create_app(make_settings(data_dir, module_db_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://portside.test", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def register_agents(api: httpx.AsyncClient, server: AgentServer, *names: str) -> None:
    """Register (or re-point) agents ``names`` at ``server``."""
    for name in names:
        r = await api.post("/v1/agents", json={"id": name, "name": name, "endpoint": server.endpoint(name)})
        if r.status_code == 409:
            r = await api.patch(f"/v1/agents/{name}", json={"endpoint": server.endpoint(name)})
        assert r.status_code in (200, 201), r.text


async def wait_done(api: httpx.AsyncClient, execution_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """Long-poll until the execution finishes."""
    deadline = time.monotonic() + timeout
    while True:
        r = await api.get(f"/v1/executions/{execution_id}/wait", params={"timeout": 5})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in {"completed", "failed", "cancelled"}:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"execution did not finish: {body['status']}")
        await asyncio.sleep(0)


def chain(flow_id: str, agent: str, n: int, **extra: Any) -> dict[str, Any]:
    """input -> n agent nodes in a row -> output."""
    nodes: list[dict[str, Any]] = [{"id": "in", "type": "input"}]
    prev = "in"
    for i in range(n):
        nodes.append({"id": f"a{i}", "type": "processor", "agent_id": agent, "depends_on": [prev]})
        prev = f"a{i}"
    nodes.append({"id": "out", "type": "output", "depends_on": [prev]})
    return {"flow_id": flow_id, "name": flow_id, "nodes": nodes, **extra}
