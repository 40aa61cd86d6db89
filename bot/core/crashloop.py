"""Crash-loop detection from the rounds' pm2 process lists (servers with ACCESS=gate). Pure state: no I/O.

pm2's own `errored` only catches a process that dies within 1 s of starting in its first 16 s; one that
lives longer (PoracleNG's ecosystem file: restart_delay 5000) is restarted forever and reads `online` in
between. So a process is in trouble when pm2 says errored or stopped, or when its restart count rose by at
least PORACLE_CRASH_RESTARTS within PORACLE_CRASH_WINDOW minutes, whatever its HTTP answers. Each episode
yields one event when it starts and one when the process is stable again: online, and not restarted for a
whole window (by the bot's samples), so a process that crashes every few minutes cannot flap between the two.

The restart counts are sampled each round (kept for the window or an hour, whichever is longer: the hour
is what /poracle status and /poracle processes show). A count that went down was reset (`pm2 reset`, a new
pm2 daemon): what it reads now is what happened since. Two samples further apart than the window say
nothing about the window (the bot was away), so their difference is not counted. The store keeps the
watches, so a bot restarted mid-episode neither repeats its alert nor misses the recovery.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from bot.core.gate_protocol import Pm2Process
from bot.core.processes import HOUR, ONLINE, ProcessRead, ProcessReport, restarts

TROUBLED = ("errored", "stopped")
GONE = "no longer in pm2's list"

ProcessKey = tuple[str, int]  # pm2's name and id: unique in one pm2
Sample = tuple[datetime, int]  # when read, pm2's restart count then


@dataclass(slots=True)
class ProcessWatch:
    """What the tracker knows of one process."""

    samples: list[Sample] = field(default_factory=list)  # oldest first
    trouble_since: datetime | None = None  # an episode is open
    reason: str | None = None  # its latest reason


@dataclass(frozen=True, slots=True)
class CrashLoop:
    """A process in trouble: errored, stopped, or restarting too often."""

    server: str
    process: str
    reason: str
    since: datetime


@dataclass(frozen=True, slots=True)
class ProcessRecovery:
    """The end of an episode: stable again, or the process is gone from pm2's list (`note`)."""

    server: str
    process: str
    since: datetime  # when the episode started
    recovered_at: datetime
    note: str | None = None

    @property
    def duration(self) -> timedelta:
        return self.recovered_at - self.since


ProcessEvent = CrashLoop | ProcessRecovery


@dataclass(frozen=True, slots=True)
class FailingProcess:
    """A process in trouble in the latest reading (not only in an episode that has yet to end)."""

    name: str
    pm_id: int
    since: datetime  # its episode's start
    reason: str


@dataclass(frozen=True, slots=True)
class ProcessRound:
    """What a round leaves the store: the watches of the servers whose list was read (replacing theirs),
    and the events raised."""

    watches: Mapping[str, Mapping[ProcessKey, ProcessWatch]]
    events: Sequence[ProcessEvent]


def restarts_between(samples: Sequence[Sample], start: datetime, max_gap: timedelta) -> int:
    """Restarts seen after `start`: the rises between samples at most `max_gap` apart (a reset counts what
    the counter reads since)."""
    total = 0
    for (earlier_at, earlier), (later_at, later) in itertools.pairwise(samples):
        if later_at > start and later_at - earlier_at <= max_gap:
            total += later - earlier if later >= earlier else later
    return total


def _restarted_since(samples: Sequence[Sample], start: datetime) -> bool:
    """Whether the count changed after `start`, however far apart the samples (a reset is a change)."""
    return any(later_at > start and later != earlier for (_, earlier), (later_at, later) in itertools.pairwise(samples))


@dataclass
class CrashTracker:
    threshold: int  # PORACLE_CRASH_RESTARTS
    window: timedelta  # PORACLE_CRASH_WINDOW
    watches: dict[str, dict[ProcessKey, ProcessWatch]] = field(default_factory=dict)  # restored from the store

    @property
    def horizon(self) -> timedelta:
        """How long samples are kept."""
        return max(self.window, HOUR)

    def observe(self, reads: Iterable[ProcessRead]) -> list[ProcessEvent]:
        """Take one round's readings; return the events they caused. A server whose list could not be read
        is left as it was: not reading is no news of its processes."""
        events: list[ProcessEvent] = []
        for read in reads:
            if read.processes is not None:
                events += self._observe_server(read.server, read.processes, read.at)
        return events

    def _observe_server(self, server: str, processes: Iterable[Pm2Process], at: datetime) -> list[ProcessEvent]:
        known = self.watches.get(server, {})
        seen: dict[ProcessKey, ProcessWatch] = {}
        events: list[ProcessEvent] = []
        for process in processes:
            key = (process.name, process.pm_id)
            watch = seen[key] = known.get(key) or ProcessWatch()
            self._sample(watch, at, process.restarts)
            event = self._update(server, process, watch, at)
            if event is not None:
                events.append(event)
        for key, watch in known.items():
            if key not in seen and watch.trouble_since is not None:
                events.append(ProcessRecovery(server, key[0], watch.trouble_since, at, GONE))
        self.watches[server] = seen
        return events

    def _sample(self, watch: ProcessWatch, at: datetime, count: int) -> None:
        watch.samples.append((at, count))
        # Keep the newest sample before the horizon too: the rise after it is within the horizon.
        while len(watch.samples) > 1 and watch.samples[1][0] <= at - self.horizon:
            del watch.samples[0]

    def _update(self, server: str, process: Pm2Process, watch: ProcessWatch, at: datetime) -> ProcessEvent | None:
        reason = self._trouble(process, restarts_between(watch.samples, at - self.window, self.window))
        if reason is not None:
            opened = watch.trouble_since is None
            if opened:
                watch.trouble_since = at
            watch.reason = reason
            return CrashLoop(server, process.name, reason, at) if opened else None
        if watch.trouble_since is None or not self._stable(process, watch, at):
            return None
        event = ProcessRecovery(server, process.name, watch.trouble_since, at)
        watch.trouble_since = watch.reason = None
        return event

    def _trouble(self, process: Pm2Process, rises: int) -> str | None:
        words = []
        if process.status in TROUBLED:
            exit_code = f" (exit code {process.exit_code})" if process.exit_code is not None else ""
            words.append(f"{process.status}{exit_code}")
        if rises >= self.threshold:
            words.append(f"{restarts(rises)} in {_minutes(self.window)}")
        return " · ".join(words) or None

    def _stable(self, process: Pm2Process, watch: ProcessWatch, at: datetime) -> bool:
        start = at - self.window
        covered = watch.samples[0][0] <= start  # the bot has watched it for a whole window
        return process.status == ONLINE and covered and not _restarted_since(watch.samples, start)

    def round(self, reads: Iterable[ProcessRead], events: Sequence[ProcessEvent]) -> ProcessRound:
        """What the store is to record of a round that observed `reads` and raised `events`."""
        read = [r.server for r in reads if r.processes is not None]
        return ProcessRound({server: self.watches.get(server, {}) for server in read}, events)

    def report(self, read: ProcessRead) -> ProcessReport:
        """`read` with each process's restarts in the last hour (its count now as the newest sample) and the
        reasons of the open episodes. Changes nothing."""
        known = self.watches.get(read.server, {})
        recent: list[int | None] = []
        for process in read.processes or ():
            samples = known.get((process.name, process.pm_id), ProcessWatch()).samples
            history = [*samples, (read.at, process.restarts)] if samples and samples[-1][0] < read.at else samples
            recent.append(restarts_between(history, read.at - HOUR, HOUR) if len(history) > 1 else None)
        troubles = {name: w.reason for (name, _), w in known.items() if w.trouble_since is not None and w.reason}
        return ProcessReport(read, tuple(recent), troubles)

    def failing(self, read: ProcessRead) -> list[FailingProcess]:
        """The processes `read` (observed already) finds in trouble: errored, stopped, or restarted too often
        within the window. An episode outlives its trouble by a window (it must be stable to end); this is what
        is wrong now. Changes nothing."""
        known = self.watches.get(read.server, {})
        found = []
        for process in read.processes or ():
            watch = known.get((process.name, process.pm_id))
            if watch is None or watch.trouble_since is None:
                continue
            reason = self._trouble(process, restarts_between(watch.samples, read.at - self.window, self.window))
            if reason is not None:
                found.append(FailingProcess(process.name, process.pm_id, watch.trouble_since, reason))
        return found

    def open_episodes(self) -> list[tuple[str, str, datetime]]:
        """(server, process, since) of every episode not over yet."""
        return [
            (server, name, watch.trouble_since)
            for server, watches in self.watches.items()
            for (name, _), watch in watches.items()
            if watch.trouble_since is not None
        ]

    def snapshot(self) -> dict[str, dict[ProcessKey, ProcessWatch]]:
        """A copy of the watches to go back to (a round that could not be recorded)."""
        return {
            server: {key: replace(watch, samples=list(watch.samples)) for key, watch in watches.items()}
            for server, watches in self.watches.items()
        }


def _minutes(window: timedelta) -> str:
    minutes = window.total_seconds() / 60
    return f"{minutes:g} min"
