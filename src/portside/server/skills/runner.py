"""Run a skill body in a sandbox: a Python entry point, a shell command, or a replay of steps.

Payload shapes (``kind`` in brackets):
- ``python``: ``{"code": "...", "entrypoint": "run"}`` — ``run(input)`` is called and its JSON-able
  return value is the result; without an entry point the code runs and its stdout is the result.
- ``shell``: ``{"command": "..."}`` — stdout is the result; a non-zero exit is a failure.
- ``steps``: ``{"steps": [{"type": "python"|"shell", "code": "..."}, ...]}`` — a replay; every step
  must succeed; the last step's output is the result.
- ``browser``: ``{"commands": ["open ...", "click @e1", ...]}`` (or a bare list of commands) — agent-browser
  commands, replayed in a sandbox's browser by ``POST /v1/sandboxes/{id}/browser/skills/{key}/run``
  (see :func:`browser_commands` and ``portside.server.sandboxes.browser``), not by :func:`run_steps`.
A candidate without a stored payload is replayed from its source executions (``steps``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from portside.server.auth import Principal
from portside.server.errors import InvalidInput, UpstreamTimeout
from portside.server.sandboxes.service import SandboxService

RESULT_MARKER = "__PORTSIDE_SKILL_RESULT__"


@dataclass
class RunOutcome:
    success: bool
    result: Any = None
    output: str = ""
    error: str | None = None
    execution_ids: list[str] = field(default_factory=list)
    duration_ms: int = 0


BROWSER_KINDS = frozenset({"browser", "browser_commands", "browser_batch"})


def browser_commands(kind: str, payload: Any) -> list[str] | None:
    """The command list of a browser payload, or None if the payload is not one."""
    commands = payload.get("commands") if isinstance(payload, dict) else payload if kind in BROWSER_KINDS else None
    if isinstance(commands, list) and commands and all(isinstance(c, str) for c in commands):
        return [c for c in commands if c.strip()]
    return None


def normalize_steps(kind: str, payload: Any) -> list[dict[str, Any]]:
    """The payload as a list of steps, validated."""
    if kind in BROWSER_KINDS:
        raise InvalidInput(
            "a browser skill runs in a sandbox's browser: POST /v1/sandboxes/{id}/browser/skills/{key}/run",
            code="payload_not_runnable",
        )
    if kind in ("python", "code") and isinstance(payload, dict) and isinstance(payload.get("code"), str):
        return [{"type": "python", "code": payload["code"], "entrypoint": payload.get("entrypoint")}]
    if kind == "shell" and isinstance(payload, dict) and isinstance(payload.get("command"), str):
        return [{"type": "shell", "code": payload["command"]}]
    steps = payload.get("steps") if isinstance(payload, dict) else payload
    if (
        isinstance(steps, list)
        and steps
        and all(
            isinstance(s, dict) and s.get("type") in ("python", "shell") and isinstance(s.get("code"), str)
            for s in steps
        )
    ):
        return [dict(s) for s in steps]
    raise InvalidInput(
        f"payload of kind '{kind}' is not runnable: expected python {{code, entrypoint}}, shell {{command}} "
        "or steps [{type, code}]",
        code="payload_not_runnable",
    )


def _python_call(code: str, entrypoint: str, value: Any) -> str:
    literal = json.dumps(json.dumps(value))
    return (
        f"{code}\n"
        "import json as _ps_json\n"
        f"print({RESULT_MARKER!r} + _ps_json.dumps({entrypoint}(_ps_json.loads({literal}))))\n"
    )


def _extract(output: str) -> tuple[str, Any]:
    lines = output.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(RESULT_MARKER):
            rest = "\n".join(lines[:i] + lines[i + 1 :])
            return rest, json.loads(lines[i][len(RESULT_MARKER) :])
    return output, None


async def run_steps(
    sandboxes: SandboxService,
    caller: Principal,
    sandbox_id: str,
    steps: list[dict[str, Any]],
    value: Any = None,
    *,
    timeout: float = 60,
    tags: str | None = None,
) -> RunOutcome:
    """Run every step in the sandbox; stop at the first failure."""
    started = time.perf_counter()
    outcome = RunOutcome(success=True)
    for step in steps:
        try:
            if step["type"] == "python":
                entry = step.get("entrypoint")
                code = _python_call(step["code"], entry, value) if entry else step["code"]
                res = await sandboxes.exec_python(caller, sandbox_id, code, timeout=timeout, tags=tags)
                outcome.execution_ids.append(res.execution_id or "")
                text, result = _extract(res.output)
                outcome.output, outcome.result = text, result if entry else text
                if not res.success:
                    outcome.success, outcome.error = False, res.error
            else:
                sres = await sandboxes.exec_shell(caller, sandbox_id, step["code"], timeout=timeout, tags=tags)
                outcome.execution_ids.append(sres.execution_id or "")
                outcome.output = outcome.result = sres.output
                if not sres.success:
                    outcome.success = False
                    outcome.error = sres.error or f"exit code {sres.exit_code}"
        except UpstreamTimeout as exc:
            outcome.success, outcome.error = False, exc.message
        if not outcome.success:
            break
    outcome.duration_ms = int((time.perf_counter() - started) * 1000)
    return outcome
