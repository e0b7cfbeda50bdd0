"""Transactions for the workers area, cheap enough for the dispatch hot path.

On SQLite every statement of SQLAlchemy's async driver (aiosqlite) is a round trip through a
worker thread; in a busy server those hand-offs, not the SQL, dominated the latency of a lease
(several ms per transaction). The workers area's statements are tiny and indexed, so on a SQLite
file it runs them on a synchronous ``sqlite3`` connection on the event-loop thread instead:

* writes hold the process-wide ``db.write_lock`` (shared with every other area) and start with
  ``BEGIN IMMEDIATE`` under a short busy timeout; if another connection holds the file's write lock
  we back off *asynchronously* and retry, so the loop is never blocked waiting for it;
* reads use a second connection in autocommit mode (WAL readers never wait for writers).

PostgreSQL (and in-memory SQLite) use the regular async sessions. Both paths expose the same tiny
interface: ``await x.execute(statement, params)`` returning a buffered SQLAlchemy result.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, Result
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.base import Executable

from portside.server.store import Database

_BUSY_MS = 20


class Exec(Protocol):
    """Runs statements inside one transaction (or one read)."""

    async def execute(self, statement: Executable, params: Any = None) -> Any: ...


class _SyncExec:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def execute(self, statement: Executable, params: Any = None) -> Result[Any]:
        return self.conn.execute(statement, params)


class _AsyncExec:
    __slots__ = ("conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def execute(self, statement: Executable, params: Any = None) -> Result[Any]:
        return await self.conn.execute(statement, params)


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class WorkersStore:
    """``tx()`` for writes, ``read()`` for reads; see the module docstring."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.inline = db.is_sqlite and ":memory:" not in db.url and "mode=memory" not in db.url
        self._writer: Engine | None = None
        self._reader: Engine | None = None
        self._wconn: Connection | None = None
        self._rconn: Connection | None = None

    def _engine(self) -> Engine:
        url = self.db.url.replace("+aiosqlite", "")
        engine = create_engine(
            url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False, "timeout": _BUSY_MS / 1000},
        )
        event.listen(engine, "connect", _pragmas)
        return engine

    def _writer_conn(self) -> Connection:
        if self._wconn is None:
            self._writer = self._engine()
            self._wconn = self._writer.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._wconn

    def _reader_conn(self) -> Connection:
        if self._rconn is None:
            self._reader = self._engine()
            self._rconn = self._reader.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._rconn

    def close(self) -> None:
        for conn in (self._wconn, self._rconn):
            if conn is not None:
                conn.close()
        for engine in (self._writer, self._reader):
            if engine is not None:
                engine.dispose()
        self._wconn = self._rconn = None
        self._writer = self._reader = None

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[Exec]:
        """One write transaction, committed on success and rolled back on error."""
        if not self.inline:  # PostgreSQL: a plain connection (no ORM session) in one transaction
            if self.db.is_sqlite:
                async with self.db.write_lock, self.db.engine.begin() as aconn:
                    yield _AsyncExec(aconn)
            else:
                async with self.db.engine.begin() as aconn:
                    yield _AsyncExec(aconn)
            return
        async with self.db.write_lock:
            conn = self._writer_conn()
            delay = 0.001
            while True:
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    break
                except OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                    await asyncio.sleep(delay)  # another connection writes: wait without blocking the loop
                    delay = min(delay * 2, 0.05)
            try:
                yield _SyncExec(conn)
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            try:
                conn.exec_driver_sql("COMMIT")
            except OperationalError:
                conn.exec_driver_sql("ROLLBACK")
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Exec]:
        """Reads outside any write transaction (committed data only)."""
        if not self.inline:
            async with self.db.engine.connect() as aconn:
                yield _AsyncExec(aconn)
            return
        yield _SyncExec(self._reader_conn())


def _is_busy(exc: OperationalError) -> bool:
    orig = exc.orig
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig).lower()
