"""The monitor's round, as gatus's watchdog does it: check every server, drive the monitor, record the round
(all or nothing), apply the mute rules and hand the alerts to an AlertSink that a front implements. Beside
the health checks a round reads the pm2 list of every server with ACCESS=gate, for the crash-loop tracker.

Rounds keep to their schedule: after one that overran the interval the missed rounds are skipped, not run
back to back (two checks a few milliseconds apart would count as an outage). Time comes from a Clock.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.config import Settings
from bot.core import heartbeat
from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.crashloop import CrashLoop, CrashTracker, ProcessEvent
from bot.core.health import HealthResult
from bot.core.heartbeat import Heartbeat
from bot.core.monitor import Event, Monitor, Outage, Reminder
from bot.core.processes import ProcessRead, ProcessReport
from bot.core.store import ServerHistory, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Alert:
    """The events of one kind raised in one round: what one alert message announces."""

    events: tuple[Event | ProcessEvent, ...]


class AlertSink(Protocol):
    """Where alerts go (the Discord front's alert channel). The watchdog decides what and when; the sink posts."""

    @property
    def enabled(self) -> bool:
        """Whether alerts go anywhere; when not, they are settled unposted."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the sink can post now (the heartbeat reports it)."""
        ...

    async def send(self, alert: Alert) -> bool:
        """True once posted; False keeps the alert pending for the next round. Raises only on a bug."""
        ...


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A round's results with what the store knows of each server: what /poracle status shows."""

    results: tuple[HealthResult, ...]
    down_since: Mapping[str, datetime] = field(default_factory=dict)
    histories: Mapping[str, ServerHistory] = field(default_factory=dict)
    mutes: Mapping[str, datetime] = field(default_factory=dict)  # muted servers, until when
    processes: Mapping[str, ProcessReport] = field(default_factory=dict)  # ACCESS=gate: the last round's pm2 list


Check = Callable[[], Awaitable[Sequence[HealthResult]]]
ReadProcesses = Callable[[], Awaitable[Sequence[ProcessRead]]]
RoundHook = Callable[[StatusReport], Awaitable[None]]


class Watchdog:
    """Runs the rounds. `check` is the service's `check_all`, `read_processes` its `read_all_processes`;
    `after_round` hooks (the live status) get each round's StatusReport and must log their own failures."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        check: Check,
        sink: AlertSink,
        clock: Clock = SYSTEM_CLOCK,
        *,
        after_round: Sequence[RoundHook] = (),
        read_processes: ReadProcesses | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.check = check
        self.sink = sink
        self.clock = clock
        self.after_round = tuple(after_round)
        # Restored state: a bot restarted during an outage neither repeats its alert nor misses the recovery.
        self.monitor = Monitor(
            settings.down_after,
            settings.up_after,
            timedelta(minutes=settings.remind_every) if settings.remind_every else None,
            store.load_watches(),
        )
        self.read_processes = read_processes
        self.crashes = CrashTracker(
            settings.crash_restarts, timedelta(minutes=settings.crash_window), store.load_process_watches()
        )
        self.process_reads: dict[str, ProcessRead] = {}  # the last round's, per server
        self._delivery = asyncio.Lock()  # rounds and a reconnected sink may both deliver: never the same alert twice

    async def run_forever(self) -> None:
        """A round every PORACLE_HEALTH_INTERVAL seconds until cancelled; a failed round is logged, the next
        one runs on time."""
        interval = self.settings.health_interval
        due = self.clock.monotonic()
        while True:
            try:
                await self.run_round()
            except Exception:  # one bad round must never stop the monitor
                log.exception("Monitor round failed; trying again in %g s", interval)
            due += interval
            now = self.clock.monotonic()
            if now >= due:
                skipped = int((now - due) // interval) + 1
                log.warning(
                    "A monitor round took %.1f s, longer than PORACLE_HEALTH_INTERVAL (%g s): %d round(s) skipped",
                    now - due + interval,
                    interval,
                    skipped,
                )
                due += skipped * interval
            await self.clock.sleep(due - now)

    async def run_round(self) -> list[HealthResult]:
        """One round; raises if it could not be recorded, after forgetting it (the next one raises its
        outages and recoveries again instead of having moved on without them)."""
        checked, reads = await asyncio.gather(self.check(), self._read_processes())
        results = list(checked)
        before = {name: copy.copy(watch) for name, watch in self.monitor.watches.items()}
        crashes_before = self.crashes.snapshot()
        events = self.monitor.observe(results)
        process_events = self.crashes.observe(reads)
        recorded = self.crashes.round(reads, process_events)
        try:
            await asyncio.to_thread(self.store.record_round, results, self.monitor.watches, events, recorded)
        except Exception:
            self.monitor.watches, self.crashes.watches = before, crashes_before
            raise
        self._keep(reads)
        for event in events:
            _log_event(event)
        for process_event in process_events:
            _log_process_event(process_event)
        await self.deliver_pending()
        if self.after_round:
            report = await self.status(results)
            for hook in self.after_round:
                await hook(report)
        await asyncio.to_thread(self.store.prune, self.clock.now())
        self._beat()
        return results

    async def _read_processes(self) -> Sequence[ProcessRead]:
        return await self.read_processes() if self.read_processes is not None else ()

    def _keep(self, reads: Sequence[ProcessRead]) -> None:
        """The round's readings for the status; a list that stops (or starts again) being readable is logged
        once, not each round."""
        for read in reads:
            previous = self.process_reads.get(read.server)
            if read.processes is None and (previous is None or previous.reason != read.reason):
                log.warning("Cannot read the pm2 list of %s: %s", read.server, read.reason)
            elif read.processes is not None and previous is not None and previous.processes is None:
                log.info("The pm2 list of %s can be read again", read.server)
            self.process_reads[read.server] = read

    async def status(self, results: Sequence[HealthResult]) -> StatusReport:
        """`results` with each server's uptime, latency, last restart, mute and the start of its outage, and
        the last round's pm2 list of each server with ACCESS=gate."""
        now = self.clock.now()
        histories, mutes = await asyncio.gather(
            asyncio.to_thread(self.store.server_histories, now), asyncio.to_thread(self.store.mutes, now)
        )
        down_since = {name: w.down_since for name, w in self.monitor.watches.items() if w.down_since is not None}
        processes = {name: self.crashes.report(read) for name, read in self.process_reads.items()}
        return StatusReport(tuple(results), down_since, histories, mutes, processes)

    def process_report(self, server: str) -> ProcessReport | None:
        """The last round's pm2 list of `server` with its history; None when none was read."""
        read = self.process_reads.get(server)
        return None if read is None else self.crashes.report(read)

    async def deliver_pending(self) -> None:
        """Hand undelivered alerts to the sink, one per round and kind; stop at the first failure and try again
        later. Alerts of muted servers, or with nowhere to go, are settled unposted; a server still down when
        its mute ends gets its outage alert then, one that came back meanwhile nothing."""
        async with self._delivery:
            store = self.store
            muted = await asyncio.to_thread(store.mutes, self.clock.now())
            still_down = {
                name: watch.down_since
                for name, watch in self.monitor.watches.items()
                if watch.down_since is not None and name not in muted
            }
            await asyncio.to_thread(store.unsilence_outages, still_down)
            crashing = [episode for episode in self.crashes.open_episodes() if episode[0] not in muted]
            await asyncio.to_thread(store.unsilence_processes, crashing)
            pending = await asyncio.to_thread(store.pending_events)
            for _, group in itertools.groupby(pending, key=lambda stored: (stored.round, type(stored.event))):
                stored = list(group)
                silent = [s.id for s in stored if s.event.server in muted or s.follows_silence]
                await asyncio.to_thread(store.mark_events, silent, "muted")
                loud = [s for s in stored if s.id not in silent]
                if not loud:
                    continue
                if not self.sink.enabled:
                    await asyncio.to_thread(store.mark_events, [s.id for s in loud], "off")
                    continue
                if not await self.sink.send(Alert(tuple(s.event for s in loud))):
                    return
                await asyncio.to_thread(store.mark_events, [s.id for s in loud], "delivered")

    def _beat(self) -> None:
        try:
            heartbeat.write(self.settings.data_dir, Heartbeat(self.clock.now(), self.sink.connected))
        except OSError as exc:  # the healthcheck will say so; the monitor itself keeps going
            log.error("Cannot write the heartbeat file in %s: %s", self.settings.data_dir, exc)


def _log_process_event(event: ProcessEvent) -> None:
    if isinstance(event, CrashLoop):
        log.warning("Crash loop: pm2 process %s on %s: %s", event.process, event.server, event.reason)
    else:
        log.info(
            "pm2 process %s on %s: %s after %s",
            event.process,
            event.server,
            event.note or "stable again",
            timedelta(seconds=round(event.duration.total_seconds())),
        )


def _log_event(event: Event) -> None:
    if isinstance(event, Outage):
        log.warning("Outage: %s offline since %s (%s)", event.server, event.since.isoformat(), event.reason)
    elif isinstance(event, Reminder):
        log.warning("Still offline: %s since %s (%s)", event.server, event.since.isoformat(), event.reason)
    else:
        log.info(
            "Recovery: %s online again after %s", event.server, timedelta(seconds=round(event.downtime.total_seconds()))
        )
