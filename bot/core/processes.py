"""pm2 processes behind poracle-gate as people read them: one reading of a server's list, what the bot's
history adds to it (restarts in the last hour, trouble), the one line /poracle status shows, the table
/poracle processes and the command line show, and a log tail. Pure: no I/O.

Facts of pm2 that shape it: memory and CPU read 0 for a process that is not online (so they are shown
only for online ones), and `started_at` is its last start, so the uptime of an online process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.core.gate_protocol import Pm2Process

ONLINE = "online"
HOUR = timedelta(hours=1)
SUMMARY_NAMED = 3  # processes named in a summary line; the others are counted
HEADER = ("NAME", "ID", "STATUS", "PID", "UPTIME", "RESTARTS", "MEMORY", "CPU")
COMPACT_HEADER = ("NAME", "STATUS", "RESTARTS")


@dataclass(frozen=True, slots=True)
class ProcessRead:
    """One reading of a server's pm2 list: its processes, or why it could not be read."""

    server: str
    at: datetime
    processes: tuple[Pm2Process, ...] | None = None  # None: not read, `reason` says why
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessReport:
    """A reading with what the bot's history adds: each process's restarts in the last hour (in the order of
    the reading; None while the bot has no history of it) and the trouble of those in a crash-loop episode."""

    read: ProcessRead
    recent: tuple[int | None, ...] = ()
    troubles: Mapping[str, str] = field(default_factory=dict)  # process name -> the episode's reason

    @property
    def rows(self) -> list[tuple[Pm2Process, int | None]]:
        processes = self.read.processes or ()
        recent = self.recent + (None,) * (len(processes) - len(self.recent))
        return list(zip(processes, recent, strict=False))

    @property
    def all_online(self) -> bool:
        return self.read.processes is not None and all(p.status == ONLINE for p in self.read.processes)

    def summary(self) -> str:
        """`3/3 online`, `2/3 online · poracle errored · 12 restarts in 1 h`, or why it is not known."""
        if self.read.processes is None:
            return f"unknown: {self.read.reason}"
        if not self.read.processes:
            return "no processes"
        online = sum(process.status == ONLINE for process in self.read.processes)
        notes = []
        for process, recent in self.rows:
            words = [process.status] if process.status != ONLINE else []
            if recent:
                words.append(f"{restarts(recent)} in 1 h")
            if words:
                notes.append(f"{process.name} {' · '.join(words)}")
        if len(notes) > SUMMARY_NAMED:
            notes[SUMMARY_NAMED:] = [f"{len(notes) - SUMMARY_NAMED} more"]
        return " · ".join([f"{online}/{len(self.read.processes)} online", *notes])

    def table(self, *, compact: bool = False) -> list[list[str]]:
        """The header and a row per process; `compact`: name, status and restarts only (for long lists)."""
        if compact:
            return [list(COMPACT_HEADER)] + [
                [process.name, process.status, restart_cell(process, recent)] for process, recent in self.rows
            ]
        return [list(HEADER)] + [self._row(process, recent) for process, recent in self.rows]

    def _row(self, process: Pm2Process, recent: int | None) -> list[str]:
        online = process.status == ONLINE
        return [
            process.name,
            str(process.pm_id),
            process.status,
            str(process.pid) if process.pid is not None else "-",
            uptime(self.read.at - process.started_at) if online and process.started_at else "-",
            restart_cell(process, recent),
            memory(process.memory_bytes) if online and process.memory_bytes is not None else "-",
            f"{process.cpu_percent:g} %" if online and process.cpu_percent is not None else "-",
        ]


def restarts(count: int) -> str:
    return f"{count} restart{'' if count == 1 else 's'}"


def restart_cell(process: Pm2Process, recent: int | None) -> str:
    """pm2's count, with the last hour's when known: `12 (4 in 1 h)`."""
    return str(process.restarts) if recent is None else f"{process.restarts} ({recent} in 1 h)"


def uptime(delta: timedelta) -> str:
    """Compact: `3d 4h`, `4h 12m`, `12m 5s`, `40s`."""
    seconds = max(0, int(delta.total_seconds()))
    values = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        value, seconds = divmod(seconds, size)
        values.append((value, unit))
    first = next((i for i, (value, _) in enumerate(values) if value), len(values) - 1)  # the two largest units
    return " ".join(f"{value}{unit}" for value, unit in values[first : first + 2] if value) or "0s"


def memory(size: int) -> str:
    mib = size / 1024**2
    return f"{mib / 1024:.1f} GB" if mib >= 1024 else f"{mib:.0f} MB" if mib >= 10 else f"{mib:.1f} MB"


@dataclass(frozen=True, slots=True)
class LogTail:
    """The end of one process's out and error logs, cleaned and redacted; or why it could not be read."""

    server: str
    process: str  # as asked for: a name or an id
    requested: int
    lines: tuple[str, ...] = ()
    error_lines: tuple[str, ...] = ()
    name: str | None = None  # pm2's name and id of the process read
    pm_id: int | None = None
    reason: str | None = None

    @property
    def text(self) -> str:
        """Both logs as one text: the out log, then the error log under a heading."""
        parts: Sequence[str] = self.lines
        if self.error_lines:
            parts = [*self.lines, f"--- error log, last {len(self.error_lines)} line(s) ---", *self.error_lines]
        return "\n".join(parts) if parts else "(both logs are empty)"
