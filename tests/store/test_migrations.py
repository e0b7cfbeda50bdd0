from __future__ import annotations

import asyncio

from sqlalchemy import inspect

from portside.server.store import Database


async def test_migrations_apply_and_are_current(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.migrate()
        await db.migrate()  # idempotent
        current, heads = await db.migration_state()
        assert current == heads and heads

        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"api_keys", "idempotency_records", "alembic_version"} <= tables
    finally:
        await db.dispose()


async def test_concurrent_replicas_migrate_safely(db_url: str) -> None:
    dbs = [Database(db_url) for _ in range(3)]
    try:
        if dbs[0].is_sqlite:
            for db in dbs:  # one process at a time on SQLite, like one embedded server
                await db.migrate()
        else:
            await asyncio.gather(*(db.migrate() for db in dbs))
        current, heads = await dbs[0].migration_state()
        assert current == heads
    finally:
        for db in dbs:
            await db.dispose()


async def test_empty_database_reports_pending(db_url: str) -> None:
    db = Database(db_url)
    try:
        current, heads = await db.migration_state()
        assert current == set() and heads
    finally:
        await db.dispose()
