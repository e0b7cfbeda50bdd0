"""``client.sandboxes`` and ``client.cargos`` (sync and async) against a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import portside
from portside.types.sandboxes import Execution
from tests.conftest import ADMIN_KEY, LiveServer, make_settings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(make_settings(tmp_path_factory.mktemp("sdk") / "data", sandbox_warm_pool=1)).start()
    try:
        yield live
    finally:
        live.stop()


def test_sync_sandbox_round_trip(server: LiveServer, tmp_path: Path) -> None:
    with portside.Client(server.url, ADMIN_KEY) as client:
        profiles = {p.id: p for p in client.sandboxes.profiles()}
        assert "python" in profiles["python-default"].capabilities
        assert client.sandboxes.profiles(detail=True)[0].containers

        sb = client.sandboxes.create(ttl=600)
        assert sb.status == "ready" and sb.info.expires_at is not None
        assert repr(sb).startswith("<Sandbox sbx_")

        r = sb.python.exec("x = 20\nx + 1", include_code=True, description="calc", tags=["math", "demo"])
        assert r.success and r.data and r.data["output"]["text"] == "21" and r.code
        assert sb.python.exec("print(x * 2)").output == "40\n"
        bad = sb.python.exec("1/0")
        assert not bad.success and "ZeroDivisionError" in (bad.error or "")

        sh = sb.shell.exec("mkdir -p d && cd d && pwd", include_code=True)
        assert (sh.exit_code, sh.output, sh.command) == (0, "/workspace/d\n", "mkdir -p d && cd d && pwd")
        assert sb.shell.exec("pwd", cwd="d").output == "/workspace/d\n"
        assert sb.shell.exec("exit 4").exit_code == 4

        fs = sb.filesystem
        fs.write_file("d/a.txt", "text ✓")
        assert fs.read_file("d/a.txt") == "text ✓"
        blob = bytes(range(256)) * 10
        fs.write_file("raw.bin", blob)  # bytes go base64 over JSON
        assert fs.download("raw.bin") == blob
        fs.upload("up/blob.bin", blob[::-1])
        assert fs.download("up/blob.bin") == blob[::-1]
        local = tmp_path / "local.bin"
        local.write_bytes(b"\x00local\xff")
        fs.upload_file("from_disk.bin", local)
        out = tmp_path / "out.bin"
        assert fs.download_to("from_disk.bin", out) == len(b"\x00local\xff")
        assert out.read_bytes() == b"\x00local\xff"
        names = [e.name for e in fs.list_dir()]
        assert names[:2] == ["d", "up"] and {"raw.bin", "from_disk.bin"} <= set(names)
        fs.delete("up")
        with pytest.raises(portside.NotFoundError) as missing:
            fs.read_file("up/blob.bin")
        assert missing.value.code == "file_not_found"
        with pytest.raises(portside.ValidationError) as bad_path:
            fs.read_file("../../etc/passwd")
        assert bad_path.value.code == "invalid_path"

        hist = sb.history()
        assert hist.total == 6 and all(isinstance(e, Execution) for e in hist.entries)
        assert [e.id for e in sb.history(tags="math").entries] == [r.execution_id]
        assert sb.history(tags=["demo", "nope"]).total == 1
        assert sb.history(exec_type="shell", success_only=True).total == 2
        last = sb.last_execution(exec_type="python")
        assert last.id == bad.execution_id
        noted = sb.annotate(last.id, notes="fails on purpose", tags=["bug"])
        assert noted.notes == "fails on purpose" and noted.tag_list == ["bug"]
        assert sb.get_execution(r.execution_id or "").description == "calc"
        assert [e.id for e in sb.history(has_notes=True).entries] == [last.id]

        expires = sb.info.expires_at
        assert expires is not None
        info = sb.extend_ttl(60)
        assert info.expires_at is not None and (info.expires_at - expires).total_seconds() == 60
        sb.stop()
        assert sb.refresh().status == "idle"
        assert sb.keepalive().status == "idle"
        fresh = sb.python.exec("'x' in dir()").data
        assert fresh is not None and fresh["output"]["text"] == "False"  # a new kernel
        assert sb.refresh().status == "ready"

        other = client.sandboxes.create()
        page = client.sandboxes.list(limit=1)
        assert [s.id for s in page.items] == [other.id] and page.next_cursor  # newest first
        rest = client.sandboxes.list(cursor=page.next_cursor)
        assert sb.id in {s.id for s in rest.items} and other.id not in {s.id for s in rest.items}
        other.delete()
        assert sb.id in {s.id for s in client.sandboxes.list(status="ready", limit=200).items}
        assert client.sandboxes.get(sb.id).cargo_id == sb.cargo_id
        sb.delete()
        with pytest.raises(portside.NotFoundError):
            client.sandboxes.get(sb.id)


def test_sync_cargos_and_errors(server: LiveServer) -> None:
    with portside.Client(server.url, ADMIN_KEY) as client:
        cargo = client.cargos.create(size_limit_mb=8)
        assert not cargo.managed and cargo.size_limit_mb == 8
        with client.sandboxes.create(cargo_id=cargo.id) as sb:
            sb.filesystem.write_file("keep.txt", "kept")
            with pytest.raises(portside.ConflictError) as busy:
                client.cargos.delete(cargo.id)
            assert busy.value.details["active_sandbox_ids"] == [sb.id]
        # The context manager deleted the sandbox; the cargo and its file stay.
        assert client.cargos.get(cargo.id).size_bytes == 4
        with client.sandboxes.create(cargo_id=cargo.id) as again:
            assert again.filesystem.read_file("keep.txt") == "kept"
        assert cargo.id in {c.id for c in client.cargos.list(limit=200).items}
        assert all(c.managed for c in client.cargos.list(managed=True).items)
        client.cargos.delete(cargo.id)
        with pytest.raises(portside.NotFoundError):
            client.cargos.get(cargo.id)

        # Each call without an explicit key gets its own automatic one.
        one, two = client.cargos.create(), client.cargos.create()
        assert one.id != two.id

        with client.sandboxes.create(ttl=600) as sb:
            with pytest.raises(portside.ServerError) as slow:
                sb.python.exec("import time; time.sleep(20)", timeout=1)
            assert (slow.value.status_code, slow.value.code) == (504, "timeout")
            assert sb.last_execution().success is False
            assert sb.python.exec("print('alive')").output == "alive\n"
        with client.sandboxes.create() as forever:
            with pytest.raises(portside.ConflictError) as infinite:
                forever.extend_ttl(10)
            assert infinite.value.code == "sandbox_ttl_infinite"
        with client.sandboxes.create(profile="shell-minimal") as minimal:
            with pytest.raises(portside.ValidationError) as cap:
                minimal.python.exec("1")
            assert cap.value.code == "capability_not_supported"
        with pytest.raises(portside.ValidationError):
            client.sandboxes.create(profile="nope")


async def test_async_sandbox(server: LiveServer) -> None:
    async with portside.AsyncClient(server.url, ADMIN_KEY) as client:
        cargo = await client.cargos.create()
        sb = await client.sandboxes.create(ttl=120, cargo_id=cargo.id, idempotency_key="sdk-async-create")
        same = await client.sandboxes.create(ttl=120, cargo_id=cargo.id, idempotency_key="sdk-async-create")
        assert same.id == sb.id
        async with sb:
            r = await sb.python.exec("import sys; print(sys.version_info[0])", tags="v")
            assert r.output == "3\n"
            s = await sb.shell.exec("echo $((6*7))", cwd=".")
            assert s.output == "42\n"
            await sb.filesystem.write_file("n.txt", "async")
            assert await sb.filesystem.read_file("n.txt") == "async"
            await sb.filesystem.upload("b.bin", b"\x00\x01")
            assert await sb.filesystem.download("b.bin") == b"\x00\x01"
            assert [e.name for e in await sb.filesystem.list_dir(".")] == ["b.bin", "n.txt"]
            await sb.filesystem.delete("n.txt")
            assert (await sb.history(tags="v")).total == 1
            last = await sb.last_execution()
            assert last.id == s.execution_id
            assert (await sb.annotate(last.id, description="d")).description == "d"
            assert (await sb.get_execution(last.id)).exec_type == "shell"
            await sb.keepalive()
            info = await sb.extend_ttl(30)
            assert info.ttl == 150
            await sb.stop()
            assert (await sb.refresh()).status == "idle"
            page = await client.sandboxes.list(limit=200)
            assert sb.id in {x.id for x in page.items}
            assert (await client.sandboxes.get(sb.id)).id == sb.id
            assert "shell-minimal" in {p.id for p in await client.sandboxes.profiles()}
        with pytest.raises(portside.NotFoundError):
            await client.sandboxes.get(sb.id)
        assert (await client.cargos.get(cargo.id)).size_bytes == 2
        assert cargo.id in {c.id for c in (await client.cargos.list(limit=200)).items}
        await client.cargos.delete(cargo.id)
