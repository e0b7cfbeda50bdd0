"""Portside agent runtime: the long-lived process of a deployed agent (runs INSIDE a sandbox).

Stdlib only, never imported by the server: the deployment service copies this file into the sandbox
as ``.portside-agent/runtime.py`` and starts it with ``nohup python -s runtime.py <dir> &``.

Files in ``<dir>`` (the host reads and writes them through the sandbox workspace):

* ``agent.json``   the agent definition (Symbiont ``Agent`` fields, and the compiled DSL ``definition``)
* ``config.json``  the deployment: ``deployment_id``, ``environment``, ``config_overrides``
* ``status.json``  written every ``heartbeat`` seconds: pid, state, uptime, CPU %, RSS, task counters
* ``inbox/<task>.json``  tasks to run ``{"id", "action", "input"}``; results go to ``outbox/<task>.json``
* ``lease``        touched by the server; the runtime exits when it is older than ``lease_seconds``
                   (so no agent outlives its server), or when a ``stop`` file appears

A task is checked against the agent's policies (``deny`` rules naming the task's action fail it,
``allow`` rules, when present, must name it) and answered with the agent's identity and the input.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

HEARTBEAT = 1.0
LEASE_SECONDS = 60.0
POLL = 0.2


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _cpu_seconds() -> float:
    t = os.times()
    return float(t.user + t.system)


def _actions(rule: dict[str, Any]) -> list[str]:
    return [str(a) for a in rule.get("actions") or []]


def _policies(definition: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in ("policies", "shared_policies"):
        for policy in definition.get(key) or []:
            if isinstance(policy, dict):
                out.append(policy)
    return out


def _check(definition: dict[str, Any], action: str) -> str | None:
    """None when ``action`` is allowed, else the reason it is not."""
    allows: list[str] = []
    for policy in _policies(definition):
        for rule in policy.get("rules") or []:
            names = _actions(rule)
            if rule.get("effect") == "deny" and (action in names or "*" in names):
                return f"denied by policy '{policy.get('name')}'"
            if rule.get("effect") == "allow":
                allows.extend(names)
    if allows and action not in allows and "*" not in allows:
        return f"action '{action}' is not allowed by the agent's policies"
    return None


class Runtime:
    def __init__(self, root: str) -> None:
        self.root = root
        with open(os.path.join(root, "agent.json"), encoding="utf-8") as fh:
            self.agent: dict[str, Any] = json.load(fh)
        with open(os.path.join(root, "config.json"), encoding="utf-8") as fh:
            self.config: dict[str, Any] = json.load(fh)
        self.lease_seconds = float(self.config.get("lease_seconds") or LEASE_SECONDS)
        self.heartbeat = float(self.config.get("heartbeat_seconds") or HEARTBEAT)
        self.status_path = os.path.join(root, "status.json")
        self.inbox = os.path.join(root, "inbox")
        self.outbox = os.path.join(root, "outbox")
        os.makedirs(self.inbox, exist_ok=True)
        os.makedirs(self.outbox, exist_ok=True)
        self.started = time.time()
        self.completed = 0
        self.failed = 0
        self.total_ms = 0.0
        self.active = 0
        self.last_activity = self.started
        self._cpu = (_cpu_seconds(), time.monotonic())
        self.cpu_percent = 0.0

    def status(self, state: str) -> dict[str, Any]:
        cpu, wall = _cpu_seconds(), time.monotonic()
        elapsed = wall - self._cpu[1]
        if elapsed > 0.2:
            self.cpu_percent = round(max(0.0, (cpu - self._cpu[0]) / elapsed * 100.0), 2)
            self._cpu = (cpu, wall)
        done = self.completed + self.failed
        return {
            "pid": os.getpid(),
            "state": state,
            "deployment_id": self.config.get("deployment_id"),
            "agent_id": self.agent.get("id"),
            "started_at": self.started,
            "heartbeat_at": time.time(),
            "uptime_seconds": round(time.time() - self.started, 3),
            "cpu_seconds": round(cpu, 3),
            "cpu_percent": self.cpu_percent,
            "memory_bytes": _rss_bytes(),
            "active_tasks": self.active,
            "tasks_completed": self.completed,
            "tasks_failed": self.failed,
            "average_response_time_ms": round(self.total_ms / done, 3) if done else 0.0,
            "last_activity": self.last_activity,
        }

    def run_task(self, path: str) -> None:
        name = os.path.basename(path)
        started = time.monotonic()
        self.active += 1
        try:
            with open(path, encoding="utf-8") as fh:
                task = json.load(fh)
            action = str(task.get("action") or "run")
            reason = _check(self.agent.get("definition") or {}, action)
            if reason is None:
                result: dict[str, Any] = {
                    "id": task.get("id"),
                    "status": "completed",
                    "action": action,
                    "output": {
                        "agent": self.agent.get("name"),
                        "agent_id": self.agent.get("id"),
                        "capabilities": (self.agent.get("definition") or {}).get("capabilities") or [],
                        "tools": self.agent.get("tools") or [],
                        "input": task.get("input"),
                    },
                }
                self.completed += 1
            else:
                result = {"id": task.get("id"), "status": "failed", "action": action, "error": reason}
                self.failed += 1
        except (OSError, ValueError) as exc:
            result = {"id": name.rsplit(".", 1)[0], "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            self.failed += 1
        finally:
            self.active -= 1
        elapsed_ms = (time.monotonic() - started) * 1000.0
        self.total_ms += elapsed_ms
        self.last_activity = time.time()
        result["duration_ms"] = round(elapsed_ms, 3)
        result["finished_at"] = self.last_activity
        # Counters first, then the result: whoever sees a result also sees it counted.
        _write_json(self.status_path, self.status("running"))
        _write_json(os.path.join(self.outbox, name), result)
        try:  # after the result exists, so a task is always either queued or answered
            os.unlink(path)
        except OSError:
            pass

    def lease_expired(self) -> bool:
        try:
            age = time.time() - os.stat(os.path.join(self.root, "lease")).st_mtime
        except OSError:
            return True
        return age > self.lease_seconds

    def loop(self) -> int:
        status_path = self.status_path
        _write_json(status_path, self.status("running"))
        next_beat = time.monotonic() + self.heartbeat
        reason = "stopped"
        while True:
            if os.path.exists(os.path.join(self.root, "stop")):
                break
            if self.lease_expired():
                reason = "lease_expired"
                break
            for entry in sorted(os.listdir(self.inbox)):
                if entry.endswith(".json"):
                    self.run_task(os.path.join(self.inbox, entry))
            if time.monotonic() >= next_beat:
                _write_json(status_path, self.status("running"))
                next_beat = time.monotonic() + self.heartbeat
            time.sleep(POLL)
        final = self.status("exited")
        final["exit_reason"] = reason
        _write_json(status_path, final)
        return 0


if __name__ == "__main__":
    sys.exit(Runtime(sys.argv[1]).loop())
