"""The worker event streams, served by sse-starlette, over a real loopback server.

The bytes are the ones holokai-neuron-sdk and ``portside.Worker`` parse (``\\n`` line endings,
compact JSON, ``: connected`` then ``: ping`` comments); a client that goes away frees its session;
a server that shuts down ends every stream with a ``disconnect`` frame first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, LiveServer, make_settings
from tests.workers.helpers import live, service, until

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
CAP = {"type": "raw/sse", "scope": "any", "concurrency": 1}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = live(make_settings(tmp_path / "data"))
    try:
        yield srv
    finally:
        srv.stop()


async def _events(chunks: AsyncIterator[bytes], buffer: bytearray) -> AsyncIterator[bytes]:
    """Whole events (up to and including the blank line), as raw bytes."""
    while True:
        while b"\n\n" in buffer:
            end = buffer.index(b"\n\n") + 2
            event = bytes(buffer[:end])
            del buffer[:end]
            yield event
        buffer.extend(await asyncio.wait_for(anext(chunks), 10))


def _frame(raw: bytes) -> tuple[str, dict[str, object]]:
    """The event name and JSON of one raw event, checking it is byte-for-byte what we always sent."""
    head, data = raw.split(b"\n", 1)
    assert head.startswith(b"event: ") and data.startswith(b"data: ") and data.endswith(b"\n\n"), raw
    payload = json.loads(data[6:-2])
    assert data == b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return head[7:].decode(), payload


@pytest.mark.parametrize("door", ["neuron", "native"])
async def test_stream_bytes_pings_and_disconnect(server: LiveServer, door: str) -> None:
    svc = service(server.app)
    svc.config.sse_ping_s = 0.1
    worker_id = f"sse-{door}"
    path, register = (
        ("/neuron/events", "/neuron/register") if door == "neuron" else (f"/v1/workers/{worker_id}/events", None)
    )
    async with httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=10) as http:
        async with http.stream("GET", path, params={"neuronId": worker_id}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-store"
            assert stream.headers["x-accel-buffering"] == "no"
            events = _events(stream.aiter_raw(), bytearray())
            assert await anext(events) == b": connected\n\n"
            assert await anext(events) == b": ping\n\n"
            if register:
                body = {"neuronId": worker_id, "protocolVersion": "1.0.0", "capabilities": [CAP]}
                r = await http.post(register, json=body)
            else:
                body = {"protocolVersion": "1.0.0", "capabilities": [CAP]}
                r = await http.post(f"/v1/workers/{worker_id}/register", json=body)
            assert r.status_code == 200, r.text
            event = await anext(events)
            while event == b": ping\n\n":
                event = await anext(events)
            name, frame = _frame(event)
            assert name == "registered" and frame["type"] == "registered"
            assert (await http.get(f"/v1/workers/{worker_id}")).json()["status"] == "connected"
        # the client hung up: sse-starlette notices, the session is freed
        await until(lambda: _status(http, worker_id, "disconnected"), timeout=10)


async def _status(http: httpx.AsyncClient, worker_id: str, want: str) -> bool:
    return bool((await http.get(f"/v1/workers/{worker_id}")).json()["status"] == want)


async def test_shutdown_ends_streams_with_a_disconnect_frame(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=10) as http:
        async with http.stream("GET", "/neuron/events", params={"neuronId": "sse-bye"}) as stream:
            chunks, buffer = stream.aiter_raw(), bytearray()
            events = _events(chunks, buffer)
            assert await anext(events) == b": connected\n\n"
            stopping = asyncio.get_running_loop().run_in_executor(None, server.stop)
            event = await anext(events)
            while event.startswith(b":"):
                event = await anext(events)
            name, frame = _frame(event)
            assert name == "disconnect" and frame["reconnectable"] is True
            rest = bytes(buffer) + b"".join([chunk async for chunk in chunks])  # then the stream ends
            assert all(event.startswith(b":") for event in rest.split(b"\n\n") if event), rest
            await stopping
