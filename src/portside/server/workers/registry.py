"""Capability definitions (schemas and policy), cached in memory for the hot path."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Table, insert, select, update

from portside.server.auth import Principal
from portside.server.clock import as_utc, utcnow
from portside.server.errors import Forbidden, InvalidInput, NotFound
from portside.server.store import Database
from portside.server.workers.capabilities import (
    MAX_TTL_MS,
    MIN_TTL_MS,
    CapabilitySpec,
    check_capability_type,
    check_schema,
)
from portside.server.workers.domain import CapabilityDef
from portside.server.workers.models import CapabilityRow
from portside.server.workers.store import Exec, WorkersStore

_CACHE_S = 2.0
CAPS: Table = CapabilityRow.__table__  # type: ignore[assignment]


def _def_from(m: Any) -> CapabilityDef:
    return CapabilityDef(
        type=m["type"],
        owner=m["owner"],
        description=m["description"],
        input_schema=m["input_schema"],
        output_schema=m["output_schema"],
        max_attempts=m["max_attempts"],
        lease_ttl_ms=m["lease_ttl_ms"],
        updated_at=as_utc(m["updated_at"]) if m["updated_at"] is not None else None,
    )


def _def(row: CapabilityRow) -> CapabilityDef:
    return CapabilityDef(
        type=row.type,
        owner=row.owner,
        description=row.description,
        input_schema=row.input_schema,
        output_schema=row.output_schema,
        max_attempts=row.max_attempts,
        lease_ttl_ms=row.lease_ttl_ms,
        updated_at=row.updated_at,
    )


class CapabilityRegistry:
    """Reads and writes ``worker_capabilities``; ``get`` is served from a short-lived cache."""

    def __init__(self, db: Database, store: WorkersStore) -> None:
        self.db = db
        self.store = store
        self._cache: dict[str, tuple[float, CapabilityDef | None]] = {}

    def invalidate(self, ctype: str | None = None) -> None:
        if ctype is None:
            self._cache.clear()
        else:
            self._cache.pop(ctype, None)

    async def get(self, ctype: str) -> CapabilityDef | None:
        """The definition of ``ctype`` or None (cached for a couple of seconds)."""
        now = time.monotonic()
        hit = self._cache.get(ctype)
        if hit is not None and hit[0] > now:
            return hit[1]
        async with self.store.read() as x:
            m = (await x.execute(select(CAPS).where(CAPS.c.type == ctype))).mappings().first()
        found = _def_from(m) if m is not None else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[ctype] = (now + _CACHE_S, found)
        return found

    async def require(self, ctype: str) -> CapabilityDef:
        found = await self.get(check_capability_type(ctype))
        if found is None:
            raise NotFound(f"capability {ctype} is not defined", code="capability_not_found")
        return found

    async def list(self) -> list[CapabilityDef]:
        async with self.db.session() as s:
            rows = (await s.execute(select(CapabilityRow).order_by(CapabilityRow.type))).scalars().all()
        return [_def(r) for r in rows]

    async def put(
        self,
        principal: Principal,
        ctype: str,
        *,
        input_schema: Any = None,
        output_schema: Any = None,
        description: str = "",
        max_attempts: int | None = None,
        lease_ttl_ms: int | None = None,
    ) -> CapabilityDef:
        """Create or replace a definition (its owner or an admin may replace it)."""
        check_capability_type(ctype)
        for name, schema in (("input_schema", input_schema), ("output_schema", output_schema)):
            if schema is not None:
                check_schema(schema, name)
        if max_attempts is not None and not 1 <= max_attempts <= 100:
            raise InvalidInput("max_attempts must be in 1..100", code="invalid_max_attempts")
        if lease_ttl_ms is not None and not MIN_TTL_MS <= lease_ttl_ms <= MAX_TTL_MS:
            raise InvalidInput(f"lease_ttl_ms must be in {MIN_TTL_MS}..{MAX_TTL_MS}", code="invalid_lease_ttl")
        async with self.db.transaction() as s:
            row = await s.get(CapabilityRow, ctype, with_for_update=True)
            if row is None:
                row = CapabilityRow(type=ctype, owner=principal.owner)
                s.add(row)
            elif row.owner != principal.owner and not principal.has("admin"):
                raise Forbidden(f"capability {ctype} belongs to another owner", code="capability_not_owned")
            row.description = description[:2000]
            row.input_schema = input_schema
            row.output_schema = output_schema
            row.max_attempts = max_attempts
            row.lease_ttl_ms = lease_ttl_ms
        self.invalidate(ctype)
        return _def(row)

    async def upsert_from_worker(self, x: Exec, principal: Principal, spec: CapabilitySpec) -> bool:
        """Record the schemas a Portside Worker declares; True when the definition changed.

        A new type is created for the worker's owner; an existing one is updated only by its owner
        or an admin, so a worker cannot rewrite somebody else's contract.
        """
        if spec.input_schema is None and spec.output_schema is None and not spec.description:
            return False
        row = (await x.execute(select(CAPS).where(CAPS.c.type == spec.type))).mappings().first()
        now = utcnow()
        if row is None:
            await x.execute(
                insert(CAPS).values(
                    type=spec.type,
                    owner=principal.owner,
                    description=spec.description,
                    input_schema=spec.input_schema,
                    output_schema=spec.output_schema,
                    created_at=now,
                    updated_at=now,
                )
            )
            return True
        if row["owner"] != principal.owner and not principal.has("admin"):
            return False
        description = spec.description or row["description"]
        if (row["input_schema"], row["output_schema"], row["description"]) == (
            spec.input_schema,
            spec.output_schema,
            description,
        ):
            return False
        await x.execute(
            update(CAPS)
            .where(CAPS.c.type == spec.type)
            .values(
                input_schema=spec.input_schema,
                output_schema=spec.output_schema,
                description=description,
                updated_at=now,
            )
        )
        return True
