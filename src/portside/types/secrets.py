"""Secret models (values appear only in ``Secret``)."""

from __future__ import annotations

from portside.types.common import Model


class SecretInfo(Model):
    """Metadata of a secret; never its value."""

    agent_id: str
    secret_name: str
    description: str | None = None
    backend: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class Secret(SecretInfo):
    value: str

    def __repr__(self) -> str:
        return f"Secret(agent_id={self.agent_id!r}, secret_name={self.secret_name!r}, value='**********')"

    __str__ = __repr__


class SecretList(Model):
    agent_id: str
    secrets: list[str]
    items: list[SecretInfo] = []


class SecretAuditEvent(Model):
    id: str
    at: str
    action: str
    outcome: str
    agent_id: str
    secret_name: str | None = None
    actor: str
    key_id: str
    backend: str
    request_id: str | None = None


class SecretAuditPage(Model):
    items: list[SecretAuditEvent]
    next_cursor: str | None = None


class SecretBackend(Model):
    backend_type: str
    configured: bool = True
    file_path: str | None = None
