"""The tools' backend for ``portside mcp`` (stdio): a client of a running Portside server.

Sandbox calls go to the REST routes through the SDK's HTTP core (auth, retries of safe requests,
typed errors); skill calls go through the SDK's ``skills`` resource. The server runs every rule,
so stdio and ``/mcp`` behave the same. Code executions are POSTs without an idempotency key, so
they are never retried (code must not run twice).
"""

from __future__ import annotations

from typing import Any

from portside._async._http import AsyncHTTP, new_idempotency_key
from portside._async.resources.skills import AsyncSkills
from portside._config import ClientConfig
from portside.errors import APIConnectionError, APIError
from portside.server.mcp_server.backend import JSON, BackendError

_EXEC_SLACK = 30.0  # seconds of HTTP timeout beyond an execution's own timeout


def _drop_none(body: JSON) -> JSON:
    return {k: v for k, v in body.items() if v is not None}


class RemoteBackend:
    """Reaches Portside's services over its REST API as the configured API key."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.http = AsyncHTTP(config)
        self.skills = AsyncSkills(self.http)

    async def aclose(self) -> None:
        await self.http.aclose()

    def require(self, scope: str) -> None:
        """The server checks the key's scopes on every request."""

    def error_of(self, exc: BaseException) -> BackendError | None:
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, APIError):
            return BackendError(exc.code, exc.message, exc.status_code, dict(exc.details))
        if isinstance(exc, APIConnectionError):
            return BackendError("unavailable", str(exc), 503)
        return None

    def _sbx(self, sandbox_id: str, tail: str = "") -> str:
        return f"/v1/sandboxes/{sandbox_id}{tail}"

    async def _json(self, method: str, path: str, **kwargs: Any) -> JSON:
        data: JSON = await self.http.json(method, path, **kwargs)
        return data

    # ------------------------------------------------------------ sandboxes

    async def create_sandbox(self, *, ttl: int | None, profile: str) -> str:
        body = _drop_none({"ttl": ttl, "profile": profile})
        data = await self._json("POST", "/v1/sandboxes", json=body, idempotency_key=new_idempotency_key())
        return str(data["id"])

    async def delete_sandbox(self, sandbox_id: str) -> None:
        await self.http.request("DELETE", self._sbx(sandbox_id))

    async def stop_sandbox(self, sandbox_id: str) -> None:
        await self.http.request("POST", self._sbx(sandbox_id, "/stop"))

    async def exec_python(
        self, sandbox_id: str, code: str, *, timeout: int, description: str | None, tags: str | None
    ) -> JSON:
        body = _drop_none({"code": code, "timeout": timeout, "description": description, "tags": tags})
        return await self._json("POST", self._sbx(sandbox_id, "/python/exec"), json=body, timeout=timeout + _EXEC_SLACK)

    async def exec_shell(
        self,
        sandbox_id: str,
        command: str,
        *,
        cwd: str | None,
        timeout: int,
        description: str | None,
        tags: str | None,
    ) -> JSON:
        body = _drop_none(
            {"command": command, "cwd": cwd, "timeout": timeout, "description": description, "tags": tags}
        )
        return await self._json("POST", self._sbx(sandbox_id, "/shell/exec"), json=body, timeout=timeout + _EXEC_SLACK)

    async def read_file(self, sandbox_id: str, path: str) -> JSON:
        return await self._json("GET", self._sbx(sandbox_id, "/filesystem/files"), params={"path": path})

    async def write_file(self, sandbox_id: str, path: str, content: str) -> JSON:
        body = {"path": path, "content": content}
        return await self._json("PUT", self._sbx(sandbox_id, "/filesystem/files"), json=body)

    async def list_files(self, sandbox_id: str, path: str) -> JSON:
        return await self._json("GET", self._sbx(sandbox_id, "/filesystem/directories"), params={"path": path})

    async def history(self, sandbox_id: str, query: JSON) -> JSON:
        params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in query.items()}
        return await self._json("GET", self._sbx(sandbox_id, "/history"), params=params)

    async def get_execution(self, sandbox_id: str, execution_id: str) -> JSON:
        return await self._json("GET", self._sbx(sandbox_id, f"/history/{execution_id}"))

    async def last_execution(self, sandbox_id: str, exec_type: str | None) -> JSON:
        return await self._json("GET", self._sbx(sandbox_id, "/history/last"), params={"exec_type": exec_type})

    async def annotate(
        self, sandbox_id: str, execution_id: str, *, description: str | None, tags: str | None, notes: str | None
    ) -> JSON:
        body = _drop_none({"description": description, "tags": tags, "notes": notes})
        return await self._json("PATCH", self._sbx(sandbox_id, f"/history/{execution_id}"), json=body)

    # ------------------------------------------------------------ skills

    async def create_candidate(self, fields: JSON) -> JSON:
        return (await self.skills.create_candidate(**fields)).model_dump(mode="json")

    async def evaluate_candidate(self, candidate_id: str, fields: JSON) -> JSON:
        return (await self.skills.evaluate(candidate_id, **fields)).model_dump(mode="json")

    async def run_evaluation(self, candidate_id: str, benchmark_id: str) -> JSON:
        return (await self.skills.run_evaluation(candidate_id, benchmark_id=benchmark_id)).model_dump(mode="json")

    async def promote(
        self, candidate_id: str, *, stage: str, canary_share: float | None, change_summary: str | None
    ) -> JSON:
        release = await self.skills.promote(
            candidate_id, stage=stage, canary_share=canary_share, change_summary=change_summary
        )
        return release.model_dump(mode="json")

    async def list_candidates(self, *, status: str | None, skill_key: str | None, limit: int, offset: int) -> JSON:
        page = await self.skills.list_candidates(status=status, skill_key=skill_key, limit=limit, offset=offset)
        return page.model_dump(mode="json")

    async def list_releases(
        self, *, skill_key: str | None, active_only: bool, stage: str | None, limit: int, offset: int
    ) -> JSON:
        page = await self.skills.list_releases(
            skill_key=skill_key, active_only=active_only, stage=stage, limit=limit, offset=offset
        )
        return page.model_dump(mode="json")

    async def rollback(self, release_id: str) -> JSON:
        return (await self.skills.rollback(release_id)).model_dump(mode="json")

    async def release_health(self, release_id: str) -> JSON:
        return (await self.skills.health(release_id)).model_dump(mode="json")

    async def run_skill(
        self, skill_key: str, *, input: Any, sandbox_id: str | None, stage: str | None, timeout: int
    ) -> JSON:
        res = await self.skills.run(skill_key, input=input, sandbox_id=sandbox_id, stage=stage, timeout=timeout)
        return res.model_dump(mode="json")
