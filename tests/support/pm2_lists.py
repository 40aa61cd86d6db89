"""pm2 process lists as the gate reports them, written by tests: for the crash-loop tracker, the watchdog
and the builders, which need no real pm2 to be tested."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.core.gate_protocol import Pm2Process
from bot.core.processes import ProcessRead
from tests.support.clock import START, FakeClock


def process(name: str, restarts: int = 0, status: str = "online", pm_id: int = 0, **extra: object) -> Pm2Process:
    """A process as pm2 lists it: online ones have a pid, memory and CPU; the others read 0 (as pm2's do)."""
    online = status == "online"
    values: dict[str, object] = {
        "name": name,
        "pm_id": pm_id,
        "status": status,
        "pid": 4000 + pm_id if online else None,
        "started_at": START,
        "restarts": restarts,
        "unstable_restarts": 0,
        "memory_bytes": 50 * 1024**2 if online else 0,
        "cpu_percent": 0.5 if online else 0.0,
        "exit_code": None,
    }
    return Pm2Process(**(values | extra))  # type: ignore[arg-type]


def bumped(old: Pm2Process, by: int = 1, **changes: object) -> Pm2Process:
    """`old` restarted `by` times (pm2's count rises), with `changes` to its other fields."""
    return dataclasses.replace(old, restarts=old.restarts + by, **changes)  # type: ignore[arg-type]


@dataclass
class Pm2Lists:
    """What each server's pm2 lists, as the test sets it; `read` is a watchdog's read_processes."""

    clock: FakeClock
    servers: dict[str, dict[str, Pm2Process]] = field(default_factory=dict)
    failing: dict[str, str] = field(default_factory=dict)  # server -> why its list cannot be read
    reads: int = 0

    def set(self, server: str, processes: Iterable[Pm2Process]) -> None:
        self.servers[server] = {p.name: p for p in processes}

    def bump(self, server: str, name: str, by: int = 1, **changes: object) -> None:
        self.servers[server][name] = bumped(self.servers[server][name], by, **changes)

    async def read(self) -> list[ProcessRead]:
        self.reads += 1
        now = self.clock.now()
        return [
            ProcessRead(server, now, reason=self.failing[server])
            if server in self.failing
            else ProcessRead(server, now, tuple(processes.values()))
            for server, processes in self.servers.items()
        ]
