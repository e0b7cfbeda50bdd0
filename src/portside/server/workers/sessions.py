"""Worker streams connected to this replica, and the lease slots they have free."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime

from portside.server.ids import new_id
from portside.server.workers.capabilities import CapabilitySpec
from portside.server.workers.domain import Frame, LeaseFrame
from portside.server.workers.tokens import WorkerCaller


@dataclass
class CapState:
    """One capability of a session: its spec and the leases it holds."""

    spec: CapabilitySpec
    in_flight: set[str] = field(default_factory=set)

    @property
    def free(self) -> int:
        return max(0, self.spec.concurrency - len(self.in_flight))


class Session:
    """An open event stream of one worker on this replica."""

    def __init__(self, worker_id: str, kind: str, caller: WorkerCaller) -> None:
        self.worker_id = worker_id
        self.kind = kind
        self.caller = caller
        self.owner = caller.principal.owner
        self.key_id = caller.principal.key_id
        #: None serves every owner's tasks (admin keys); otherwise only the owner's.
        self.tenant: str | None = None if caller.principal.has("admin") else caller.principal.owner
        self.stream_id = new_id("wss")
        self.session_id: str | None = None
        self.caps: dict[str, CapState] = {}
        self.lease_cap: dict[str, str] = {}
        self.outbox: asyncio.Queue[Frame | None] = asyncio.Queue()
        self.closed = False
        self.finalized = False
        #: Set when one of its leases expired: no new leases until it heartbeats again.
        self.paused = False
        self.paused_at: datetime | None = None
        #: Monotonic time of the last sign of life (open, register, heartbeat).
        self.last_seen = time.monotonic()

    @property
    def registered(self) -> bool:
        return self.session_id is not None

    def apply(self, session_id: str, specs: list[CapabilitySpec]) -> None:
        """Adopt a registration, keeping the leases already held."""
        self.session_id = session_id
        old = self.caps
        self.caps = {s.type: CapState(spec=s) for s in specs}
        for ctype, state in old.items():
            if ctype in self.caps:
                self.caps[ctype].in_flight |= state.in_flight

    def add_lease(self, lease_id: str, ctype: str) -> None:
        state = self.caps.get(ctype)
        if state is None:  # capability dropped by a re-registration: still count it until it ends
            state = self.caps[ctype] = CapState(spec=CapabilitySpec(type=ctype, concurrency=0))
        state.in_flight.add(lease_id)
        self.lease_cap[lease_id] = ctype

    def end_lease(self, lease_id: str) -> bool:
        """Forget a lease; True if this session held it."""
        ctype = self.lease_cap.pop(lease_id, None)
        if ctype is None:
            return False
        state = self.caps.get(ctype)
        if state is not None:
            state.in_flight.discard(lease_id)
        return True

    def send(self, frame: Frame | None) -> None:
        if not self.closed:
            self.outbox.put_nowait(frame)

    def undelivered_leases(self) -> list[str]:
        """Lease frames still queued (never written to the stream); empties the queue."""
        out: list[str] = []
        while not self.outbox.empty():
            frame = self.outbox.get_nowait()
            if isinstance(frame, LeaseFrame):
                out.append(frame.lease_id)
        return out
