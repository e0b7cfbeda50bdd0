"""The browser runs inside the sandbox: isolation, limits, recovery, traces and allow-listed egress."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from shipyard_neo import BayClient

from portside.server.sandboxes.browser import BrowserService
from tests.browser.helpers import require_browser
from tests.conftest import ADMIN_KEY, LiveServer, make_settings

pytestmark = pytest.mark.bwrap
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_browser()
    srv = LiveServer(make_settings(tmp_path_factory.mktemp("browser-sbx") / "data")).start()
    try:
        yield srv
    finally:
        srv.stop()


def _browser_service(server: LiveServer) -> BrowserService:
    service = server.app.state.ctx.services["browser"]
    assert isinstance(service, BrowserService)
    return service


async def _exec(http: httpx.AsyncClient, sid: str, cmd: str, **extra: Any) -> dict[str, Any]:
    res = await http.post(f"/v1/sandboxes/{sid}/browser/exec", json={"cmd": cmd, **extra})
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


async def test_browser_lives_inside_the_sandbox_and_recovers(server: LiveServer) -> None:
    async with (
        BayClient(endpoint_url=server.url, access_token=ADMIN_KEY) as client,
        httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=60) as http,
    ):
        sandbox = await client.create_sandbox(profile="browser-python", ttl=600)
        await sandbox.filesystem.write_file("page.html", "<title>P</title><button>Hi</button>")
        opened = await _exec(http, sandbox.id, "open /workspace/page.html")
        assert opened["success"] and opened["output"].startswith("\u2713 P"), opened
        relative = await _exec(http, sandbox.id, "open page.html")  # a workspace file, not https://page.html
        assert relative["output"] == "\u2713 P\n  file:///workspace/page.html\n", relative

        # Chromium and the agent are processes of the sandbox (its pid namespace), not of the host
        ps = await sandbox.shell.exec("cat /proc/[0-9]*/comm | sort | uniq -c")
        assert "chrom" in ps.output and "python" in ps.output
        limits = await sandbox.shell.exec("grep -E 'Max (address space|processes)' /proc/self/limits")
        by_name = {line[:26].strip(): line[26:].split() for line in limits.output.splitlines()}
        assert by_name["Max address space"][0] == "unlimited"  # no RLIMIT_AS: V8 reserves a huge address space
        assert by_name["Max processes"][0] == "512"

        # the trace route of the native API (Bay's /browser/traces)
        traced = await _exec(http, sandbox.id, "snapshot", include_trace=True)
        ref = traced["trace_ref"]
        got = await http.get(f"/v1/sandboxes/{sandbox.id}/browser/traces/{ref}")
        assert got.status_code == 200 and got.json()["trace"]["steps"][0]["cmd"] == "snapshot"
        trace_id = ref.split("/")[2]
        assert (await http.get(f"/v1/sandboxes/{sandbox.id}/browser/traces/{trace_id}")).json()["trace_ref"] == ref
        missing = await http.get(f"/v1/sandboxes/{sandbox.id}/browser/traces/trc_nope")
        assert missing.status_code == 404
        assert (await http.get(f"/v1/sandboxes/{sandbox.id}/browser/traces/..%2F..%2Fetc%2Fpasswd")).status_code in (
            400,
            404,
        )

        # concurrent calls queue in the sandbox; waiting counts against the waiting call's own timeout
        snap = await _exec(http, sandbox.id, "snapshot -i")
        assert '- button "Hi" [ref=e1]' in snap["output"]
        slow_call = asyncio.create_task(_exec(http, sandbox.id, "wait 2500", timeout=10))
        await asyncio.sleep(0.5)
        queued = await _exec(http, sandbox.id, "get url", timeout=1)
        slow = await slow_call
        assert slow["success"] and queued["exit_code"] == -1 and "waiting for the previous" in queued["error"]
        assert (await _exec(http, sandbox.id, "get text @e1"))["output"] == "Hi\n"  # same session, same refs

        # the agent dies (here: killed from inside): the next call starts a fresh browser session
        pid = _browser_service(server)._sessions[sandbox.id].agent_pid
        assert pid is not None
        await sandbox.shell.exec(f"kill -9 {pid}")
        await asyncio.sleep(0.2)
        stale = await _exec(http, sandbox.id, "click @e1")
        assert not stale["success"] and "Unknown ref" in stale["error"]  # fresh session: no refs yet
        again = await _exec(http, sandbox.id, "open /workspace/page.html")
        assert again["success"]

        # close ends the browser; the next command launches a new one in the same agent
        assert (await _exec(http, sandbox.id, "close"))["output"] == "\u2713 Browser closed\n"
        assert (await _exec(http, sandbox.id, "get url"))["output"] == "about:blank\n"

        # stopping the sandbox kills everything; the next call restarts runtime and browser
        await sandbox.stop()
        after = await _exec(http, sandbox.id, "open /workspace/page.html")
        assert after["success"]

        # bad input is a 400, not a 422 or a 500
        bad = await http.post(f"/v1/sandboxes/{sandbox.id}/browser/exec", json={"cmd": "get url", "timeout": 0})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"
        empty = await http.post(f"/v1/sandboxes/{sandbox.id}/browser/exec_batch", json={"commands": ["  "]})
        assert empty.status_code == 400
        await sandbox.delete()


async def test_reserved_state_dir_cannot_be_a_link(
    server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    async with (
        BayClient(endpoint_url=server.url, access_token=ADMIN_KEY) as client,
        httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=60) as http,
    ):
        sandbox = await client.create_sandbox(profile="browser-python", ttl=600)
        # the sandbox plants .browser -> a host path: the server must not follow it
        await sandbox.shell.exec(f"ln -s {outside} .browser")
        res = await http.post(f"/v1/sandboxes/{sandbox.id}/browser/exec", json={"cmd": "get url"})
        assert res.status_code == 400 and res.json()["error"]["code"] == "invalid_path"
        assert list(outside.iterdir()) == []
        await sandbox.delete()


def _host_ip() -> str | None:
    """A non-loopback address of this host (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            ip = str(s.getsockname()[0])
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<title>Outside</title><p id=t>reached the allowed host</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


async def test_egress_allow_list(server: LiveServer) -> None:
    ip = _host_ip()
    if ip is None:
        pytest.skip("this host has no non-loopback IPv4 address to serve the allowed page from")
    web = ThreadingHTTPServer((ip, 0), _Page)
    port = web.server_address[1]
    threading.Thread(target=web.serve_forever, daemon=True).start()
    service = _browser_service(server)
    profiles = service.sandboxes.profiles
    from dataclasses import replace

    profiles.add(replace(profiles.get("browser-python"), id="browser-egress-test"))
    service.set_egress("browser-egress-test", [f"{ip}:{port}"])
    try:
        async with BayClient(endpoint_url=server.url, access_token=ADMIN_KEY) as client:
            sandbox = await client.create_sandbox(profile="browser-egress-test", ttl=600)
            allowed = await sandbox.browser.exec(f"open http://{ip}:{port}/", timeout=30)
            assert allowed.success and "Outside" in allowed.output, allowed
            text = await sandbox.browser.exec('get text "#t"')
            assert text.output.strip() == "reached the allowed host"
            # plain http to a port not on the list: the proxy answers 403 itself
            await sandbox.browser.exec(f"open http://{ip}:{port + 1}/", timeout=30)
            denied = await sandbox.browser.exec("get text body")
            assert "is not on the egress allow-list" in denied.output
            blocked = await sandbox.browser.exec("open https://example.com/", timeout=30)
            assert not blocked.success and "ERR_" in (blocked.error or "")
            # the sandbox itself still has no network: python cannot reach the page directly
            direct = await sandbox.python.exec(
                f"import socket\ntry:\n    socket.create_connection(('{ip}', {port}), timeout=2)\n    print('open')\n"
                "except OSError as e:\n    print('blocked', e)"
            )
            assert "blocked" in direct.output
            await sandbox.delete()
    finally:
        web.shutdown()
