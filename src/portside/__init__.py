"""Portside: one SDK for sandboxes, skills, workers, flows and trust.

Quick start::

    import portside

    with portside.Client() as client:  # PORTSIDE_URL / PORTSIDE_API_KEY from the environment
        print(client.health().status)
"""

from portside._async.client import AsyncClient
from portside._sync.client import Client
from portside._version import __version__
from portside.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    ExecutionTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    PortsideError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from portside.worker import TaskContext, TaskFailed, Worker

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "ExecutionTimeoutError",
    "NotFoundError",
    "PermissionDeniedError",
    "PortsideError",
    "RateLimitError",
    "ServerError",
    "TaskContext",
    "TaskFailed",
    "ValidationError",
    "Worker",
    "__version__",
]
