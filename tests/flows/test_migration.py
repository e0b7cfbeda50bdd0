"""The flows_0001 migration creates exactly the tables the models describe (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from portside.server.store import Database
from portside.server.store.registry import load_all_models

pytestmark = pytest.mark.timeout(60)
TABLES = {"agents", "flows", "flow_versions", "flow_executions", "flow_node_runs"}


def _table_of(diff: Any) -> str | None:
    op = diff[0] if isinstance(diff, list) else diff
    for item in op[1:]:
        name = getattr(item, "name", None) if not isinstance(item, str) else None
        table = getattr(item, "table", None)
        if table is not None and getattr(table, "name", None):
            return str(table.name)
        if name and op[0] in ("add_table", "remove_table"):
            return str(name)
        if isinstance(item, str) and item in TABLES:
            return item
    return None


async def test_models_match_migration(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.migrate()
        metadata = load_all_models()

        def diffs(conn: Connection) -> list[Any]:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            return list(compare_metadata(context, metadata))

        async with db.engine.connect() as conn:
            found = await conn.run_sync(diffs)
        mine = [d for d in found if _table_of(d) in TABLES]
        assert mine == []
    finally:
        await db.dispose()
