"""Secret storage backends: encrypted file, OS keyring, HashiCorp Vault (KV v2).

Every backend stores string values under ``(namespace, name)``; a namespace is typically an
agent id. Names and namespaces match ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``. Values come back
wrapped in :class:`SecretValue`, whose ``repr``/``str`` never show the value.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from portside.server.clock import isoformat, utcnow
from portside.server.errors import DomainError, Forbidden, InvalidInput, NotFound, Unavailable
from portside.server.secrets.crypto import DecryptionError, SecretCipher

try:  # fcntl is POSIX-only; without it the file backend is safe within one process only.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

SECRET_NAME_RE = _NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class SecretValue:
    """A secret string that does not leak through ``repr``, ``str``, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plaintext value. Call only where the value is actually needed."""
        return self._value

    def reveal_bytes(self) -> bytes:
        """The plaintext value as UTF-8 bytes."""
        return self._value.encode("utf-8")

    def __repr__(self) -> str:
        return "SecretValue('**********')"

    def __str__(self) -> str:
        return "**********"

    def __format__(self, spec: str) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretValue):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("SecretValue", self._value))

    def __len__(self) -> int:
        return len(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("SecretValue cannot be pickled")


def validate_name(value: str, what: str = "name") -> str:
    """Check a namespace or secret name; raises ``InvalidInput(code="invalid_secret_name")``."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise InvalidInput(
            f"invalid secret {what} {value!r}: use 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)",
            code="invalid_secret_name",
        )
    return value


def _plain(value: str | SecretValue) -> str:
    return value.reveal() if isinstance(value, SecretValue) else value


class SecretBackend(abc.ABC):
    """Async key/value store of secret strings, partitioned by namespace."""

    backend_type: ClassVar[str]
    """Matches the Symbiont SDK's ``SecretBackendType`` values."""

    @abc.abstractmethod
    async def get(self, namespace: str, name: str) -> SecretValue:
        """The value; raises ``NotFound(code="secret_not_found")`` when absent."""

    @abc.abstractmethod
    async def set(self, namespace: str, name: str, value: str | SecretValue) -> None:
        """Create or replace a value."""

    @abc.abstractmethod
    async def delete(self, namespace: str, name: str) -> bool:
        """Remove a value; returns whether it existed."""

    @abc.abstractmethod
    async def list_names(self, namespace: str) -> list[str]:
        """Sorted names stored in a namespace (never values)."""

    async def check(self) -> None:  # noqa: B027 - optional hook
        """Prove the backend is usable (reachable, credentials accepted); raise a DomainError if not."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources (default: nothing)."""


def _not_found(namespace: str, name: str) -> NotFound:
    return NotFound(f"secret {name!r} not found in {namespace!r}", code="secret_not_found")


# --------------------------------------------------------------------------- encrypted file


class EncryptedFileBackend(SecretBackend):
    """All secrets in one JSON file of AES-GCM ciphertexts (mode 0600, atomic replace).

    File layout::

        {"version": 1, "key_id": "<hex>", "secrets": {"<namespace>": {"<name>":
            {"ciphertext": "<base64 envelope>", "created_at": "...Z", "updated_at": "...Z"}}}}

    Each ciphertext's associated data is ``portside-secret:<namespace>/<name>``, so moving a
    ciphertext to another entry makes it fail to decrypt. The file is re-read on every call and
    writes hold an ``flock`` on ``<file>.lock``, so several processes can share it.
    """

    backend_type = "encrypted_file"

    def __init__(self, path: Path | str, cipher: SecretCipher) -> None:
        self.path = Path(path)
        self._cipher = cipher
        self._tlock = threading.Lock()

    @staticmethod
    def _aad(namespace: str, name: str) -> str:
        return f"portside-secret:{namespace}/{name}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._tlock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if fcntl is None:  # pragma: no cover
                yield
                return
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": 1, "key_id": self._cipher.key_id, "secrets": {}}
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DecryptionError(f"secret store {self.path} is corrupt", code="secret_store_corrupt") from exc
        if not isinstance(data, dict) or not isinstance(data.get("secrets"), dict):
            raise DecryptionError(f"secret store {self.path} is corrupt", code="secret_store_corrupt")
        return data

    def _save(self, data: dict[str, Any]) -> None:
        data["key_id"] = self._cipher.key_id
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _get(self, namespace: str, name: str) -> SecretValue:
        with self._locked():
            entry = self._load()["secrets"].get(namespace, {}).get(name)
        if entry is None:
            raise _not_found(namespace, name)
        return SecretValue(self._cipher.decrypt_text(entry["ciphertext"], self._aad(namespace, name)))

    def _set(self, namespace: str, name: str, value: str) -> None:
        token = self._cipher.encrypt_text(value, self._aad(namespace, name))
        now = isoformat(utcnow())
        with self._locked():
            data = self._load()
            entries = data["secrets"].setdefault(namespace, {})
            created = entries.get(name, {}).get("created_at", now)
            entries[name] = {"ciphertext": token, "created_at": created, "updated_at": now}
            self._save(data)

    def _delete(self, namespace: str, name: str) -> bool:
        with self._locked():
            data = self._load()
            entries = data["secrets"].get(namespace, {})
            if name not in entries:
                return False
            del entries[name]
            if not entries:
                data["secrets"].pop(namespace, None)
            self._save(data)
            return True

    def _list(self, namespace: str) -> list[str]:
        with self._locked():
            return sorted(self._load()["secrets"].get(namespace, {}))

    def _metadata(self, namespace: str, name: str) -> dict[str, str]:
        with self._locked():
            entry = self._load()["secrets"].get(namespace, {}).get(name)
        if entry is None:
            raise _not_found(namespace, name)
        return {"created_at": entry["created_at"], "updated_at": entry["updated_at"]}

    async def get(self, namespace: str, name: str) -> SecretValue:
        validate_name(namespace, "namespace")
        validate_name(name)
        return await asyncio.to_thread(self._get, namespace, name)

    async def set(self, namespace: str, name: str, value: str | SecretValue) -> None:
        validate_name(namespace, "namespace")
        validate_name(name)
        await asyncio.to_thread(self._set, namespace, name, _plain(value))

    async def delete(self, namespace: str, name: str) -> bool:
        validate_name(namespace, "namespace")
        validate_name(name)
        return await asyncio.to_thread(self._delete, namespace, name)

    async def list_names(self, namespace: str) -> list[str]:
        validate_name(namespace, "namespace")
        return await asyncio.to_thread(self._list, namespace)

    async def metadata(self, namespace: str, name: str) -> dict[str, str]:
        """``created_at`` / ``updated_at`` (ISO-8601 Z) of one secret."""
        validate_name(namespace, "namespace")
        validate_name(name)
        return await asyncio.to_thread(self._metadata, namespace, name)


# --------------------------------------------------------------------------- OS keyring


class KeyringBackend(SecretBackend):
    """Secrets in the OS keychain through python ``keyring``.

    Service name ``<service>:<namespace>``, username = secret name. keyring cannot enumerate,
    so each namespace keeps a JSON list of its names under service ``<service>-index``. With a
    ``cipher`` the values are additionally AES-GCM encrypted before they reach the keychain.
    """

    backend_type = "os_keychain"

    def __init__(
        self,
        *,
        service: str = "portside",
        keyring_backend: Any | None = None,
        cipher: SecretCipher | None = None,
    ) -> None:
        import keyring

        self._kr: Any = keyring_backend if keyring_backend is not None else keyring.get_keyring()
        self._service = service
        self._cipher = cipher
        self._lock = threading.Lock()

    def _svc(self, namespace: str) -> str:
        return f"{self._service}:{namespace}"

    def _call(self, fn: str, *args: str) -> Any:
        from keyring.errors import KeyringError, PasswordDeleteError

        try:
            return getattr(self._kr, fn)(*args)
        except PasswordDeleteError:
            return False
        except KeyringError as exc:
            raise Unavailable(f"OS keyring unavailable: {exc}", code="secret_backend_unavailable") from exc

    def _index(self, namespace: str) -> list[str]:
        raw = self._call("get_password", f"{self._service}-index", namespace)
        return list(json.loads(raw)) if raw else []

    def _write_index(self, namespace: str, names: list[str]) -> None:
        if names:
            self._call("set_password", f"{self._service}-index", namespace, json.dumps(sorted(set(names))))
        else:
            self._call("delete_password", f"{self._service}-index", namespace)

    def _aad(self, namespace: str, name: str) -> str:
        return f"portside-keyring:{namespace}/{name}"

    def _get(self, namespace: str, name: str) -> SecretValue:
        raw = self._call("get_password", self._svc(namespace), name)
        if raw is None:
            raise _not_found(namespace, name)
        if self._cipher is not None:
            raw = self._cipher.decrypt_text(raw, self._aad(namespace, name))
        return SecretValue(raw)

    def _set(self, namespace: str, name: str, value: str) -> None:
        stored = self._cipher.encrypt_text(value, self._aad(namespace, name)) if self._cipher else value
        with self._lock:
            self._call("set_password", self._svc(namespace), name, stored)
            names = self._index(namespace)
            if name not in names:
                self._write_index(namespace, [*names, name])

    def _delete(self, namespace: str, name: str) -> bool:
        with self._lock:
            existed = self._call("get_password", self._svc(namespace), name) is not None
            if existed:
                self._call("delete_password", self._svc(namespace), name)
            names = self._index(namespace)
            if name in names:
                self._write_index(namespace, [n for n in names if n != name])
            return existed

    async def get(self, namespace: str, name: str) -> SecretValue:
        validate_name(namespace, "namespace")
        validate_name(name)
        return await asyncio.to_thread(self._get, namespace, name)

    async def set(self, namespace: str, name: str, value: str | SecretValue) -> None:
        validate_name(namespace, "namespace")
        validate_name(name)
        await asyncio.to_thread(self._set, namespace, name, _plain(value))

    async def delete(self, namespace: str, name: str) -> bool:
        validate_name(namespace, "namespace")
        validate_name(name)
        return await asyncio.to_thread(self._delete, namespace, name)

    async def list_names(self, namespace: str) -> list[str]:
        validate_name(namespace, "namespace")
        return sorted(await asyncio.to_thread(self._index, namespace))


# --------------------------------------------------------------------------- HashiCorp Vault


_K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class BackendUnreachable(DomainError):
    """502: the configured secret backend did not answer (or not as a Vault KV v2 mount)."""

    code = "secret_backend_unreachable"
    status = 502


def _check_vault_url(url: str) -> None:
    """400 ``invalid_vault_url`` unless ``url`` is an absolute http(s) URL with a host (checked before any I/O)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and url.isprintable()
        valid = valid and (parts.port is None or parts.port > 0)  # .port raises ValueError when out of range
    except ValueError:
        valid = False
    if not valid:
        raise InvalidInput(
            "vault url must be an absolute http(s) URL with a host, e.g. http://127.0.0.1:8200",
            code="invalid_vault_url",
            details={"url": url[:200]},
        )


class VaultBackend(SecretBackend):
    """HashiCorp Vault KV version 2 via ``hvac``.

    Secret ``name`` of ``namespace`` lives at ``<mount_point>/data/<prefix>/<namespace>/<name>``
    with data ``{"value": "..."}``. ``auth_method`` follows the SDK's ``VaultAuthMethod``:
    ``token``, ``approle`` (role_id + secret_id), ``kubernetes`` (role + service-account JWT),
    ``aws_iam`` (role + AWS credentials from the environment).
    """

    backend_type = "vault"

    def __init__(
        self,
        url: str,
        *,
        auth_method: str = "token",
        token: str | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
        kubernetes_role: str | None = None,
        aws_role: str | None = None,
        mount_point: str = "secret",
        prefix: str = "portside",
        vault_namespace: str | None = None,
        verify: bool | str = True,
        timeout: float = 10.0,
    ) -> None:
        import hvac

        _check_vault_url(url)
        self._client: Any = hvac.Client(url=url, token=token, namespace=vault_namespace, verify=verify,
                                        timeout=timeout)
        self._auth_method = auth_method
        self._auth = {"role_id": role_id, "secret_id": secret_id, "kubernetes_role": kubernetes_role,
                      "aws_role": aws_role}
        self._mount = mount_point
        self._prefix = prefix.strip("/")
        self._lock = threading.Lock()
        self._logged_in = auth_method == "token"

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> VaultBackend:
        """Build from the SDK's ``VaultConfig`` shape (url, auth_method, token, role_id, ...)."""
        return cls(
            config["url"],
            auth_method=str(config.get("auth_method") or "token"),
            token=config.get("token"),
            role_id=config.get("role_id"),
            secret_id=config.get("secret_id"),
            kubernetes_role=config.get("kubernetes_role"),
            aws_role=config.get("aws_role"),
            **kwargs,
        )

    def _login(self) -> None:
        with self._lock:
            if self._logged_in:
                return
            auth = self._client.auth
            a = self._auth
            if self._auth_method == "approle":
                auth.approle.login(role_id=a["role_id"], secret_id=a["secret_id"])
            elif self._auth_method == "kubernetes":
                jwt = Path(_K8S_TOKEN_PATH).read_text(encoding="utf-8").strip()
                auth.kubernetes.login(role=a["kubernetes_role"], jwt=jwt)
            elif self._auth_method == "aws_iam":
                auth.aws.iam_login(
                    os.environ["AWS_ACCESS_KEY_ID"],
                    os.environ["AWS_SECRET_ACCESS_KEY"],
                    session_token=os.environ.get("AWS_SESSION_TOKEN"),
                    role=a["aws_role"],
                )
            else:
                raise InvalidInput(f"unknown Vault auth method {self._auth_method!r}", code="invalid_vault_auth")
            self._logged_in = True

    def _path(self, namespace: str, name: str = "") -> str:
        parts = [p for p in (self._prefix, namespace, name) if p]
        return "/".join(parts)

    def _run(self, fn: str, *args: Any, missing: Any = ..., **kwargs: Any) -> Any:
        import hvac.exceptions as hx
        import requests

        self._login()
        try:
            return getattr(self._client.secrets.kv.v2, fn)(*args, mount_point=self._mount, **kwargs)
        except hx.InvalidPath:
            if missing is ...:
                raise
            return missing
        except hx.Forbidden as exc:
            raise Forbidden(f"Vault denied access: {exc}", code="secret_backend_forbidden") from exc
        except (hx.VaultError, requests.RequestException) as exc:
            raise Unavailable(f"Vault unavailable: {exc}", code="secret_backend_unavailable") from exc

    def _get(self, namespace: str, name: str) -> SecretValue:
        res = self._run("read_secret_version", path=self._path(namespace, name),
                        raise_on_deleted_version=True, missing=None)
        if res is None:
            raise _not_found(namespace, name)
        value = res.get("data", {}).get("data", {}).get("value")
        if not isinstance(value, str):
            raise _not_found(namespace, name)
        return SecretValue(value)

    def _set(self, namespace: str, name: str, value: str) -> None:
        self._run("create_or_update_secret", path=self._path(namespace, name), secret={"value": value})

    def _delete(self, namespace: str, name: str) -> bool:
        path = self._path(namespace, name)
        if self._run("read_secret_metadata", path=path, missing=None) is None:
            return False
        self._run("delete_metadata_and_all_versions", path=path)
        return True

    def _list(self, namespace: str) -> list[str]:
        res = self._run("list_secrets", path=self._path(namespace), missing=None)
        if res is None:
            return []
        keys = res.get("data", {}).get("keys", [])
        return sorted(k for k in keys if isinstance(k, str) and not k.endswith("/"))

    def _check(self) -> None:
        """Log in, then list ``<mount>/metadata/<prefix>`` (404 = empty, fine): this proves the
        address answers, the credentials are accepted and the KV v2 mount is readable."""
        import hvac.exceptions as hx
        import requests

        where = {"url": self._client.url, "mount_point": self._mount}
        try:
            self._login()
            self._client.secrets.kv.v2.list_secrets(path=self._prefix, mount_point=self._mount)
        except hx.InvalidPath:
            return
        except (hx.Unauthorized, hx.Forbidden) as exc:
            raise InvalidInput(
                f"Vault rejected the credentials ({self._auth_method}): {exc}",
                code="secret_backend_auth_failed",
                details=where,
            ) from exc
        except requests.RequestException as exc:
            raise BackendUnreachable(
                f"Vault at {self._client.url} is unreachable: {type(exc).__name__}", details=where
            ) from exc
        except (OSError, KeyError) as exc:  # the k8s token file or AWS credentials are missing here
            raise InvalidInput(
                f"Vault credentials for {self._auth_method} are not available on this server: {exc!r}",
                code="secret_backend_auth_failed",
                details=where,
            ) from exc
        except hx.VaultError as exc:
            raise BackendUnreachable(
                f"Vault at {self._client.url} did not accept the check: {exc}",
                code="secret_backend_error",
                details=where,
            ) from exc

    async def check(self) -> None:
        """502 ``secret_backend_unreachable`` / ``secret_backend_error``, 400 ``secret_backend_auth_failed``."""
        await asyncio.to_thread(self._check)

    async def get(self, namespace: str, name: str) -> SecretValue:
        validate_name(namespace, "namespace")
        validate_name(name)
        return await asyncio.to_thread(self._get, namespace, name)

    async def set(self, namespace: str, name: str, value: str | SecretValue) -> None:
        validate_name(namespace, "namespace")
        validate_name(name)
        await asyncio.to_thread(self._set, namespace, name, _plain(value))

    async def delete(self, namespace: str, name: str) -> bool:
        validate_name(namespace, "namespace")
        validate_name(name)
        return await asyncio.to_thread(self._delete, namespace, name)

    async def list_names(self, namespace: str) -> list[str]:
        validate_name(namespace, "namespace")
        return await asyncio.to_thread(self._list, namespace)

    async def aclose(self) -> None:
        adapter = getattr(self._client, "adapter", None)
        if adapter is not None:
            await asyncio.to_thread(adapter.close)


# --------------------------------------------------------------------------- factory


#: ``file_path`` of the encrypted-file backend: a relative path of plain components (no ``.``/``..``,
#: no hidden names), resolved under ``<data_dir>/secrets/`` (the request schemas document it).
SECRET_FILE_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){0,7}$"
_SECRET_FILE_RE = re.compile(SECRET_FILE_PATTERN)
SECRET_FILE_DIR = "secrets"


def secret_file_path(data_dir: Path, file_path: object) -> Path:
    """Where the encrypted-file backend may keep ``file_path``: under ``<data_dir>/secrets/`` only.

    A caller-chosen path is confined so an admin key cannot make the server (often root) create or
    overwrite files anywhere on the host: an absolute path, a ``..`` or ``.`` component, a hidden
    name or any other character is 400 ``invalid_secret_file_path``, and so is a path that resolves
    outside the directory (through a symlink)."""
    base = Path(data_dir) / SECRET_FILE_DIR
    if not isinstance(file_path, str) or not _SECRET_FILE_RE.fullmatch(file_path):
        raise InvalidInput(
            "file_path must be a relative path under <data_dir>/secrets/ (components of letters, digits, "
            "'.', '_' and '-', not starting with '.'; no absolute path, no '..')",
            code="invalid_secret_file_path",
            details={"pattern": SECRET_FILE_PATTERN},
        )
    path = base / file_path
    root = base.resolve()
    resolved = path.resolve()
    if resolved == root or root not in resolved.parents:
        raise InvalidInput(
            "file_path resolves outside <data_dir>/secrets/", code="invalid_secret_file_path", details={}
        )
    return path


def backend_from_config(
    config: Mapping[str, Any],
    *,
    cipher: SecretCipher,
    data_dir: Path,
) -> SecretBackend:
    """Build a backend from the SDK's ``SecretBackendConfig`` shape.

    ``backend_type``: ``encrypted_file`` (``file_path`` defaults to ``<data_dir>/secrets.json``; a
    given one is relative to ``<data_dir>/secrets/`` and confined there, :func:`secret_file_path`;
    ``encryption_key`` overrides the server key), ``os_keychain``, or ``vault`` (``vault_config``).
    """
    kind = str(config.get("backend_type") or "encrypted_file")
    if kind == "encrypted_file":
        from portside.server.secrets.crypto import parse_key

        key = config.get("encryption_key")
        file_cipher = SecretCipher(parse_key(key)) if key else cipher
        file_path = config.get("file_path")
        path = Path(data_dir) / "secrets.json" if file_path is None else secret_file_path(data_dir, file_path)
        return EncryptedFileBackend(path, file_cipher)
    if kind == "os_keychain":
        return KeyringBackend(cipher=cipher)
    if kind == "vault":
        vault = config.get("vault_config")
        if not isinstance(vault, Mapping) or not vault.get("url"):
            raise InvalidInput("vault backend needs vault_config.url", code="invalid_secret_backend")
        return VaultBackend.from_config(vault)
    raise InvalidInput(f"unknown secret backend type {kind!r}", code="invalid_secret_backend")


__all__ = [
    "EncryptedFileBackend",
    "KeyringBackend",
    "SecretBackend",
    "SecretValue",
    "VaultBackend",
    "backend_from_config",
    "validate_name",
]
