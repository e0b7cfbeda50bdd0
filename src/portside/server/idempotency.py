"""Ownership of running idempotent requests: instance id, leases and committed effects.

A ``POST`` with an ``Idempotency-Key`` is claimed by a pending row (see
:class:`portside.server.http.middleware.IdempotencyMiddleware`). The row names its owner, this
process's :func:`instance_id`, and carries a lease the owner renews while the request runs. A row
whose lease has passed belongs to a dead process and the next retry takes it over.

While a claimed request runs, every ORM transaction it commits also records, *in that same
transaction*, the rows it inserted (``"table:pk"``) on the idempotency row. So after a crash the
retry that takes over knows what the dead attempt had already created, and a service can hand that
back (:func:`prior_insert`) instead of creating a duplicate.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, event, inspect, update
from sqlalchemy.orm import Session, UOWTransaction

from portside.server.ids import new_id
from portside.server.store.core_models import IdempotencyRow

#: Seconds a pending row stays owned without renewal; a crashed owner blocks retries this long at most.
LEASE_SECONDS = 10.0
#: How often a running request renews its lease.
RENEW_SECONDS = 3.0

_INSTANCE_ID = new_id("ins")
_TABLE = cast(Table, IdempotencyRow.__table__)
_PENDING = "portside_idempotency_effects"
#: At most this many effects are kept per request (the first ones: a create's own row comes first).
MAX_EFFECTS = 100


def instance_id() -> str:
    """This server process's identity: new at every start, so a restarted server owns nothing."""
    return _INSTANCE_ID


@dataclass
class Claim:
    """The pending idempotency row a running request owns."""

    row_id: int
    owner: str
    #: ``"table:pk"`` inserted by committed transactions of earlier (crashed) attempts.
    prior: list[str] = field(default_factory=list)
    #: Everything committed so far, earlier attempts included; written to the row on every commit.
    committed: list[str] = field(default_factory=list)
    active: bool = True


_current: contextvars.ContextVar[Claim | None] = contextvars.ContextVar("portside_idempotency_claim", default=None)


@contextmanager
def claimed(claim: Claim) -> Iterator[Claim]:
    """Run the request body under ``claim``; tasks it spawns stop recording once it returns."""
    token = _current.set(claim)
    try:
        yield claim
    finally:
        claim.active = False
        _current.reset(token)


def prior_insert(table: str) -> str | None:
    """The primary key of the first ``table`` row an earlier attempt of this request committed.

    A create service calls this before inserting: when it returns a key, the crashed attempt already
    created the resource (but never stored its response), so the service returns that resource
    instead of making a second one. ``None`` outside an idempotent request or when nothing was made.
    """
    claim = _current.get()
    if claim is None:
        return None
    prefix = f"{table}:"
    for effect in claim.prior:
        if effect.startswith(prefix):
            return effect[len(prefix) :]
    return None


def _active() -> Claim | None:
    claim = _current.get()
    return claim if claim is not None and claim.active else None


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    if _active() is None:
        return
    pending: list[str] = session.info.setdefault(_PENDING, [])
    for obj in session.new:
        if len(pending) >= MAX_EFFECTS:
            break
        table = getattr(obj, "__tablename__", None)
        if table is None or table == _TABLE.name:
            continue
        key = inspect(obj).mapper.primary_key_from_instance(obj)  # identity is set only after this hook
        pending.append(f"{table}:{','.join(str(part) for part in key)}")


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    claim = _active()
    if claim is None:
        return
    session.flush()  # objects added since the last flush are part of this commit too
    pending: list[str] = session.info.get(_PENDING, [])
    if not pending:
        return
    session.connection().execute(
        update(_TABLE)
        .where(_TABLE.c.id == claim.row_id, _TABLE.c.owner == claim.owner)
        .values(effects=[*claim.committed, *pending][:MAX_EFFECTS])
    )


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending: list[str] = session.info.pop(_PENDING, [])
    claim = _current.get()
    if pending and claim is not None:
        claim.committed.extend(pending)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def effects_of(row: Any) -> list[str]:
    """The recorded effects of an idempotency row (``[]`` when none)."""
    value = getattr(row, "effects", None)
    return [str(v) for v in value] if isinstance(value, list) else []
