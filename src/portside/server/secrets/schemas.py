"""Response models of ``/v1/secrets``, ``/v1/secret-backend`` and ``/v1/audit/secrets``.

The SDK's :mod:`portside.types.secrets` models, shared; the metadata also carries ``name`` (the same
as ``secret_name``).
"""

from __future__ import annotations

from pydantic import Field

from portside.server.api.wire import Deleted, WireModel
from portside.types.secrets import Secret, SecretAuditPage, SecretBackend, SecretInfo

__all__ = ["SecretAuditPage", "SecretBackendOut", "SecretDeleted", "SecretInfoOut", "SecretListOut", "SecretOut"]


class SecretInfoOut(SecretInfo):
    name: str = Field(description="Same as secret_name.")


class SecretOut(Secret):
    name: str = Field(description="Same as secret_name.")


class SecretListOut(WireModel):
    agent_id: str
    secrets: list[str]
    items: list[SecretInfoOut] = []


class SecretDeleted(Deleted):
    agent_id: str
    secret_name: str


SecretBackendOut = SecretBackend


class SymbiontSecretList(WireModel):
    """Symbiont's secret list: names only."""

    agent_id: str
    secrets: list[str]


class SymbiontSecretValue(WireModel):
    """Symbiont's ``SecretResponse`` with the value."""

    agent_id: str
    secret_name: str
    value: str
