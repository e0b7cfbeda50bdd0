"""Tables of the secrets area: namespace owners, secret metadata, the audit log, the backend choice.

Secret values never live here: they are in the configured backend (encrypted file, OS keychain, Vault).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portside.server.clock import utcnow
from portside.server.store.base import Base, TimestampMixin, UTCDateTime


class SecretNamespaceRow(Base):
    """Who owns an agent's secret namespace (the first key owner that stored into it)."""

    __tablename__ = "secret_namespaces"

    agent_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SecretMetaRow(TimestampMixin, Base):
    """Metadata of one stored secret (never its value)."""

    __tablename__ = "secret_metadata"

    agent_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    backend: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(200))


class SecretAuditRow(Base):
    """One access to a secret: reads, writes, deletes, lists and denials."""

    __tablename__ = "secret_audit"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    agent_id: Mapped[str] = mapped_column(String(128))
    secret_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(64))
    namespace_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    backend: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)

    __table_args__ = (Index("ix_secret_audit_agent_at", "agent_id", "at"),)


class SecretBackendRow(Base):
    """The configured secret backend (one row, id 'default'); its config is encrypted."""

    __tablename__ = "secret_backend_config"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    backend_type: Mapped[str] = mapped_column(String(32))
    config_enc: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
