"""Wake-ups between replicas: in-process callbacks, plus PostgreSQL LISTEN/NOTIFY when scaled out.

Every event is delivered to local subscribers at once; on PostgreSQL it is also sent with
``pg_notify`` so other replicas hear it (this replica ignores its own echo). Notifications are a
latency optimisation only: every consumer also polls the store, so a lost one costs a poll period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

log = logging.getLogger("portside.workers.notify")

CHANNEL = "portside_workers"
_MAX_PAYLOAD = 7000
Listener = Callable[[str, dict[str, Any]], None]


class Notifier:
    """In-process fan-out of ``(event, payload)`` pairs."""

    def __init__(self, replica_id: str) -> None:
        self.replica_id = replica_id
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        """Open connections (no-op in process)."""

    async def stop(self) -> None:
        """Close connections (no-op in process)."""

    def publish(self, event: str, payload: dict[str, Any]) -> None:
        """Deliver to local listeners now, and to other replicas when scaled out."""
        self._deliver(event, payload)

    def publish_remote(self, event: str, payload: dict[str, Any]) -> None:
        """Tell other replicas only (no-op in process)."""

    def _deliver(self, event: str, payload: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, payload)
            except Exception:  # pragma: no cover - a listener bug must not stop the others
                log.exception("workers listener failed on %s", event)


class PgNotifier(Notifier):
    """``Notifier`` that also speaks PostgreSQL ``LISTEN``/``NOTIFY`` (asyncpg)."""

    def __init__(self, replica_id: str, sqlalchemy_url: str) -> None:
        super().__init__(replica_id)
        url = make_url(sqlalchemy_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._listen_conn: Any = None
        self._send_conn: Any = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._listen_loop(), name="workers-pg-listen"),
            asyncio.create_task(self._send_loop(), name="workers-pg-notify"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for conn in (self._listen_conn, self._send_conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
        self._listen_conn = self._send_conn = None

    def publish(self, event: str, payload: dict[str, Any]) -> None:
        self._deliver(event, payload)
        self.publish_remote(event, payload)

    def publish_remote(self, event: str, payload: dict[str, Any]) -> None:
        for chunk in _split(event, payload):
            self._outbox.put_nowait(json.dumps({"r": self.replica_id, "e": event, "p": chunk}, separators=(",", ":")))

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, raw: str) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            return
        if msg.get("r") == self.replica_id:
            return
        self._deliver(str(msg.get("e")), msg.get("p") or {})

    async def _connect(self) -> Any:
        import asyncpg

        return await asyncpg.connect(self._dsn)

    async def _listen_loop(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                conn = await self._connect()
                self._listen_conn = conn
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, ev=lost: ev.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                delay = 0.2
                # Everything may have changed while we were deaf: wake every consumer once.
                self._deliver("resync", {})
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _send_loop(self) -> None:
        while not self._stopping:
            first = await self._outbox.get()
            batch = [first]
            while not self._outbox.empty() and len(batch) < 100:
                batch.append(self._outbox.get_nowait())
            try:
                if self._send_conn is None or self._send_conn.is_closed():
                    self._send_conn = await self._connect()
                await self._send_conn.executemany("SELECT pg_notify($1, $2)", [(CHANNEL, m) for m in batch])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the pollers will catch up
                log.warning("NOTIFY failed (%s); %d wake-ups dropped", exc, len(batch))
                self._send_conn = None


def _split(event: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Split big list payloads so each NOTIFY stays under PostgreSQL's 8000-byte limit."""
    text = json.dumps(payload, separators=(",", ":"))
    if len(text) <= _MAX_PAYLOAD:
        return [payload]
    for key, value in payload.items():
        if isinstance(value, list) and len(value) > 1:
            half = len(value) // 2
            return _split(event, {**payload, key: value[:half]}) + _split(event, {**payload, key: value[half:]})
        if isinstance(value, dict) and len(value) > 1:
            items = list(value.items())
            half = len(items) // 2
            return _split(event, {**payload, key: dict(items[:half])}) + _split(
                event, {**payload, key: dict(items[half:])}
            )
    return [{}]  # cannot split: send an empty wake-up; receivers poll


def make_notifier(replica_id: str, database_url: str) -> Notifier:
    """The notifier for this store: PostgreSQL gets LISTEN/NOTIFY, SQLite stays in process."""
    if database_url.startswith("postgresql"):
        return PgNotifier(replica_id, database_url)
    return Notifier(replica_id)
