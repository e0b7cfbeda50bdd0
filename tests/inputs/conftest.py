"""One app per module and database backend (start-up is the slow part), an admin client and a keyless one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from portside.server.app import create_app
from tests.conftest import ADMIN_KEY, create_pg_database, drop_pg_database, make_settings


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('inputs') / 'portside.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    data_dir: Path = tmp_path_factory.mktemp("data")
    application = create_app(make_settings(data_dir, module_db_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Admin client."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://portside.test",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def public(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A caller with no API key (what a webhook sender is)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portside.test") as client:
        yield client
