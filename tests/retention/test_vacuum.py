"""SQLite gives purged space back: new stores use incremental auto-vacuum, older ones are switched once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from portside.server.store import Database


def _mode(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA auto_vacuum").fetchone()[0])


async def test_new_store_is_incremental(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    try:
        await db.migrate()
    finally:
        await db.dispose()
    assert _mode(tmp_path / "new.db") == 2


async def test_older_store_is_switched_and_shrinks_after_deletes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a store made before incremental auto-vacuum
        conn.execute("CREATE TABLE filler (b BLOB)")
        conn.executemany("INSERT INTO filler VALUES (randomblob(100000))", [()] * 50)
    assert _mode(path) == 0
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.migrate()
        assert _mode(path) == 2
        assert not await db.ensure_incremental_vacuum()  # once only
        big = path.stat().st_size
        async with db.transaction() as s:
            await s.execute(text("DELETE FROM filler"))
        await db.incremental_vacuum()
        assert path.stat().st_size < big // 10
    finally:
        await db.dispose()
