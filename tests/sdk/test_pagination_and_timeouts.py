"""Auto-paginating iterators and ExecutionTimeoutError against a live server."""

from __future__ import annotations

import pytest

import portside
from tests.conftest import ADMIN_KEY, LiveServer

pytestmark = pytest.mark.timeout(120)


def test_iterators_walk_every_page(live_server: LiveServer) -> None:
    with portside.Client(live_server.url, ADMIN_KEY) as client:
        cargos = {client.cargos.create(size_limit_mb=8).id for _ in range(5)}
        assert len(client.cargos.list(limit=2).items) == 2
        assert cargos <= {c.id for c in client.cargos.iter_all(page_size=2)}
        tasks = [client.tasks.submit("acme/pages/walk", {"i": i}).id for i in range(5)]
        walked = [t.id for t in client.tasks.iter_all(capability="acme/pages/walk", page_size=2)]
        assert sorted(walked) == sorted(tasks) and len(walked) == 5


async def test_async_iterators_walk_every_page(live_server: LiveServer) -> None:
    async with portside.AsyncClient(live_server.url, ADMIN_KEY) as client:
        made = {(await client.cargos.create(size_limit_mb=8)).id for _ in range(3)}
        seen = {c.id async for c in client.cargos.iter_all(page_size=1)}
        assert made <= seen


@pytest.mark.bwrap
def test_exec_timeout_raises_execution_timeout_error_with_its_id(live_server: LiveServer) -> None:
    with portside.Client(live_server.url, ADMIN_KEY) as client, client.sandboxes.create(ttl=600) as sbx:
        with pytest.raises(portside.ExecutionTimeoutError) as caught:
            sbx.shell.exec("sleep 5", timeout=1)
        error = caught.value
        assert isinstance(error, portside.APIError) and error.status_code == 504 and error.code == "timeout"
        assert error.execution_id and error.execution_id.startswith("exec")
        assert sbx.get_execution(error.execution_id).success is False
        assert [e.id for e in sbx.iter_history(page_size=1)] == [error.execution_id]
        with pytest.raises(portside.ExecutionTimeoutError) as py_caught:
            sbx.python.exec("import time; time.sleep(5)", timeout=1)
        assert py_caught.value.execution_id == sbx.last_execution(exec_type="python").id
