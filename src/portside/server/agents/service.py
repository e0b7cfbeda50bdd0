"""The agent registry: named agents reachable over HTTP or served by a worker capability.

The registry is general on purpose: flows call agents, other doors (AI Spine, later Symbiont)
list and manage the same records.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select

from portside.server.agents.models import AgentRow
from portside.server.clock import utcnow
from portside.server.errors import Conflict, InvalidInput, NotFound
from portside.server.idempotency import prior_insert
from portside.server.ids import new_id
from portside.server.store import Database

AGENT_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$")


#: Cloud metadata services: an agent endpoint there would leak the server's credentials.
_BLOCKED_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


def _check_endpoint(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parsed = urlparse(value)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ValueError("endpoint must be an absolute http:// or https:// URL")
    host = parsed.hostname.lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host in _BLOCKED_HOSTS or (address is not None and address.is_link_local):
        raise ValueError("endpoint may not be a link-local or cloud metadata address")
    return value.rstrip("/")


class AgentSpec(BaseModel):
    """What a caller sends to register an agent."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, description="Chosen id; generated ('agt_...') when absent.")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    endpoint: str | None = Field(
        default=None, max_length=2000, description="Base URL; Portside POSTs to <endpoint>/execute."
    )
    capability: str | None = Field(
        default=None, max_length=200, description="Serve the agent by this worker capability."
    )
    capabilities: list[str] = Field(default_factory=list, max_length=100)
    type: str = Field(default="processor", min_length=1, max_length=64)
    configuration: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is not None and not AGENT_ID.match(value):
            raise ValueError("agent id must be 1-100 characters of letters, digits, '_', '.', ':' or '-'")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return _check_endpoint(value)


class AgentPatch(BaseModel):
    """Fields of an agent that may change (native API only; AI Spine has no update)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    endpoint: str | None = Field(default=None, max_length=2000)
    capability: str | None = Field(default=None, max_length=200)
    capabilities: list[str] | None = Field(default=None, max_length=100)
    type: str | None = Field(default=None, min_length=1, max_length=64)
    configuration: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    is_active: bool | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return _check_endpoint(value)


@dataclass(frozen=True)
class Agent:
    """A registered agent."""

    id: str
    name: str
    description: str
    endpoint: str | None
    capability: str | None
    capabilities: list[str]
    type: str
    configuration: dict[str, Any]
    metadata: dict[str, Any]
    is_active: bool
    created_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def backing(self) -> str:
        """'http', 'worker' or 'none'."""
        if self.capability:
            return "worker"
        return "http" if self.endpoint else "none"


def _agent(row: AgentRow) -> Agent:
    return Agent(
        id=row.id,
        name=row.name,
        description=row.description,
        endpoint=row.endpoint,
        capability=row.capability,
        capabilities=list(row.capabilities or []),
        type=row.type,
        configuration=dict(row.configuration or {}),
        metadata=dict(row.meta or {}),
        is_active=row.is_active,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class AgentService:
    """Create, read, update and delete agents."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, spec: AgentSpec, *, created_by: str = "admin") -> Agent:
        """Register an agent; 409 when the id is taken.

        A retry of an idempotent create whose first attempt committed the agent before crashing gets
        that agent back instead of a second one.
        """
        made = prior_insert(AgentRow.__tablename__)
        if made is not None and spec.id in (None, "", made):
            existing = await self.find(made)
            if existing is not None:
                return existing
        agent_id = spec.id or new_id("agt")
        row = AgentRow(
            id=agent_id,
            name=spec.name,
            description=spec.description,
            endpoint=spec.endpoint,
            capability=spec.capability or None,
            capabilities=list(spec.capabilities),
            type=spec.type,
            configuration=dict(spec.configuration),
            meta=dict(spec.metadata),
            is_active=spec.is_active,
            created_by=created_by,
        )
        async with self.db.transaction() as s:
            if await s.get(AgentRow, agent_id) is not None:
                raise Conflict(
                    f"agent '{agent_id}' already exists", code="agent_exists", details={"agent_id": agent_id}
                )
            s.add(row)
        return _agent(row)

    async def upsert(self, spec: AgentSpec, *, created_by: str = "admin") -> Agent:
        """Create the agent, or replace every field of an existing one with the same id."""
        if not spec.id:
            raise InvalidInput("upserting an agent needs an id")
        async with self.db.transaction() as s:
            row = await s.get(AgentRow, spec.id)
            if row is None:
                row = AgentRow(id=spec.id, created_by=created_by)
                s.add(row)
            row.name, row.description = spec.name, spec.description
            row.endpoint, row.capability = spec.endpoint, spec.capability or None
            row.capabilities, row.type = list(spec.capabilities), spec.type
            row.configuration, row.meta = dict(spec.configuration), dict(spec.metadata)
            row.is_active = spec.is_active
            row.updated_at = utcnow()
        return _agent(row)

    async def get(self, agent_id: str) -> Agent:
        async with self.db.session() as s:
            row = await s.get(AgentRow, agent_id)
        if row is None:
            raise NotFound(f"agent '{agent_id}' not found", code="agent_not_found", details={"agent_id": agent_id})
        return _agent(row)

    async def find(self, agent_id: str) -> Agent | None:
        async with self.db.session() as s:
            row = await s.get(AgentRow, agent_id)
        return _agent(row) if row else None

    async def list(
        self, *, type: str | None = None, capability: str | None = None, active: bool | None = None
    ) -> list[Agent]:
        """Agents, oldest first; optionally filtered by type, advertised capability or activity."""
        stmt = select(AgentRow).order_by(AgentRow.created_at, AgentRow.id)
        if type is not None:
            stmt = stmt.where(AgentRow.type == type)
        if active is not None:
            stmt = stmt.where(AgentRow.is_active.is_(active))
        async with self.db.session() as s:
            rows = (await s.execute(stmt)).scalars().all()
        agents = [_agent(r) for r in rows]
        if capability is not None:
            agents = [a for a in agents if capability in a.capabilities or a.capability == capability]
        return agents

    async def update(self, agent_id: str, patch: AgentPatch) -> Agent:
        changes = patch.model_dump(exclude_unset=True)
        async with self.db.transaction() as s:
            row = await s.get(AgentRow, agent_id)
            if row is None:
                raise NotFound(f"agent '{agent_id}' not found", code="agent_not_found", details={"agent_id": agent_id})
            for key, value in changes.items():
                if key == "metadata":
                    row.meta = dict(value or {})
                elif key in {"endpoint", "capability"}:
                    setattr(row, key, value or None)  # "" or null unbinds
                elif value is not None:
                    setattr(row, key, value)
            row.updated_at = utcnow()
        return _agent(row)

    async def delete(self, agent_id: str) -> Agent:
        async with self.db.transaction() as s:
            row = await s.get(AgentRow, agent_id)
            if row is None:
                raise NotFound(f"agent '{agent_id}' not found", code="agent_not_found", details={"agent_id": agent_id})
            agent = _agent(row)
            await s.delete(row)
        return agent

    async def existing(self, ids: set[str]) -> set[str]:
        """The subset of ``ids`` that are registered."""
        if not ids:
            return set()
        async with self.db.session() as s:
            rows = (await s.execute(select(AgentRow.id).where(AgentRow.id.in_(ids)))).scalars().all()
        return set(rows)

    async def count(self) -> tuple[int, int]:
        """(all agents, active agents)."""
        async with self.db.session() as s:
            total = (await s.execute(select(func.count()).select_from(AgentRow))).scalar_one()
            active = (
                await s.execute(select(func.count()).select_from(AgentRow).where(AgentRow.is_active.is_(True)))
            ).scalar_one()
        return int(total), int(active)
