"""Allow-listed egress for a sandbox's browser: an HTTP proxy on the host, reached through a workspace socket.

The sandbox keeps its empty network namespace. When a profile allows egress, the server listens on a unix
socket in the workspace; the in-sandbox browser agent forwards a loopback port to it and gives Chromium that
port as its proxy. This proxy then connects out from the host, for allowed destinations only:

* ``CONNECT host:port`` (HTTPS, WebSockets) and absolute-form HTTP requests (``GET http://host/...``);
* ``host`` must match an allow-list entry: ``example.com`` (that host), ``*.example.com`` (the domain and its
  subdomains), an IP literal, each optionally with ``:port``;
* every address the name resolves to must be a public (global) address, unless the entry is that IP literal
  itself, so an allowed name cannot be pointed at the host's loopback or private networks (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger("portside.browser")
_MAX_HEAD = 64 * 1024
_CONNECT_TIMEOUT = 10.0
_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_HOP_HEADERS = frozenset({"proxy-connection", "proxy-authorization", "connection", "keep-alive"})


@dataclass(frozen=True)
class AllowEntry:
    host: str
    port: int | None
    wildcard: bool
    literal: bool

    @classmethod
    def parse(cls, raw: str) -> AllowEntry:
        text = raw.strip().lower().rstrip(".")
        port: int | None = None
        if text.startswith("["):  # [v6]:port
            host, _, rest = text[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else None
        elif text.count(":") == 1:
            host, _, p = text.partition(":")
            port = int(p)
        else:
            host = text
        wildcard = host.startswith("*.")
        host = host[2:] if wildcard else host
        if not host:
            raise ValueError(f"empty egress allow-list entry {raw!r}")
        try:
            ipaddress.ip_address(host)
            literal = True
        except ValueError:
            literal = False
            if not _HOSTNAME.match(host):
                raise ValueError(f"invalid egress allow-list entry {raw!r}") from None
        return cls(host=host, port=port, wildcard=wildcard, literal=literal and not wildcard)

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.wildcard:
            return host == self.host or host.endswith("." + self.host)
        return host == self.host


class EgressPolicy:
    """Which destinations the browser may reach."""

    def __init__(self, allow: Sequence[str]) -> None:
        self.entries = [AllowEntry.parse(a) for a in allow if a.strip()]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def entry_for(self, host: str, port: int) -> AllowEntry | None:
        host = host.lower().rstrip(".").strip("[]")
        return next((e for e in self.entries if e.matches(host, port)), None)

    async def resolve(self, host: str, port: int) -> str:
        """The address to connect to, or raise ``PermissionError`` with the reason."""
        host = host.lower().rstrip(".").strip("[]")
        entry = self.entry_for(host, port)
        if entry is None:
            raise PermissionError(f"{host}:{port} is not on the egress allow-list")
        if entry.literal:
            return host
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addrs = [str(info[4][0]) for info in infos]
        if not addrs:
            raise PermissionError(f"{host} does not resolve")
        blocked = [a for a in addrs if not ipaddress.ip_address(a.split("%", 1)[0]).is_global]
        if blocked:
            raise PermissionError(f"{host} resolves to non-public address {blocked[0]}; allow-list the IP itself")
        return addrs[0]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


class EgressProxy:
    """The host side: an HTTP/CONNECT proxy on a unix socket, enforcing an :class:`EgressPolicy`."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._server: asyncio.AbstractServer | None = None
        self.denied: list[str] = []

    async def start(self, path: str) -> None:
        """Listen on ``path`` (a fresh name: binding never follows an existing link)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        self._server = await asyncio.start_unix_server(self._handle, sock=sock, limit=_MAX_HEAD)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _refuse(self, writer: asyncio.StreamWriter, status: str, reason: str) -> None:
        body = (reason + "\n").encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(OSError):
            await writer.drain()
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            await self._refuse(writer, "400 Bad Request", "malformed request line")
            return
        method, target, version = parts
        if method.upper() == "CONNECT":
            host, _, port_text = target.rpartition(":")
            path = ""
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                await self._refuse(writer, "400 Bad Request", "only absolute http:// URLs and CONNECT are proxied")
                return
            host, port_text = url.hostname, str(url.port or 80)
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        try:
            port = int(port_text)
            address = await self.policy.resolve(host, port)
        except (ValueError, PermissionError, OSError) as exc:
            self.denied.append(f"{host}:{port_text}")
            log.info("browser egress denied: %s", exc)
            await self._refuse(writer, "403 Forbidden", f"egress denied: {exc}")
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(address, port), _CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            await self._refuse(writer, "502 Bad Gateway", f"cannot reach {host}:{port}: {exc}")
            return
        if method.upper() == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            headers = [h for h in lines[1:] if h and h.split(":", 1)[0].strip().lower() not in _HOP_HEADERS]
            request = [f"{method} {path} {version}", *headers, "Connection: close", "", ""]
            up_writer.write("\r\n".join(request).encode("latin-1"))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


def unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
