"""The monitor's round, as gatus's watchdog does it: check every server, drive the monitor, record the round
(all or nothing), apply the mute rules (mutes and maintenance windows alike) and hand the alerts to an
AlertSink that a front implements. It also answers for the fronts: the status (the last round's at once,
then fresh), and acknowledgements of outages. Beside the health checks a round reads the pm2 list of every
server with ACCESS=gate, for the crash-loop tracker; the servers with AUTO_RESTART=on are then handed to the
guard rails of automatic restarts (selfheal.py), whose restarts run beside the rounds.

Rounds keep to their schedule: after one that overran the interval the missed rounds are skipped, not run
back to back (two checks a few milliseconds apart would count as an outage). Time comes from a Clock.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.config import Settings, Switch
from bot.core import heartbeat
from bot.core.autorestart import AutoRestarted, NeedsHuman, Trouble, trouble_of
from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.crashloop import CrashLoop, CrashTracker, ProcessEvent
from bot.core.exporter import BotMetrics
from bot.core.health import HealthResult
from bot.core.heartbeat import Heartbeat
from bot.core.maintenance import in_maintenance
from bot.core.monitor import Degraded, Event, Healthy, Monitor, Outage, Reminder, ServerWatch, outage_id
from bot.core.processes import ProcessRead, ProcessReport
from bot.core.push import HeartbeatPush
from bot.core.selfheal import Restarter, SelfHealer
from bot.core.store import NEEDS_HUMAN, Acknowledgement, ServerHistory, Store
from bot.core.stuck import StuckTracker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Alert:
    """The events of one kind raised in one round: what one alert message announces."""

    events: tuple[Event | ProcessEvent | NeedsHuman | AutoRestarted, ...]
    acknowledged: Mapping[str, Acknowledgement] = field(default_factory=dict)  # by server, for recoveries

    @property
    def pages(self) -> bool:
        """Whether it should wake someone (ping DISCORD_ALERT_ROLE_ID): outages, crash loops and "needs a human"
        do; recoveries, reminders and notices do not."""
        return isinstance(self.events[0], Outage | CrashLoop | NeedsHuman)


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

    @property
    def away_since(self) -> datetime | None:
        """While not connected: since when (the heartbeat reports it)."""
        ...

    async def send(self, alert: Alert) -> bool:
        """True once posted; False keeps the alert pending for the next round, or for `flush` when the sink
        connects again. Raises only on a bug."""
        ...


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A round's results with what the store knows of each server: what /poracle status shows."""

    results: tuple[HealthResult, ...]
    down_since: Mapping[str, datetime] = field(default_factory=dict)
    histories: Mapping[str, ServerHistory] = field(default_factory=dict)
    mutes: Mapping[str, datetime] = field(default_factory=dict)  # muted servers, until when
    maintenance: Mapping[str, datetime] = field(default_factory=dict)  # servers in a window, until when
    processes: Mapping[str, ProcessReport] = field(default_factory=dict)  # ACCESS=gate: the last round's pm2 list
    # Servers being checked again: their result (if any) is the last round's, `age` old.
    pending: tuple[str, ...] = ()
    age: timedelta | None = None
    degraded_since: Mapping[str, datetime] = field(default_factory=dict)  # servers declared degraded


@dataclass(frozen=True, slots=True)
class LastRound:
    results: tuple[HealthResult, ...]
    at: datetime  # when its checks began


@dataclass(frozen=True, slots=True)
class AckResult:
    """What came of acknowledging an outage (or of asking whether it can be)."""

    ack: Acknowledgement | None = None  # the outage's acknowledgement: this one, or who was first
    recorded: bool = False  # this call recorded it
    over: bool = False  # the outage is over (or never was): nothing to acknowledge


Check = Callable[[], Awaitable[Sequence[HealthResult]]]
ReadProcesses = Callable[[], Awaitable[Sequence[ProcessRead]]]
RoundHook = Callable[[StatusReport], Awaitable[None]]


class Watchdog:
    """Runs the rounds. `check` is the service's `check_all`, `read_processes` its `read_all_processes`;
    `after_round` hooks (the live status) get each round's StatusReport and must log their own failures.
    `restart` (the service's `restart`) lets the servers with AUTO_RESTART=on be restarted automatically."""

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
        restart: Restarter | None = None,
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
        self.schedules = [(server.name, settings.maintenance_schedule(server)) for server in settings.servers]
        self.last_round: LastRound | None = None
        self.stuck = StuckTracker.configured(settings, store.load_quiet())
        self.read_processes = read_processes
        self.crashes = CrashTracker(
            settings.crash_restarts, timedelta(minutes=settings.crash_window), store.load_process_watches()
        )
        self.process_reads: dict[str, ProcessRead] = {}  # the last round's, per server
        self._delivery = asyncio.Lock()  # rounds and a reconnected sink may both deliver: never the same alert twice
        self._round_completed_at: datetime | None = None  # of the last round recorded: for the heartbeat
        healing = any(server.auto_restart is Switch.ON for server in settings.servers)
        self.healer = (
            SelfHealer(settings, store, clock, restart, self.flush) if restart is not None and healing else None
        )
        url = settings.heartbeat_url
        self.push = HeartbeatPush(url, settings.health_timeout) if url is not None else None
        self.metrics = (
            BotMetrics(store, lambda: sink.connected, list(self.healer.servers) if self.healer else (), self._latched)
            if settings.metrics_address is not None
            else None
        )

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
        started, began = self.clock.now(), self.clock.monotonic()
        quiet = dict(self.stuck.quiet)
        checked, reads = await asyncio.gather(self.check(), self._read_processes())
        results = self.stuck.judge(checked, remember=True)
        self.last_round = LastRound(tuple(results), started)
        before = {name: copy.copy(watch) for name, watch in self.monitor.watches.items()}
        crashes_before = self.crashes.snapshot()
        events = self.monitor.observe(results)
        process_events = self.crashes.observe(reads)
        recorded = self.crashes.round(reads, process_events)
        try:
            await asyncio.to_thread(
                self.store.record_round, results, self.monitor.watches, events, self.stuck.quiet, recorded
            )
        except Exception:
            self.monitor.watches, self.stuck.quiet, self.crashes.watches = before, quiet, crashes_before
            raise
        self._keep(reads)
        for event in events:
            _log_event(event)
        for process_event in process_events:
            _log_process_event(process_event)
        healer = self.healer
        restarts = await healer.decide(self._troubles(results), self._down_since()) if healer else []
        try:
            waiting = await self.deliver_pending()
        finally:  # after the round's alerts (the outage before its restart's notice); counted, so never dropped
            if healer is not None:
                healer.launch(restarts)
        if self.after_round:
            report = await self.status(results)
            for hook in self.after_round:
                await hook(report)
        await asyncio.to_thread(self.store.prune, self.clock.now())
        self._round_completed_at = self.clock.now()
        self._beat(self._round_completed_at, waiting)
        if self.metrics is not None:
            self.metrics.observe_round(results, self.clock.monotonic() - began, self._round_completed_at)
        if self.push is not None:  # a completed round: someone watching the watcher hears of it
            self.push.after_round()
        return results

    async def flush(self) -> None:
        """Deliver the outbox now, not at the next round: the sink has just connected again."""
        waiting = await self.deliver_pending()
        if self._round_completed_at is not None:
            self._beat(self._round_completed_at, waiting)

    async def _read_processes(self) -> Sequence[ProcessRead]:
        return await self.read_processes() if self.read_processes is not None else ()

    def _troubles(self, results: Sequence[HealthResult]) -> dict[str, Trouble | None]:
        """What a restart could fix on each server with AUTO_RESTART=on, from the monitor, this round's checks and
        its pm2 lists."""
        assert self.healer is not None
        checked = {result.server: result for result in results}
        troubles = {}
        for name in self.healer.servers:
            read = self.process_reads.get(name)
            failing = self.crashes.failing(read) if read is not None else []
            troubles[name] = trouble_of(self.monitor.watches.get(name), checked.get(name), failing)
        return troubles

    def _down_since(self) -> dict[str, datetime]:
        return {name: w.down_since for name, w in self.monitor.watches.items() if w.down_since is not None}

    def _latched(self) -> list[str]:
        """The servers whose automatic restarts wait for a person."""
        return list(self.healer.rails.latched()) if self.healer is not None else []

    async def settled(self) -> None:
        """Wait until no automatic restart runs."""
        if self.healer is not None:
            await self.healer.settled()

    async def close(self) -> None:
        """What runs beside the rounds stops: the automatic restarts still running, a heartbeat push."""
        if self.healer is not None:
            await self.healer.close()
        if self.push is not None:
            await self.push.close()

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
        """`results` (judged for stuck PoracleNGs, as the rounds are) with each server's uptime, latency, last
        restart, mute, maintenance window and the start of its outage or degraded spell, and the last round's
        pm2 list of each server with ACCESS=gate."""
        now = self.clock.now()
        histories, mutes = await asyncio.gather(
            asyncio.to_thread(self.store.server_histories, now), asyncio.to_thread(self.store.mutes, now)
        )
        down_since = self._down_since()
        degraded = {n: w.degraded_since for n, w in self.monitor.watches.items() if w.degraded_since is not None}
        processes = {name: self.crashes.report(read) for name, read in self.process_reads.items()}
        return StatusReport(
            tuple(self.stuck.judge(results, remember=False)),
            down_since,
            histories,
            mutes,
            maintenance=in_maintenance(self.schedules, now),
            processes=processes,
            degraded_since=degraded,
        )

    def process_report(self, server: str) -> ProcessReport | None:
        """The last round's pm2 list of `server` with its history; None when none was read."""
        read = self.process_reads.get(server)
        return None if read is None else self.crashes.report(read)

    async def status_updates(self, fresh: AsyncIterable[HealthResult]) -> AsyncGenerator[StatusReport, None]:
        """At once the last round's status with every server pending (no result at all before the first
        round), then a report as each of the `fresh` results comes in; the last has nothing pending."""
        last = self.last_round
        shown: dict[str, HealthResult | None] = {server.name: None for server in self.settings.servers}
        for result in last.results if last else ():
            if result.server in shown:
                shown[result.server] = result
        base = await self.status(())
        age = self.clock.now() - last.at if last else None
        pending = dict.fromkeys(shown)

        def report() -> StatusReport:
            results = self.stuck.judge([result for result in shown.values() if result is not None], remember=False)
            return dataclasses.replace(base, results=tuple(results), pending=tuple(pending), age=age)

        yield report()
        async for result in fresh:
            shown[result.server] = result
            pending.pop(result.server, None)
            yield report()

    # -- acknowledgements

    async def ack_state(self, server: str, outage: int) -> AckResult:
        """Whether the outage of `server` that `outage` names (monitor.outage_id) can be acknowledged."""
        since = self._current_outage(server, outage)
        if since is None:
            return AckResult(over=True)
        return AckResult(await asyncio.to_thread(self.store.acknowledgement, server, since))

    async def acknowledge(self, server: str, outage: int, by: str, reason: str = "") -> AckResult:
        """Record that `by` took on that outage; the first acknowledgement is kept. Reminders of it stop and
        its recovery names who acknowledged it."""
        since = self._current_outage(server, outage)
        if since is None:
            return AckResult(over=True)
        mine = Acknowledgement(server, since, by, self.clock.now(), reason)
        kept = await asyncio.to_thread(self.store.acknowledge, mine)
        if kept == mine:
            log.info("Outage of %s acknowledged by %s%s", server, by, f": {reason}" if reason else "")
        return AckResult(kept, recorded=kept == mine)

    def _current_outage(self, server: str, outage: int) -> datetime | None:
        since = self.monitor.down_since(server)
        return since if since is not None and outage_id(since) == outage else None

    async def deliver_pending(self) -> int:
        """Hand undelivered alerts to the sink, one per round and kind; stop at the first failure and try again
        later. Alerts of muted servers and of servers in a maintenance window (held alike), reminders of
        acknowledged outages, and alerts with nowhere to go are settled unposted; a server still down when
        its mute or window ends gets its outage alert then, one that came back meanwhile nothing. The recovery
        of an outage that was posted is always posted: a mute set afterwards must not leave "offline" the
        channel's last word. Returns how many alerts still wait."""
        async with self._delivery:
            store = self.store
            now = self.clock.now()
            held = (await asyncio.to_thread(store.mutes, now)).keys() | in_maintenance(self.schedules, now).keys()
            for kind, spell in (("outage", _down_since), ("degraded", _degraded_since)):
                still = {
                    name: since
                    for name, watch in self.monitor.watches.items()
                    if (since := spell(watch)) is not None and name not in held
                }
                await asyncio.to_thread(store.unsilence_outages, still, kind)
            crashing = [episode for episode in self.crashes.open_episodes() if episode[0] not in held]
            await asyncio.to_thread(store.unsilence_processes, crashing)
            if self.healer is not None:  # a "needs a human" held back goes out when the hold ends, if still so
                given_up = {name: n.since for name, n in self.healer.rails.latched().items() if name not in held}
                await asyncio.to_thread(store.unsilence_outages, given_up, NEEDS_HUMAN)
            pending = await asyncio.to_thread(store.pending_events)
            for _, group in itertools.groupby(pending, key=lambda stored: (stored.round, type(stored.event))):
                stored = list(group)
                silent = [
                    s.id for s in stored if s.follows_silence or (s.event.server in held and not s.follows_announcement)
                ]
                await asyncio.to_thread(store.mark_events, silent, "muted")
                taken = [s.id for s in stored if isinstance(s.event, Reminder) and s.ack and s.id not in silent]
                await asyncio.to_thread(store.mark_events, taken, "acked")
                loud = [s for s in stored if s.id not in silent and s.id not in taken]
                if not loud:
                    continue
                if not self.sink.enabled:
                    await asyncio.to_thread(store.mark_events, [s.id for s in loud], "off")
                    continue
                acks = {s.event.server: s.ack for s in loud if s.ack is not None}
                if not await self.sink.send(Alert(tuple(s.event for s in loud), acks)):
                    return len(pending) - pending.index(loud[0])
                await asyncio.to_thread(store.mark_events, [s.id for s in loud], "delivered")
            return 0

    def _beat(self, round_completed_at: datetime, waiting: int) -> None:
        connected = self.sink.connected
        beat = Heartbeat(round_completed_at, connected, None if connected else self.sink.away_since, waiting)
        try:
            heartbeat.write(self.settings.data_dir, beat)
        except OSError as exc:  # the healthcheck will say so; the monitor itself keeps going
            log.error("Cannot write the heartbeat file in %s: %s", self.settings.data_dir, exc)


def _down_since(watch: ServerWatch) -> datetime | None:
    return watch.down_since


def _degraded_since(watch: ServerWatch) -> datetime | None:
    return watch.degraded_since


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
    elif isinstance(event, Degraded):
        log.warning("Degraded: %s since %s (%s)", event.server, event.since.isoformat(), event.reason)
    elif isinstance(event, Healthy):
        seconds = round(event.duration.total_seconds())
        log.info("Fully online again: %s after %s degraded", event.server, timedelta(seconds=seconds))
    else:
        log.info(
            "Recovery: %s online again after %s", event.server, timedelta(seconds=round(event.downtime.total_seconds()))
        )
