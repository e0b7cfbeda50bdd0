# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.sandboxes``: isolated sandboxes with a stateful Python kernel, a shell and a workspace.

A sandbox is returned as a handle (``Sandbox``) with ``.python``, ``.shell`` and ``.filesystem``::

    sandbox = client.sandboxes.create(ttl=600)
    result = sandbox.python.exec("print(1 + 1)")
    sandbox.filesystem.write_file("app.py", "print('hi')")
    sandbox.delete()
"""

from __future__ import annotations

import base64
import builtins
import os
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx

from portside._sync._http import HTTP, new_idempotency_key
from portside.types.sandboxes import (
    Execution,
    ExecutionList,
    FileInfo,
    Profile,
    PythonExecResult,
    SandboxInfo,
    SandboxPage,
    ShellExecResult,
)

#: Extra seconds the HTTP request may take beyond an execution's own timeout.
EXEC_GRACE = 10.0

Tags = str | Sequence[str] | None


def _tags(tags: Tags) -> str | None:
    """``["a", "b"]`` or ``"a,b"`` -> ``"a,b"``."""
    if tags is None or isinstance(tags, str):
        return tags
    return ",".join(tags)


def _read_local(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _exec_body(timeout: int, include_code: bool, description: str | None, tags: Tags) -> dict[str, Any]:
    body: dict[str, Any] = {"timeout": timeout, "include_code": include_code}
    if description is not None:
        body["description"] = description
    joined = _tags(tags)
    if joined is not None:
        body["tags"] = joined
    return body


class PythonCapability:
    """``sandbox.python``: a stateful Jupyter kernel (variables persist between calls)."""

    def __init__(self, http: HTTP, sandbox_id: str) -> None:
        self._http = http
        self._base = f"/v1/sandboxes/{sandbox_id}"

    def exec(
        self,
        code: str,
        *,
        timeout: int = 30,
        include_code: bool = False,
        description: str | None = None,
        tags: Tags = None,
    ) -> PythonExecResult:
        """Run ``code``. An exception in it is ``success=False``; running past ``timeout`` raises
        ``ServerError`` with code ``timeout`` (504) after interrupting the kernel, whose state is kept."""
        body = {"code": code, **_exec_body(timeout, include_code, description, tags)}
        data = self._http.json("POST", f"{self._base}/python/exec", json=body, timeout=timeout + EXEC_GRACE)
        return PythonExecResult.model_validate(data)


class ShellCapability:
    """``sandbox.shell``: bash commands in the workspace."""

    def __init__(self, http: HTTP, sandbox_id: str) -> None:
        self._http = http
        self._base = f"/v1/sandboxes/{sandbox_id}"

    def exec(
        self,
        command: str,
        *,
        timeout: int = 30,
        cwd: str | None = None,
        include_code: bool = False,
        description: str | None = None,
        tags: Tags = None,
    ) -> ShellExecResult:
        """Run ``command`` (in ``cwd``, relative to the workspace). Non-zero exit is ``success=False``."""
        body = {"command": command, **_exec_body(timeout, include_code, description, tags)}
        if cwd is not None:
            body["cwd"] = cwd
        data = self._http.json("POST", f"{self._base}/shell/exec", json=body, timeout=timeout + EXEC_GRACE)
        return ShellExecResult.model_validate(data)


class Filesystem:
    """``sandbox.filesystem``: files of the workspace; paths are relative to ``/workspace``."""

    def __init__(self, http: HTTP, sandbox_id: str) -> None:
        self._http = http
        self._base = f"/v1/sandboxes/{sandbox_id}/filesystem"

    def read_file(self, path: str) -> str:
        """A text file's content (invalid UTF-8 is replaced; use ``download`` for binary files)."""
        data = self._http.json("GET", f"{self._base}/files", params={"path": path})
        return str(data.get("content", ""))

    def write_file(self, path: str, content: str | bytes) -> None:
        """Create or replace a file (parent directories are created). ``bytes`` are sent base64-encoded."""
        if isinstance(content, bytes):
            body = {"path": path, "content": base64.b64encode(content).decode(), "encoding": "base64"}
        else:
            body = {"path": path, "content": content}
        self._http.request("PUT", f"{self._base}/files", json=body)

    def list_dir(self, path: str = ".") -> builtins.list[FileInfo]:
        """Entries of a directory, directories first."""
        data = self._http.json("GET", f"{self._base}/directories", params={"path": path})
        return [FileInfo.model_validate(e) for e in data.get("entries", [])]

    def delete(self, path: str) -> None:
        """Delete a file or a directory tree (a symlink itself, never its target)."""
        self._http.request("DELETE", f"{self._base}/files", params={"path": path})

    def upload(self, path: str, content: bytes) -> None:
        """Upload bytes as a file (multipart; binary-safe)."""
        request = httpx.Request(
            "POST",
            "http://portside.invalid/",
            data={"path": path},
            files={"file": ("upload", content, "application/octet-stream")},
        )
        body = request.read()
        self._http.request(
            "POST", f"{self._base}/upload", content=body, headers={"Content-Type": request.headers["Content-Type"]}
        )

    def upload_file(self, path: str, local_path: str | os.PathLike[str]) -> None:
        """Upload a local file."""
        self.upload(path, _read_local(local_path))

    def download(self, path: str) -> bytes:
        """A file's bytes."""
        response = self._http.request("GET", f"{self._base}/download", params={"path": path})
        return response.content

    def download_to(self, path: str, local_path: str | os.PathLike[str]) -> int:
        """Stream a file to ``local_path``; returns the number of bytes written."""
        written = 0
        with self._http.stream("GET", f"{self._base}/download", params={"path": path}) as response:
            fd = os.open(local_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                for chunk in response.iter_bytes():
                    written += os.write(fd, chunk)
            finally:
                os.close(fd)
        return written


class Sandbox:
    """A handle on one sandbox. ``info`` is the last known record (``refresh()`` updates it).

    Used as a context manager, the sandbox is deleted on exit.
    """

    def __init__(self, http: HTTP, info: SandboxInfo) -> None:
        self._http = http
        self.info = info
        self._base = f"/v1/sandboxes/{info.id}"
        self.python = PythonCapability(http, info.id)
        self.shell = ShellCapability(http, info.id)
        self.filesystem = Filesystem(http, info.id)

    def __repr__(self) -> str:
        return f"<Sandbox {self.id} {self.status} profile={self.profile}>"

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def status(self) -> str:
        return self.info.status

    @property
    def profile(self) -> str:
        return self.info.profile

    @property
    def cargo_id(self) -> str:
        return self.info.cargo_id

    @property
    def capabilities(self) -> builtins.list[str]:
        return self.info.capabilities

    # ------------------------------------------------------------------ lifecycle

    def _update(self, data: Any) -> SandboxInfo:
        self.info = SandboxInfo.model_validate(data)
        return self.info

    def refresh(self) -> SandboxInfo:
        """Fetch the current record."""
        return self._update(self._http.json("GET", self._base))

    def stop(self) -> None:
        """Stop the runtime: files stay, Python variables are lost; the next call starts it again."""
        self._http.request("POST", f"{self._base}/stop")

    def delete(self) -> None:
        """Delete the sandbox and its own cargo (an attached external cargo stays)."""
        self._http.request("DELETE", self._base)

    def extend_ttl(self, seconds: int, *, idempotency_key: str | None = None) -> SandboxInfo:
        """Push the expiry back by ``seconds`` (conflict ``sandbox_ttl_infinite`` without a TTL)."""
        data = self._http.json(
            "POST",
            f"{self._base}/extend_ttl",
            json={"extend_by": seconds},
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return self._update(data)

    def keepalive(self) -> SandboxInfo:
        """Push the idle deadline back; never starts a runtime."""
        return self._update(self._http.json("POST", f"{self._base}/keepalive"))

    # ------------------------------------------------------------------ history

    def history(
        self,
        *,
        exec_type: str | None = None,
        success_only: bool = False,
        tags: Tags = None,
        has_notes: bool = False,
        has_description: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> ExecutionList:
        """Recorded executions, newest first. ``tags`` matches entries carrying any of the tags."""
        params = {
            "exec_type": exec_type,
            "success_only": success_only,
            "tags": _tags(tags),
            "has_notes": has_notes,
            "has_description": has_description,
            "limit": limit,
            "offset": offset,
        }
        return ExecutionList.model_validate(self._http.json("GET", f"{self._base}/history", params=params))

    def iter_history(
        self, *, exec_type: str | None = None, success_only: bool = False, tags: Tags = None, page_size: int = 100
    ) -> Iterator[Execution]:
        """Every recorded execution, newest first, fetched page by page."""
        offset = 0
        while True:
            page = self.history(
                exec_type=exec_type, success_only=success_only, tags=tags, limit=page_size, offset=offset
            )
            for entry in page.entries:
                yield entry
            offset += len(page.entries)
            if not page.entries or offset >= page.total:
                return

    def get_execution(self, execution_id: str) -> Execution:
        return Execution.model_validate(self._http.json("GET", f"{self._base}/history/{execution_id}"))

    def last_execution(self, *, exec_type: str | None = None) -> Execution:
        """The newest execution (of ``exec_type``); ``NotFoundError`` when there is none."""
        data = self._http.json("GET", f"{self._base}/history/last", params={"exec_type": exec_type})
        return Execution.model_validate(data)

    def annotate(
        self,
        execution_id: str,
        *,
        description: str | None = None,
        tags: Tags = None,
        notes: str | None = None,
    ) -> Execution:
        """Set an execution's description, tags and/or notes (omitted ones are unchanged)."""
        body: dict[str, str] = {}
        if description is not None:
            body["description"] = description
        joined = _tags(tags)
        if joined is not None:
            body["tags"] = joined
        if notes is not None:
            body["notes"] = notes
        data = self._http.json("PATCH", f"{self._base}/history/{execution_id}", json=body)
        return Execution.model_validate(data)

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.delete()


class Sandboxes:
    """Create, find and list sandboxes; list the profiles they are made from."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def create(
        self,
        *,
        profile: str = "python-default",
        ttl: int | None = None,
        cargo_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Sandbox:
        """Create a sandbox (``ttl`` seconds, None or 0 for no expiry) on its own or an external cargo.

        An idempotency key is generated when none is given, so retries never create two sandboxes.
        """
        body: dict[str, Any] = {"profile": profile}
        if ttl is not None:
            body["ttl"] = ttl
        if cargo_id is not None:
            body["cargo_id"] = cargo_id
        data = self._http.json(
            "POST", "/v1/sandboxes", json=body, idempotency_key=idempotency_key or new_idempotency_key()
        )
        return Sandbox(self._http, SandboxInfo.model_validate(data))

    def get(self, sandbox_id: str) -> Sandbox:
        """A handle on an existing sandbox."""
        data = self._http.json("GET", f"/v1/sandboxes/{sandbox_id}")
        return Sandbox(self._http, SandboxInfo.model_validate(data))

    def list(self, *, limit: int = 50, cursor: str | None = None, status: str | None = None) -> SandboxPage:
        """One page of sandboxes, newest first; pass ``next_cursor`` back as ``cursor``."""
        params = {"limit": limit, "cursor": cursor, "status": status}
        return SandboxPage.model_validate(self._http.json("GET", "/v1/sandboxes", params=params))

    def iter_all(self, *, status: str | None = None, page_size: int = 100) -> Iterator[SandboxInfo]:
        """Every sandbox, newest first, fetched page by page (``for s in client.sandboxes.iter_all()``)."""
        cursor: str | None = None
        while True:
            page = self.list(limit=page_size, cursor=cursor, status=status)
            for item in page.items:
                yield item
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    def profiles(self, *, detail: bool = False) -> builtins.list[Profile]:
        """The sandbox presets the server offers."""
        data = self._http.json("GET", "/v1/profiles", params={"detail": "true" if detail else None})
        return [Profile.model_validate(p) for p in data["items"]]
