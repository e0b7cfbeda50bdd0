"""Engine, sessions and migrations for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_LOCK_ID = 0x504F5254  # "PORT": pg advisory lock taken while migrating


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at Portside's migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # Before WAL: the mode is fixed when the first table is created (see ensure_incremental_vacuum).
    cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Database:
    """Owns the async engine and hands out sessions."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
            if ":memory:" in url:
                kwargs["poolclass"] = NullPool
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite allows one writer at a time; serialising writers in-process avoids lock churn.
        self.write_lock = asyncio.Lock()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session; commit is the caller's job (``async with db.session() as s, s.begin():``)."""
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction, committed on success, rolled back on error."""
        if self.is_sqlite:
            async with self.write_lock, self.sessionmaker() as session, session.begin():
                yield session
        else:
            async with self.sessionmaker() as session, session.begin():
                yield session

    async def migrate(self) -> None:
        """Apply every pending migration (all heads). Safe with several replicas on PostgreSQL."""

        def _upgrade(conn: Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")

        async with self.engine.connect() as conn:
            if not self.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
                await conn.commit()
            try:
                await conn.run_sync(_upgrade)
                await conn.commit()
            finally:
                if not self.is_sqlite:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_ID})
                    await conn.commit()
        if self.is_sqlite:
            await self.ensure_incremental_vacuum()

    async def ensure_incremental_vacuum(self) -> bool:
        """SQLite: switch a database made before incremental auto-vacuum to it (one full VACUUM, once).

        New databases get the mode from the connect pragma; an older file needs a VACUUM to take it.
        Returns True when this call converted the file.
        """
        if not self.is_sqlite or ":memory:" in self.url:
            return False
        async with self.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            mode = (await auto.execute(text("PRAGMA auto_vacuum"))).scalar_one()
            if int(mode) == 2:
                return False
            await auto.execute(text("PRAGMA auto_vacuum=INCREMENTAL"))
            await auto.execute(text("VACUUM"))
        return True

    async def incremental_vacuum(self) -> None:
        """SQLite: give the free pages back to the OS (and checkpoint the WAL). No-op on PostgreSQL."""
        if not self.is_sqlite:
            return
        async with self.write_lock, self.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            raw = await auto.get_raw_connection()
            # The pragma frees one page per step; only a script runs it to the end (the sqlite3
            # module steps a single statement once).
            driver: Any = raw.driver_connection
            await driver.executescript("PRAGMA incremental_vacuum;")
            await auto.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

    async def migration_state(self) -> tuple[set[str], set[str]]:
        """(revisions applied in the database, head revisions of the scripts)."""
        heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())

        def _current(conn: Connection) -> set[str]:
            return set(MigrationContext.configure(conn).get_current_heads())

        async with self.engine.connect() as conn:
            current = await conn.run_sync(_current)
        return current, heads

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def check(self) -> dict[str, Any]:
        """A health check for status endpoints: ``{"ok", "backend"}`` or ``{"ok": False, "error"}``."""
        try:
            await self.ping()
        except Exception as exc:  # reported, not raised
            return {"ok": False, "error": type(exc).__name__}
        return {"ok": True, "backend": "sqlite" if self.is_sqlite else "postgresql"}

    async def dispose(self) -> None:
        await self.engine.dispose()


async def lock_key(session: AsyncSession, key: str) -> None:
    """Serialise transactions that touch ``key`` until this transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, writers are already
    serialised by :meth:`Database.transaction`.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})
