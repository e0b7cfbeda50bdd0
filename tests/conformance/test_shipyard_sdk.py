"""The unmodified upstream ``shipyard_neo`` SDK (0.2.0) drives a live Portside: every README example.

One server per module (SQLite, a warm pool of 1, a fast reaper); each test makes its own sandboxes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from shipyard_neo import (
    BayClient,
    BayError,
    CapabilityNotSupportedError,
    CargoFileNotFoundError,
    ConflictError,
    ForbiddenError,
    InvalidPathError,
    NotFoundError,
    RequestTimeoutError,
    SandboxExpiredError,
    SandboxStatus,
    SandboxTTLInfiniteError,
    UnauthorizedError,
    ValidationError,
)
from shipyard_neo.sandbox import Sandbox

from tests.conftest import ADMIN_KEY, LiveServer, make_settings


@pytest.fixture(scope="module")
def bay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("bay") / "data"
    server = LiveServer(make_settings(data, sandbox_warm_pool=1, sandbox_reaper_interval=0.2)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(bay: LiveServer) -> AsyncIterator[BayClient]:
    async with BayClient(endpoint_url=bay.url, access_token=ADMIN_KEY) as c:
        yield c


def status_of(sandbox: Sandbox) -> SandboxStatus:
    """The cached status (a function, so that type checkers do not pin it across refreshes)."""
    return sandbox.status


def make_key(url: str, scopes: list[str], name: str) -> str:
    r = httpx.post(
        f"{url}/v1/keys",
        json={"name": name, "scopes": scopes},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    r.raise_for_status()
    key: str = r.json()["key"]
    return key


# ---------------------------------------------------------------- README: quick start


async def test_readme_quick_start(client: BayClient) -> None:
    sandbox = await client.create_sandbox(profile="python-default", ttl=600)
    py = await sandbox.python.exec("print('hello')", include_code=True, description="smoke run", tags="smoke,python")
    assert py.success and py.output == "hello\n"
    assert py.code == "print('hello')"
    assert py.execution_id and py.execution_time_ms is not None and py.execution_time_ms >= 0
    history = await sandbox.get_execution_history(limit=10)
    assert history.total == 1
    entry = history.entries[0]
    assert entry.id == py.execution_id and entry.description == "smoke run" and entry.tags == "smoke,python"
    await sandbox.delete()
    with pytest.raises(NotFoundError):
        await client.get_sandbox(sandbox.id)


# ---------------------------------------------------------------- lifecycle


async def test_lifecycle_refresh_stop_keepalive_extend_delete(client: BayClient) -> None:
    sandbox = await client.create_sandbox(ttl=600)
    assert sandbox.status == SandboxStatus.READY
    assert sandbox.profile == "python-default"
    assert set(sandbox.capabilities) >= {"python", "shell", "filesystem"}
    assert sandbox.cargo_id and sandbox.created_at and sandbox.expires_at and sandbox.idle_expires_at
    expires = sandbox.expires_at

    same = await client.get_sandbox(sandbox.id)
    assert same.id == sandbox.id and same.cargo_id == sandbox.cargo_id
    listed = await client.list_sandboxes(limit=200)
    assert sandbox.id in {s.id for s in listed.items}
    ready = await client.list_sandboxes(status=SandboxStatus.READY)
    assert sandbox.id in {s.id for s in ready.items}

    await sandbox.python.exec("x = 41")
    await sandbox.filesystem.write_file("keep.txt", "kept")
    await sandbox.stop()
    await sandbox.refresh()
    assert status_of(sandbox) == SandboxStatus.IDLE and sandbox.idle_expires_at is None

    # keepalive extends the idle deadline only; it never starts a session.
    await sandbox.keepalive()
    await sandbox.refresh()
    assert status_of(sandbox) == SandboxStatus.IDLE

    # The next capability call starts a new session: variables are lost, files stay.
    lost = await sandbox.python.exec("print(x)")
    assert not lost.success and lost.error and "NameError" in lost.error
    assert (await sandbox.python.exec("print(open('keep.txt').read())")).output == "kept\n"
    await sandbox.refresh()
    assert sandbox.status == SandboxStatus.READY
    await sandbox.keepalive()

    await sandbox.extend_ttl(300)
    assert sandbox.expires_at is not None and expires is not None
    assert round((sandbox.expires_at - expires).total_seconds()) == 300

    await sandbox.delete()
    with pytest.raises(NotFoundError):
        await sandbox.refresh()
    with pytest.raises(NotFoundError):
        await sandbox.delete()


async def test_extend_ttl_of_infinite_sandbox(client: BayClient) -> None:
    sandbox = await client.create_sandbox()  # ttl None -> no expiry
    assert sandbox.expires_at is None
    with pytest.raises(SandboxTTLInfiniteError):
        await sandbox.extend_ttl(60)
    zero = await client.create_sandbox(ttl=0)  # 0 also means no expiry
    assert zero.expires_at is None
    await sandbox.delete()
    await zero.delete()


async def test_expired_sandbox_via_reaper(client: BayClient) -> None:
    sandbox = await client.create_sandbox(ttl=1)
    assert sandbox.expires_at is not None
    for _ in range(50):  # the reaper runs every 0.2 s
        await asyncio.sleep(0.1)
        listed = await client.list_sandboxes(status=SandboxStatus.EXPIRED)
        if sandbox.id in {s.id for s in listed.items}:
            break
    else:
        pytest.fail("the reaper did not expire the sandbox")
    await sandbox.refresh()
    assert sandbox.status == SandboxStatus.EXPIRED
    with pytest.raises(SandboxExpiredError):
        await sandbox.python.exec("1")
    with pytest.raises(SandboxExpiredError):
        await sandbox.shell.exec("true")
    with pytest.raises(SandboxExpiredError):
        await sandbox.extend_ttl(60)
    with pytest.raises(SandboxExpiredError):
        await sandbox.filesystem.read_file("x")
    await sandbox.delete()  # an expired sandbox can still be deleted


async def test_expired_sandbox_on_use(tmp_path: Path) -> None:
    """Without the reaper's help (it sweeps once an hour here), use past the TTL is refused."""
    server = LiveServer(make_settings(tmp_path / "data", sandbox_reaper_interval=3600)).start()
    try:
        async with BayClient(endpoint_url=server.url, access_token=ADMIN_KEY) as c:
            sandbox = await c.create_sandbox(ttl=1)
            await asyncio.sleep(1.1)
            with pytest.raises(SandboxExpiredError):
                await sandbox.python.exec("1+1")
            await sandbox.refresh()
            assert sandbox.status == SandboxStatus.EXPIRED
            other = await c.create_sandbox(ttl=1)
            await asyncio.sleep(1.1)
            await other.refresh()  # reading it settles the expiry too
            assert other.status == SandboxStatus.EXPIRED
    finally:
        server.stop()


# ---------------------------------------------------------------- capabilities


async def test_python_exec(client: BayClient) -> None:
    sandbox = await client.create_sandbox(ttl=600)
    r = await sandbox.python.exec(
        "print('hello')", timeout=30, include_code=True, description="python exec", tags="demo,python"
    )
    assert (r.success, r.output, r.code, r.error) == (True, "hello\n", "print('hello')", None)

    await sandbox.python.exec("import math\nstate = {'n': 20}")
    r = await sandbox.python.exec("state['n'] += 1\nmath.sqrt(state['n'] * 21)")
    assert r.success and r.data is not None
    assert r.data["output"]["text"] == "21.0" and isinstance(r.data["execution_count"], int)
    assert r.code is None  # include_code defaults to False

    bad = await sandbox.python.exec("1/0")
    assert bad.success is False and bad.error and "ZeroDivisionError" in bad.error
    assert bad.execution_id
    entry = await sandbox.get_execution(bad.execution_id)
    assert entry.success is False and entry.exec_type == "python" and entry.code == "1/0"

    out = await sandbox.python.exec("import sys\nprint('to-out')\nprint('to-err', file=sys.stderr)")
    assert out.success and "to-out" in out.output
    await sandbox.delete()


async def test_shell_exec(client: BayClient) -> None:
    sandbox = await client.create_sandbox(ttl=600)
    r = await sandbox.shell.exec(
        "echo hello", cwd=".", timeout=30, include_code=True, description="shell exec", tags="demo,shell"
    )
    assert (r.success, r.output, r.exit_code, r.command) == (True, "hello\n", 0, "echo hello")

    await sandbox.filesystem.write_file("sub/dir/f.txt", "x")
    r = await sandbox.shell.exec("pwd && ls", cwd="sub/dir")
    assert r.output.splitlines() == ["/workspace/sub/dir", "f.txt"]

    r = await sandbox.shell.exec("echo oops >&2; exit 3")
    assert r.success is False and r.exit_code == 3 and r.error and "oops" in r.error

    with pytest.raises(InvalidPathError):
        await sandbox.shell.exec("pwd", cwd="../..")
    # Shell and Python share the workspace.
    await sandbox.shell.exec("echo from-shell > s.txt")
    assert (await sandbox.python.exec("print(open('s.txt').read().strip())")).output == "from-shell\n"
    await sandbox.delete()


async def test_filesystem(client: BayClient) -> None:
    sandbox = await client.create_sandbox(ttl=600)
    fs = sandbox.filesystem
    await fs.write_file("app.py", "print('hi')")
    assert await fs.read_file("app.py") == "print('hi')"
    entries = await fs.list_dir(".")
    app = next(e for e in entries if e.name == "app.py")
    assert (app.path, app.is_dir, app.size) == ("app.py", False, len("print('hi')"))
    assert app.modified_at is not None
    run = await sandbox.shell.exec("python3 app.py")
    assert run.output == "hi\n"
    await fs.delete("app.py")
    with pytest.raises(CargoFileNotFoundError):
        await fs.read_file("app.py")

    blob = bytes(range(256)) * 64 + b"\x00\xff\r\n"
    await fs.upload("bin/model.bin", blob)
    assert await fs.download("bin/model.bin") == blob
    listed = await fs.list_dir("bin")
    assert [(e.name, e.path, e.size) for e in listed] == [("model.bin", "bin/model.bin", len(blob))]
    root = await fs.list_dir()
    assert any(e.name == "bin" and e.is_dir and e.size is None for e in root)

    # Unicode text round-trips; absolute /workspace paths are accepted.
    await fs.write_file("/workspace/notes/ü.txt", "grüße ✓")
    assert await fs.read_file("notes/ü.txt") == "grüße ✓"
    await fs.delete("notes")  # directories too
    assert not any(e.name == "notes" for e in await fs.list_dir("."))

    with pytest.raises(CargoFileNotFoundError):
        await fs.download("missing.bin")
    with pytest.raises(CargoFileNotFoundError):
        await fs.delete("missing.bin")
    with pytest.raises(CargoFileNotFoundError):
        await fs.list_dir("missing-dir")
    for bad in ("../escape.txt", "/etc/passwd", "a/../../b"):
        with pytest.raises(InvalidPathError):
            await fs.read_file(bad)
        with pytest.raises(InvalidPathError):
            await fs.write_file(bad, "x")
    await sandbox.delete()


async def test_raw_http_replies_match_bay(bay: LiveServer, client: BayClient) -> None:
    """Bay's integration suite reads these bodies: stop 200 {"status": "stopped"}, file delete 200
    {"status": "ok"}, upload {"status": "ok", "path", "size"} (Portside answered 204 / no status)."""
    sandbox = await client.create_sandbox(ttl=600)
    base = f"{bay.url}/v1/sandboxes/{sandbox.id}"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as http:
        up = await http.post(f"{base}/filesystem/upload", files={"file": ("a.bin", b"abc")}, data={"path": "a.bin"})
        assert up.status_code == 200 and up.json() == {"status": "ok", "path": "a.bin", "size": 3}
        put = await http.put(f"{base}/filesystem/files", json={"path": "b.txt", "content": "b"})
        assert put.status_code == 200 and put.json()["status"] == "ok"
        gone = await http.delete(f"{base}/filesystem/files", params={"path": "a.bin"})
        assert (gone.status_code, gone.json()) == (200, {"status": "ok"})
        await sandbox.python.exec("x = 1")
        stop = await http.post(f"{base}/stop")
        assert (stop.status_code, stop.json()) == (200, {"status": "stopped"})
        again = await http.post(f"{base}/stop")  # idempotent, as Bay
        assert (again.status_code, again.json()) == (200, {"status": "stopped"})
    await sandbox.refresh()
    assert status_of(sandbox) == SandboxStatus.IDLE
    await sandbox.delete()


# ---------------------------------------------------------------- cargo


async def test_cargo_readme_example(client: BayClient) -> None:
    cargo = await client.cargos.create(size_limit_mb=1024)
    assert cargo.managed is False and cargo.managed_by_sandbox_id is None and cargo.size_limit_mb == 1024
    assert cargo.backend and cargo.created_at and cargo.last_accessed_at

    sandbox = await client.create_sandbox(profile="python-default", cargo_id=cargo.id, ttl=600)
    assert sandbox.cargo_id == cargo.id
    await sandbox.filesystem.write_file("state.txt", "persist-me")
    with pytest.raises(ConflictError) as busy:
        await client.cargos.delete(cargo.id)
    assert sandbox.id in busy.value.details["active_sandbox_ids"]
    await sandbox.delete()  # external cargo still exists
    assert (await client.cargos.get(cargo.id)).id == cargo.id

    sandbox2 = await client.create_sandbox(profile="python-default", cargo_id=cargo.id)
    assert await sandbox2.filesystem.read_file("state.txt") == "persist-me"
    assert (await sandbox2.python.exec("print(open('state.txt').read())")).output == "persist-me\n"

    external = await client.cargos.list()
    assert cargo.id in {c.id for c in external.items} and all(not c.managed for c in external.items)
    plain = await client.create_sandbox()
    managed = await client.cargos.list(managed=True, limit=200)
    assert all(c.managed for c in managed.items)
    own = next(c for c in managed.items if c.id == plain.cargo_id)
    assert own.managed_by_sandbox_id == plain.id
    with pytest.raises(ConflictError):  # a managed cargo cannot be attached elsewhere
        await client.create_sandbox(cargo_id=own.id)
    await plain.delete()
    assert own.id not in {c.id for c in (await client.cargos.list(managed=True, limit=200)).items}

    await sandbox2.delete()
    await client.cargos.delete(cargo.id)
    with pytest.raises(NotFoundError):
        await client.cargos.get(cargo.id)
    with pytest.raises(NotFoundError):
        await client.create_sandbox(cargo_id=cargo.id)


async def test_cargo_defaults_and_pagination(client: BayClient) -> None:
    a = await client.cargos.create()
    b = await client.cargos.create()
    assert a.size_limit_mb >= 1
    page = await client.cargos.list(limit=1)
    assert len(page.items) == 1 and page.next_cursor
    rest = await client.cargos.list(limit=200, cursor=page.next_cursor)
    assert page.items[0].id not in {c.id for c in rest.items}
    assert {a.id, b.id} <= {page.items[0].id, *(c.id for c in rest.items)}
    for c in (a, b):
        await client.cargos.delete(c.id)


async def test_cargo_size_limit_on_api_writes(client: BayClient) -> None:
    cargo = await client.cargos.create(size_limit_mb=1)
    sandbox = await client.create_sandbox(cargo_id=cargo.id)
    await sandbox.filesystem.upload("half.bin", b"x" * 600_000)
    with pytest.raises(BayError) as full:
        await sandbox.filesystem.upload("more.bin", b"y" * 600_000)
    assert full.value.details["limit_bytes"] == 1024 * 1024
    await sandbox.filesystem.upload("half.bin", b"z" * 900_000)  # replacing counts the old size out
    await sandbox.delete()
    await client.cargos.delete(cargo.id)


# ---------------------------------------------------------------- history


async def test_history_filters_and_annotation(client: BayClient) -> None:
    sandbox = await client.create_sandbox(ttl=600)
    e1 = await sandbox.python.exec("print('step1')", tags="etl", description="load")
    e2 = await sandbox.shell.exec("echo step2", tags="etl,shell")
    e3 = await sandbox.python.exec("raise ValueError('x')", tags="other")
    e4 = await sandbox.shell.exec("false")
    ids = [e.execution_id or "" for e in (e1, e2, e3, e4)]

    full = await sandbox.get_execution_history()
    assert full.total == 4 and [e.id for e in full.entries] == ids[::-1]  # newest first

    py = await sandbox.get_execution_history(exec_type="python")
    assert {e.id for e in py.entries} == {ids[0], ids[2]}
    ok = await sandbox.get_execution_history(success_only=True)
    assert {e.id for e in ok.entries} == {ids[0], ids[1]}
    etl = await sandbox.get_execution_history(tags="etl")
    assert {e.id for e in etl.entries} == {ids[0], ids[1]}
    any_tag = await sandbox.get_execution_history(tags="shell,other")  # any requested tag matches
    assert {e.id for e in any_tag.entries} == {ids[1], ids[2]}
    assert (await sandbox.get_execution_history(tags="et")).total == 0  # whole tags only
    described = await sandbox.get_execution_history(has_description=True)
    assert [e.id for e in described.entries] == [ids[0]]
    limited = await sandbox.get_execution_history(limit=2)
    assert limited.total == 4 and [e.id for e in limited.entries] == ids[:1:-1]
    page2 = await sandbox.get_execution_history(limit=2, offset=2)
    assert [e.id for e in page2.entries] == [ids[1], ids[0]]

    # README example
    history = await sandbox.get_execution_history(
        exec_type="python", success_only=True, tags="etl", has_notes=False, has_description=True, limit=20
    )
    assert [e.id for e in history.entries] == [ids[0]]

    last = await sandbox.get_last_execution(exec_type="python")
    assert last.id == ids[2] and last.success is False and "ValueError" in (last.error or "")
    assert (await sandbox.get_last_execution()).id == ids[3]
    assert (await sandbox.get_last_execution(exec_type="shell")).id == ids[3]

    annotated = await sandbox.annotate_execution(
        last.id, description="useful snippet", tags="etl,stable", notes="candidate source"
    )
    assert (annotated.description, annotated.tags, annotated.notes) == (
        "useful snippet",
        "etl,stable",
        "candidate source",
    )
    noted = await sandbox.get_execution_history(has_notes=True)
    assert [e.id for e in noted.entries] == [last.id]
    partial = await sandbox.annotate_execution(last.id, notes="changed")
    assert partial.description == "useful snippet" and partial.notes == "changed"
    assert (await sandbox.annotate_execution(last.id)).notes == "changed"  # empty body changes nothing

    shell_entry = await sandbox.get_execution(ids[1])
    assert shell_entry.exec_type == "shell" and shell_entry.code == "echo step2" and shell_entry.output == "step2\n"
    with pytest.raises(NotFoundError):
        await sandbox.get_execution("exec_missing")
    with pytest.raises(NotFoundError):
        await sandbox.annotate_execution("exec_missing", notes="x")
    with pytest.raises(ValidationError):
        await sandbox.get_execution_history(exec_type="cobol")

    empty = await client.create_sandbox()
    with pytest.raises(NotFoundError):
        await empty.get_last_execution()
    # Executions belong to their sandbox.
    with pytest.raises(NotFoundError):
        await empty.get_execution(ids[0])
    await empty.delete()
    await sandbox.delete()


# ---------------------------------------------------------------- idempotency


async def test_idempotency_keys(client: BayClient) -> None:
    first = await client.create_sandbox(ttl=600, idempotency_key="create-req-001")
    retried = await client.create_sandbox(ttl=600, idempotency_key="create-req-001")
    assert retried.id == first.id
    with pytest.raises(ConflictError):  # same key, different request
        await client.create_sandbox(ttl=601, idempotency_key="create-req-001")
    assert first.id in {s.id for s in (await client.list_sandboxes(limit=200)).items}

    assert first.expires_at is not None
    await first.extend_ttl(300, idempotency_key="extend-req-001")
    once = first.expires_at
    await first.extend_ttl(300, idempotency_key="extend-req-001")
    assert first.expires_at == once
    await first.refresh()
    assert first.expires_at == once  # applied once

    cargo = await client.cargos.create(size_limit_mb=512, idempotency_key="cargo-req-001")
    again = await client.cargos.create(size_limit_mb=512, idempotency_key="cargo-req-001")
    assert again.id == cargo.id
    external = await client.cargos.list(limit=200)
    assert sum(1 for c in external.items if c.id == cargo.id) == 1

    await first.delete()
    await client.cargos.delete(cargo.id)


async def test_replay_right_after_the_response(client: BayClient) -> None:
    """The outcome is stored before the reply, so even an instant repeat is a replay."""
    cargo = await client.cargos.create(idempotency_key="cargo-instant-replay")
    try:
        again = await client.cargos.create(idempotency_key="cargo-instant-replay")
        assert again.id == cargo.id
    finally:
        await client.cargos.delete(cargo.id)


# ---------------------------------------------------------------- config, profiles


async def test_env_var_config(bay: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAY_ENDPOINT", bay.url)
    monkeypatch.setenv("BAY_TOKEN", ADMIN_KEY)
    monkeypatch.setenv("BAY_TIMEOUT", "20")
    monkeypatch.setenv("BAY_MAX_RETRIES", "1")
    async with BayClient() as client:
        profiles = await client.list_profiles()
        assert "python-default" in {p.id for p in profiles.items}
    monkeypatch.delenv("BAY_TOKEN")
    with pytest.raises(ValueError):
        BayClient()


async def test_list_profiles(client: BayClient) -> None:
    plain = await client.list_profiles()
    by_id = {p.id: p for p in plain.items}
    assert {"python-default", "shell-minimal"} <= set(by_id)
    default = by_id["python-default"]
    assert {"python", "shell", "filesystem"} <= set(default.capabilities)
    assert default.image and default.idle_timeout > 0 and default.resources
    assert "python" not in by_id["shell-minimal"].capabilities
    detailed = await client.list_profiles(detail=True)
    d = next(p for p in detailed.items if p.id == "python-default")
    assert d.containers and d.containers[0].capabilities == d.capabilities


# ---------------------------------------------------------------- errors


async def test_error_types(bay: LiveServer, client: BayClient) -> None:
    with pytest.raises(NotFoundError):
        await client.get_sandbox("sbx_missing")
    with pytest.raises(NotFoundError):
        await client.cargos.get("cargo_missing")
    with pytest.raises(ValidationError):
        await client.create_sandbox(profile="no-such-profile")
    with pytest.raises(ValidationError):
        await client.create_sandbox(ttl=-5)

    async with BayClient(endpoint_url=bay.url, access_token="sk_wrong_wrong_wrong_wrong") as bad:
        with pytest.raises(UnauthorizedError):
            await bad.list_sandboxes()

    sandbox = await client.create_sandbox(ttl=600)
    reader_key = make_key(bay.url, ["read"], "reader")
    async with BayClient(endpoint_url=bay.url, access_token=reader_key) as reader:
        with pytest.raises(ForbiddenError):
            await reader.create_sandbox()
        with pytest.raises(ForbiddenError):
            await reader.cargos.create()
        # Another owner's sandbox is invisible, not merely forbidden.
        with pytest.raises(NotFoundError):
            await reader.get_sandbox(sandbox.id)
        assert (await reader.list_profiles()).items

    minimal = await client.create_sandbox(profile="shell-minimal")
    with pytest.raises(CapabilityNotSupportedError):
        await minimal.python.exec("1+1")
    assert (await minimal.shell.exec("echo ok")).output == "ok\n"
    await minimal.delete()

    with pytest.raises(RequestTimeoutError) as slow:
        await sandbox.python.exec("import time\nprogress = 'started'\ntime.sleep(30)", timeout=1)
    assert slow.value.details["execution_id"]
    # The timed-out execution is recorded and the kernel (with its state) stays usable.
    last = await sandbox.get_last_execution()
    assert last.id == slow.value.details["execution_id"] and last.success is False
    assert (await sandbox.python.exec("print(progress)")).output == "started\n"
    with pytest.raises(RequestTimeoutError):
        await sandbox.shell.exec("sleep 30", timeout=1)

    with pytest.raises(InvalidPathError):
        await sandbox.filesystem.read_file("")
    with pytest.raises(CargoFileNotFoundError):
        await sandbox.filesystem.read_file("nope.txt")
    await sandbox.delete()
