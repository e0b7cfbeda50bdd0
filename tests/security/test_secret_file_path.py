"""Issue 21: the encrypted-file secret backend's ``file_path`` is confined to ``<data_dir>/secrets/``.

Before, ``PUT /v1/secret-backend`` and Symbiont ``POST /api/v1/secrets/config`` took any ``file_path``:
an admin key (or a fuzzer) made the server -- often root -- create ``<path>`` and ``<path>.lock``
anywhere on the host, relative paths landing in the server's working directory. Now a relative path
resolves under ``<data_dir>/secrets/``; an absolute path, ``..``, or a path escaping through a symlink
is 400 ``invalid_secret_file_path`` and nothing is created. Real app, real SQLite, ASGI transport.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from portside.server.app import create_app
from tests.conftest import ADMIN_KEY, make_settings

DOORS = [("PUT", "/v1/secret-backend"), ("POST", "/api/v1/secrets/config")]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    data_dir = tmp_path / "data"
    app = create_app(make_settings(data_dir))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://portside.test", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as client:
            yield client, data_dir


def _code(body: dict[str, object]) -> object:
    error = body.get("error")
    return error.get("code") if isinstance(error, dict) else body.get("code")


@pytest.mark.parametrize(("method", "path"), DOORS)
async def test_file_path_outside_the_data_dir_is_refused(
    api: tuple[httpx.AsyncClient, Path], tmp_path: Path, method: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, data_dir = api
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    outside = tmp_path / "outside"
    outside.mkdir()
    (data_dir / "secrets").mkdir(parents=True, exist_ok=True)
    os.symlink(outside, data_dir / "secrets" / "escape")
    for bad in (
        str(outside / "stolen.json"),  # absolute
        "../../outside/stolen.json",  # climbs out
        "a/../../stolen.json",
        "./stolen.json",
        ".hidden.json",
        "escape/stolen.json",  # through a symlink
        "",
    ):
        reply = await client.request(method, path, json={"backend_type": "encrypted_file", "file_path": bad})
        assert reply.status_code == 400, (bad, reply.text)
        assert _code(reply.json()) == "invalid_secret_file_path", (bad, reply.text)
        # the active backend is unchanged, and a write lands in the default file only
        assert (await client.put("/v1/secrets/bot/k", json={"value": "v"})).status_code == 200
    assert list(outside.iterdir()) == []
    assert list(cwd.iterdir()) == []
    assert not (tmp_path / "stolen.json").exists()
    assert (await client.get("/v1/secret-backend")).json()["file_path"] == str(data_dir / "secrets.json")


@pytest.mark.parametrize(("method", "path"), DOORS)
async def test_relative_file_path_lands_under_data_dir_secrets(
    api: tuple[httpx.AsyncClient, Path], tmp_path: Path, method: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, data_dir = api
    monkeypatch.chdir(tmp_path)
    reply = await client.request(method, path, json={"backend_type": "encrypted_file", "file_path": "team/a.json"})
    assert reply.status_code == 200, reply.text
    target = data_dir / "secrets" / "team" / "a.json"
    assert reply.json()["file_path"] == str(target)
    assert (await client.put("/v1/secrets/bot/k", json={"value": "v"})).status_code == 200
    assert target.exists()
    assert not (tmp_path / "team").exists()


async def test_openapi_documents_the_rule(api: tuple[httpx.AsyncClient, Path]) -> None:
    client, _ = api
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    file_path = schemas["BackendConfig"]["properties"]["file_path"]
    assert file_path["pattern"].startswith("^[A-Za-z0-9_-]")
