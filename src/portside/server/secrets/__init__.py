"""Secrets at rest: AES-256-GCM envelope crypto and pluggable secret backends."""

from portside.server.secrets.backends import (
    EncryptedFileBackend,
    KeyringBackend,
    SecretBackend,
    SecretValue,
    VaultBackend,
    backend_from_config,
    validate_name,
)
from portside.server.secrets.crypto import (
    DecryptionError,
    SecretCipher,
    derive_key,
    generate_key,
    load_or_create_key_file,
    parse_key,
    resolve_master_key,
)

__all__ = [
    "DecryptionError",
    "EncryptedFileBackend",
    "KeyringBackend",
    "SecretBackend",
    "SecretCipher",
    "SecretValue",
    "VaultBackend",
    "backend_from_config",
    "derive_key",
    "generate_key",
    "load_or_create_key_file",
    "parse_key",
    "resolve_master_key",
    "validate_name",
]
