"""The browser capability: a headless Chromium inside the sandbox, driven with agent-browser commands.

One browser agent (``_browser_agent.py``) runs INSIDE each sandbox that uses the browser, started on the
first browser call (:mod:`.browser_session`); it shares the sandbox's namespaces, cgroup, rlimits and
workspace, with no network unless the profile allows egress through :mod:`.browser_egress`. It owns one
Chromium (the system one) whose pages, cookies and element refs persist across calls, like the Python kernel.

``exec`` runs one command, ``exec_batch`` a list (overall timeout, ``stop_on_error``), ``run_skill`` the command
list of a browser skill's active release (recorded as release evidence). Every call lands in the execution
history with ``exec_type="browser"``. ``include_trace`` (and ``learn``) store a trace (commands, outputs,
timings, a screenshot after each step) under ``.browser/traces/<id>/`` in the workspace; ``trace_ref`` is the
workspace path of its ``trace.json``. See docs/browser.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from portside.server.auth import Principal
from portside.server.clock import utcnow
from portside.server.errors import DomainError, InvalidInput, NotFound
from portside.server.ids import new_id
from portside.server.keyedlocks import KeyedLocks
from portside.server.sandboxes import files
from portside.server.sandboxes.browser_egress import EgressPolicy
from portside.server.sandboxes.browser_session import (
    CHROMIUM_CANDIDATES,
    STATE_DIR,
    AgentSession,
    BrowserUnavailable,
    find_chromium,
    start_agent,
)
from portside.server.sandboxes.drivers.base import SandboxHandle
from portside.server.sandboxes.models import SandboxRow
from portside.server.sandboxes.profiles import CAPABILITY_BROWSER
from portside.server.sandboxes.service import SandboxService

if TYPE_CHECKING:
    from portside.server.sandboxes.models import ExecutionRow
    from portside.server.skills.schemas import CandidateInfo
    from portside.server.skills.service import SkillService

log = logging.getLogger("portside.browser")

MAX_EXEC_TIMEOUT = 300
MAX_BATCH_TIMEOUT = 600
MAX_COMMANDS = 500
RPC_GRACE_S = 10.0


# ------------------------------------------------------------------------------------------ wire models


class BrowserExecResult(BaseModel):
    success: bool
    output: str
    error: str | None = None
    exit_code: int | None = None
    execution_id: str | None = None
    execution_time_ms: int | None = None
    trace_ref: str | None = None


class BrowserBatchStepResult(BaseModel):
    cmd: str
    stdout: str
    stderr: str
    exit_code: int
    step_index: int
    duration_ms: int = 0


class BrowserBatchExecResult(BaseModel):
    results: list[BrowserBatchStepResult]
    total_steps: int
    completed_steps: int
    success: bool
    duration_ms: int = 0
    execution_id: str | None = None
    execution_time_ms: int | None = None
    trace_ref: str | None = None


class BrowserSkillRunResult(BaseModel):
    skill_key: str
    release_id: str
    execution_id: str
    execution_time_ms: int
    trace_ref: str | None = None
    results: list[BrowserBatchStepResult]
    total_steps: int
    completed_steps: int
    success: bool
    duration_ms: int = 0


class BrowserTrace(BaseModel):
    trace_ref: str
    trace: dict[str, Any]


# ------------------------------------------------------------------------------------------ agent session


@dataclass
class _Step:
    cmd: str
    stdout: str
    stderr: str
    exit_code: int
    step_index: int
    duration_ms: int
    offset_ms: int = 0
    url: str | None = None
    screenshot: str | None = None

    def wire(self) -> BrowserBatchStepResult:
        return BrowserBatchStepResult(
            cmd=self.cmd,
            stdout=self.stdout,
            stderr=self.stderr,
            exit_code=self.exit_code,
            step_index=self.step_index,
            duration_ms=self.duration_ms,
        )


@dataclass
class _Trace:
    id: str = field(default_factory=lambda: new_id("trc"))

    @property
    def dir(self) -> str:
        return f"{STATE_DIR}/traces/{self.id}"

    @property
    def ref(self) -> str:
        return f"{self.dir}/trace.json"

    def shot(self, index: int) -> str:
        return f"{self.dir}/step-{index:03d}.png"


# ------------------------------------------------------------------------------------------ the service


class BrowserService:
    """Browser sessions of this server's sandboxes, and the exec/batch/skill operations on them."""

    def __init__(
        self,
        sandboxes: SandboxService,
        *,
        executable: str | None = None,
        egress: dict[str, list[str]] | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self.sandboxes = sandboxes
        self.executable = executable
        self.egress: dict[str, list[str]] = dict(egress or {})
        self.start_timeout = start_timeout
        self._sessions: dict[str, AgentSession] = {}
        self._locks = KeyedLocks()
        # A stopped (or deleted) sandbox's browser agent died with its runtime: drop the session.
        sandboxes.runtimes.on_stop.append(self.forget)

    def set_egress(self, profile_id: str, allow: list[str]) -> None:
        """Let sandboxes of ``profile_id`` reach ``allow`` from their browser (validated now)."""
        EgressPolicy(allow)  # raises ValueError on a malformed entry
        self.egress[profile_id] = list(allow)

    # -------------------------------------------------------------- sessions

    async def _usable(self, caller: Principal, sandbox_id: str) -> tuple[SandboxRow, SandboxHandle]:
        # The sandbox service checks ownership, the browser capability and expiry, and starts the runtime.
        return await self.sandboxes._usable(caller, sandbox_id, CAPABILITY_BROWSER)

    async def _session(self, row: SandboxRow, handle: SandboxHandle) -> AgentSession:
        async with self._locks.hold(row.id):
            current = self._sessions.get(row.id)
            if current is not None and current.alive and current.handle is handle:
                return current
            if current is not None:
                await current.close()
                self._sessions.pop(row.id, None)
            session = await self._start(row, handle)
            self._sessions[row.id] = session
            return session

    async def forget(self, sandbox_id: str) -> None:
        """Close and drop the sandbox's browser session, if any (its runtime stopped)."""
        session = self._sessions.pop(sandbox_id, None)
        if session is not None:
            await session.close()

    async def _drop(self, sandbox_id: str, session: AgentSession) -> None:
        await session.close()
        if self._sessions.get(sandbox_id) is session:
            self._sessions.pop(sandbox_id, None)

    async def _start(self, row: SandboxRow, handle: SandboxHandle) -> AgentSession:
        executable = self.executable or find_chromium()
        if executable is None:
            raise BrowserUnavailable(
                "Chromium is not installed on this server (Debian/Ubuntu: apt-get install chromium)",
                details={"looked_for": list(CHROMIUM_CANDIDATES)},
            )
        session = await start_agent(
            handle, executable=executable, egress=self.egress.get(row.profile, []), start_timeout=self.start_timeout
        )
        log.info("sandbox %s: browser agent started (pid %s in the sandbox)", row.id, session.agent_pid)
        return session

    # -------------------------------------------------------------- running commands

    async def _step(
        self,
        row: SandboxRow,
        handle: SandboxHandle,
        cmd: str,
        index: int,
        timeout: float,
        trace: _Trace | None,
        started: float,
    ) -> _Step:
        began = time.perf_counter()
        session = await self._session(row, handle)
        try:
            reply = await session.call(
                "exec",
                rpc_timeout=timeout + RPC_GRACE_S,
                cmd=cmd,
                timeout=timeout,
                shot=trace.shot(index) if trace else None,
            )
        except BrowserUnavailable as exc:
            # The agent died or hung: drop it (its browser goes with it); the next call starts a fresh one.
            await self._drop(row.id, session)
            reply = {
                "stdout": "",
                "stderr": f"\u2717 {exc.message}; the browser session was reset\n",
                "exit_code": -1,
            }
        return _Step(
            cmd=cmd,
            stdout=str(reply.get("stdout", "")),
            stderr=str(reply.get("stderr", "")),
            exit_code=int(reply.get("exit_code", -1)),
            step_index=index,
            duration_ms=int(reply.get("duration_ms") or (time.perf_counter() - began) * 1000),
            offset_ms=int((began - started) * 1000),
            url=reply.get("url"),
            screenshot=reply.get("shot"),
        )

    async def _run(
        self,
        row: SandboxRow,
        handle: SandboxHandle,
        commands: list[str],
        *,
        timeout: float,
        stop_on_error: bool,
        trace: _Trace | None,
    ) -> tuple[list[_Step], int]:
        """Run commands in order within one overall time budget."""
        started = time.perf_counter()
        steps: list[_Step] = []
        for index, cmd in enumerate(commands):
            remaining = timeout - (time.perf_counter() - started)
            if remaining <= 0:
                break
            step = await self._step(row, handle, cmd, index, remaining, trace, started)
            steps.append(step)
            if step.exit_code != 0 and stop_on_error:
                break
        return steps, int((time.perf_counter() - started) * 1000)

    async def _write_trace(
        self,
        row: SandboxRow,
        handle: SandboxHandle,
        trace: _Trace,
        kind: str,
        steps: list[_Step],
        total: int,
        duration_ms: int,
        extra: dict[str, Any] | None = None,
    ) -> str | None:
        document = {
            "kind": kind,
            "trace_id": trace.id,
            "sandbox_id": row.id,
            "created_at": utcnow().isoformat(),
            "total_steps": total,
            "completed_steps": len(steps),
            "success": len(steps) == total and all(s.exit_code == 0 for s in steps),
            "duration_ms": duration_ms,
            "steps": [
                {
                    "kind": "individual_action",
                    "step_index": s.step_index,
                    "cmd": s.cmd,
                    "stdout": s.stdout,
                    "stderr": s.stderr,
                    "exit_code": s.exit_code,
                    "started_at_ms": s.offset_ms,
                    "duration_ms": s.duration_ms,
                    "url": s.url,
                    "screenshot": s.screenshot,
                }
                for s in steps
            ],
            **(extra or {}),
        }
        try:
            # The agent writes it, inside the sandbox: the server never writes into the workspace itself.
            session = await self._session(row, handle)
            reply = await session.call(
                "write_file", rpc_timeout=15, path=trace.ref, content=json.dumps(document, indent=1)
            )
        except DomainError as exc:
            log.warning("sandbox %s: could not store browser trace: %s", row.id, exc)
            return None
        return trace.ref if reply.get("ok") else None

    @staticmethod
    def _check_timeout(timeout: float, limit: int) -> float:
        if not 0 < timeout <= limit:
            raise InvalidInput(f"timeout must be between 1 and {limit} seconds", details={"timeout": timeout})
        return float(timeout)

    @staticmethod
    def _check_commands(commands: list[str]) -> list[str]:
        if not commands:
            raise InvalidInput("commands must list at least one command")
        if len(commands) > MAX_COMMANDS:
            raise InvalidInput(f"at most {MAX_COMMANDS} commands per batch")
        for cmd in commands:
            if not isinstance(cmd, str) or not cmd.strip() or "\x00" in cmd:
                raise InvalidInput("every command must be a non-empty string", details={"cmd": cmd})
        return list(commands)

    # -------------------------------------------------------------- public operations

    async def exec(
        self,
        caller: Principal,
        sandbox_id: str,
        cmd: str,
        *,
        timeout: float = 30,
        description: str | None = None,
        tags: str | None = None,
        learn: bool = False,
        include_trace: bool = False,
    ) -> BrowserExecResult:
        """Run one agent-browser command in the sandbox's browser and record it in the history."""
        limit = self._check_timeout(timeout, MAX_EXEC_TIMEOUT)
        (cmd,) = self._check_commands([cmd])
        row, handle = await self._usable(caller, sandbox_id)
        trace = _Trace() if include_trace or learn else None
        steps, elapsed = await self._run(row, handle, [cmd], timeout=limit, stop_on_error=True, trace=trace)
        step = steps[0]
        stored = await self._write_trace(row, handle, trace, "browser_exec_trace", steps, 1, elapsed) if trace else None
        entry = await self.sandboxes.history.record(
            sandbox_id=row.id,
            owner=row.owner,
            session_id=row.session_id,
            exec_type="browser",
            code=cmd,
            success=step.exit_code == 0,
            exit_code=step.exit_code,
            execution_time_ms=elapsed,
            output=step.stdout,
            error=step.stderr or None,
            data={"kind": "browser_exec", "commands": [cmd], "learn": learn, "url": step.url},
            description=description,
            tags=tags,
            payload_ref=stored,
        )
        return BrowserExecResult(
            success=step.exit_code == 0,
            output=step.stdout,
            error=step.stderr or None,
            exit_code=step.exit_code,
            execution_id=entry.id,
            execution_time_ms=elapsed,
            trace_ref=stored if include_trace else None,
        )

    async def exec_batch(
        self,
        caller: Principal,
        sandbox_id: str,
        commands: list[str],
        *,
        timeout: float = 60,
        stop_on_error: bool = True,
        description: str | None = None,
        tags: str | None = None,
        learn: bool = False,
        include_trace: bool = False,
    ) -> BrowserBatchExecResult:
        """Run commands in order (one overall timeout); one history entry for the whole batch."""
        limit = self._check_timeout(timeout, MAX_BATCH_TIMEOUT)
        commands = self._check_commands(commands)
        row, handle = await self._usable(caller, sandbox_id)
        trace = _Trace() if include_trace or learn else None
        steps, elapsed = await self._run(row, handle, commands, timeout=limit, stop_on_error=stop_on_error, trace=trace)
        success = len(steps) == len(commands) and all(s.exit_code == 0 for s in steps)
        stored = (
            await self._write_trace(row, handle, trace, "browser_batch_trace", steps, len(commands), elapsed)
            if trace
            else None
        )
        entry = await self._record_batch(row, commands, steps, success, elapsed, description, tags, stored, learn)
        return BrowserBatchExecResult(
            results=[s.wire() for s in steps],
            total_steps=len(commands),
            completed_steps=len(steps),
            success=success,
            duration_ms=elapsed,
            execution_id=entry.id,
            execution_time_ms=elapsed,
            trace_ref=stored if include_trace else None,
        )

    async def _record_batch(
        self,
        row: SandboxRow,
        commands: list[str],
        steps: list[_Step],
        success: bool,
        elapsed: int,
        description: str | None,
        tags: str | None,
        payload_ref: str | None,
        learn: bool,
        extra: dict[str, Any] | None = None,
    ) -> ExecutionRow:
        last = steps[-1] if steps else None
        return await self.sandboxes.history.record(
            sandbox_id=row.id,
            owner=row.owner,
            session_id=row.session_id,
            exec_type="browser",
            code="\n".join(commands),
            success=success,
            exit_code=last.exit_code if last else None,
            execution_time_ms=elapsed,
            output="\n".join(s.stdout.strip() for s in steps if s.stdout.strip()),
            error="\n".join(s.stderr.strip() for s in steps if s.stderr.strip()) or None,
            data={
                "kind": "browser_batch",
                "commands": commands,
                "completed_steps": len(steps),
                "learn": learn,
                "url": last.url if last else None,
                **(extra or {}),
            },
            description=description,
            tags=tags,
            payload_ref=payload_ref,
        )

    async def run_skill(
        self,
        caller: Principal,
        sandbox_id: str,
        skill_key: str,
        skills: SkillService,
        *,
        timeout: float = 60,
        stop_on_error: bool = True,
        include_trace: bool = False,
        description: str | None = None,
        tags: str | None = None,
    ) -> BrowserSkillRunResult:
        """Replay the active release of a browser skill here; the run is recorded as release evidence.

        ``skills`` is the :class:`~portside.server.skills.service.SkillService` (passed in, so that the
        sandbox area does not import the skills area).
        """
        from portside.server.skills.models import SkillRunRow

        limit = self._check_timeout(timeout, MAX_BATCH_TIMEOUT)
        row, handle = await self._usable(caller, sandbox_id)
        release = await skills.choose_release(skill_key)
        candidate = await skills.get_candidate(release.candidate_id)
        commands = await self._skill_commands(caller, skills, candidate)
        trace = _Trace() if include_trace else None
        steps, elapsed = await self._run(row, handle, commands, timeout=limit, stop_on_error=stop_on_error, trace=trace)
        success = len(steps) == len(commands) and all(s.exit_code == 0 for s in steps)
        stored = (
            await self._write_trace(
                row, handle, trace, "browser_skill_trace", steps, len(commands), elapsed,
                {"skill_key": skill_key, "release_id": release.id, "version": release.version},
            )
            if trace
            else None
        )  # fmt: skip
        merged = ",".join(
            t for t in [tags or "", f"skill:{skill_key}", f"release:{release.id}", f"stage:{release.stage}"] if t
        )
        entry = await self._record_batch(
            row, commands, steps, success, elapsed, description, merged, stored, False,
            {"skill_key": skill_key, "release_id": release.id},
        )  # fmt: skip
        failed = next((s for s in steps if s.exit_code != 0), None)
        error = None
        if not success:
            error = (
                (failed.stderr.strip() or f"step {failed.step_index} exited {failed.exit_code}")
                if failed
                else (f"timed out after {len(steps)} of {len(commands)} steps")
            )
        await skills.record_run(
            SkillRunRow(
                id=new_id("run"),
                release_id=release.id,
                skill_key=skill_key,
                sandbox_id=row.id,
                execution_id=entry.id,
                success=success,
                duration_ms=elapsed,
                error=error[:2000] if error else None,
                created_at=utcnow(),
            )
        )
        return BrowserSkillRunResult(
            skill_key=skill_key,
            release_id=release.id,
            execution_id=entry.id,
            execution_time_ms=elapsed,
            trace_ref=stored,
            results=[s.wire() for s in steps],
            total_steps=len(commands),
            completed_steps=len(steps),
            success=success,
            duration_ms=elapsed,
        )

    async def _skill_commands(self, caller: Principal, skills: SkillService, candidate: CandidateInfo) -> list[str]:
        """The commands of a candidate: its browser payload, else the commands of its browser evidence."""
        from portside.server.skills.runner import browser_commands

        if candidate.payload_ref and str(candidate.payload_ref).startswith("sha256-"):
            payload = await skills.get_payload(candidate.payload_ref)
            commands = browser_commands(payload.kind, payload.payload)
            if commands is None:
                raise InvalidInput(
                    f"skill payload of kind '{payload.kind}' is not a browser command list "
                    '(expected {"commands": ["open ...", ...]})',
                    code="payload_not_runnable",
                )
            return self._check_commands(commands)
        executions = await self.sandboxes.history.by_ids(caller, list(candidate.source_execution_ids))
        commands = []
        for ex in executions:
            if ex.exec_type != "browser":
                continue
            recorded = (ex.data or {}).get("commands")
            if isinstance(recorded, list) and all(isinstance(c, str) for c in recorded):
                commands.extend(recorded)
            else:
                commands.extend(line for line in ex.code.splitlines() if line.strip())
        if not commands:
            raise InvalidInput(
                f"candidate {candidate.id} has no browser payload and no browser executions as evidence",
                code="payload_not_runnable",
            )
        return self._check_commands(commands)

    async def read_trace(self, caller: Principal, sandbox_id: str, trace_ref: str) -> BrowserTrace:
        """A stored trace, by its ``trace_ref`` (or trace id)."""
        row = await self.sandboxes._row(caller, sandbox_id)
        self.sandboxes.profiles.get(row.profile).require(CAPABILITY_BROWSER)
        ref = trace_ref if "/" in trace_ref else f"{STATE_DIR}/traces/{trace_ref}/trace.json"
        if not ref.startswith(f"{STATE_DIR}/traces/"):
            raise NotFound(f"trace {trace_ref} not found", details={"trace_ref": trace_ref})
        workspace = await self.sandboxes.workspace_ready(row.cargo_id)
        try:
            data = await asyncio.to_thread(files.read_bytes, workspace, ref, 16 * 1024 * 1024)
            trace = json.loads(data)
        except (NotFound, InvalidInput, OSError, ValueError):  # missing, through a link, or not a regular file
            raise NotFound(f"trace {trace_ref} not found", details={"trace_ref": trace_ref}) from None
        if not isinstance(trace, dict):
            raise NotFound(f"trace {trace_ref} not found", details={"trace_ref": trace_ref})
        return BrowserTrace(trace_ref=ref, trace=trace)

    async def close(self) -> None:
        """Hang up on every browser agent (server shutdown)."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
