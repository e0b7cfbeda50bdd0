"""The browser's egress proxy: allow-list matching, anti-rebinding, CONNECT and plain HTTP forwarding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portside.server.sandboxes.browser_egress import AllowEntry, EgressPolicy, EgressProxy


def test_allow_entries() -> None:
    policy = EgressPolicy(["example.com", "*.wiki.org", "10.0.0.5:8080", "[::1]:99", " "])
    assert policy.entry_for("example.com", 443) and policy.entry_for("EXAMPLE.com.", 80)
    assert policy.entry_for("sub.example.com", 443) is None
    assert policy.entry_for("wiki.org", 443) and policy.entry_for("a.b.wiki.org", 443)
    assert policy.entry_for("evilwiki.org", 443) is None
    assert policy.entry_for("10.0.0.5", 8080) and policy.entry_for("10.0.0.5", 80) is None
    assert policy.entry_for("[::1]", 99)
    assert AllowEntry.parse("10.0.0.5").literal and not AllowEntry.parse("example.com").literal
    assert not EgressPolicy([])
    with pytest.raises(ValueError):
        EgressPolicy(["*."])


async def test_resolve_refuses_private_addresses_of_names() -> None:
    policy = EgressPolicy(["localhost", "127.0.0.1"])
    with pytest.raises(PermissionError, match="non-public"):
        await policy.resolve("localhost", 80)  # a name pointing at the host's loopback
    assert await policy.resolve("127.0.0.1", 80) == "127.0.0.1"  # the literal itself is explicit consent
    with pytest.raises(PermissionError, match="allow-list"):
        await policy.resolve("example.net", 443)


@pytest.fixture
async def origin() -> AsyncIterator[int]:
    """A tiny HTTP origin on loopback that answers with the request line it got."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        first = head.split(b"\r\n", 1)[0]
        body = b"origin saw " + first
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def _ask(path: Path, request: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def test_proxy_forwards_allowed_and_refuses_the_rest(tmp_path: Path, origin: int) -> None:
    sock = tmp_path / "p.sock"
    proxy = EgressProxy(EgressPolicy([f"127.0.0.1:{origin}"]))
    await proxy.start(str(sock))
    try:
        plain = await _ask(
            sock,
            f"GET http://127.0.0.1:{origin}/a?b=1 HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n\r\n".encode(),
        )
        assert plain.startswith(b"HTTP/1.1 200") and plain.endswith(b"origin saw GET /a?b=1 HTTP/1.1")

        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(f"CONNECT 127.0.0.1:{origin} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(b"GET /tunnel HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 10)).endswith(b"origin saw GET /tunnel HTTP/1.1")
        writer.close()

        denied = await _ask(sock, b"CONNECT example.org:443 HTTP/1.1\r\n\r\n")
        assert denied.startswith(b"HTTP/1.1 403") and b"allow-list" in denied
        other_port = await _ask(sock, f"GET http://127.0.0.1:{origin + 1}/ HTTP/1.1\r\n\r\n".encode())
        assert other_port.startswith(b"HTTP/1.1 403")
        bad = await _ask(sock, b"GET /relative HTTP/1.1\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400")
        assert proxy.denied == ["example.org:443", f"127.0.0.1:{origin + 1}"]
    finally:
        await proxy.close()
