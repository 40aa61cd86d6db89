"""Outage, degradation and recovery detection from rounds of health checks. Pure state: no I/O, no Discord.

A server is declared down after PORACLE_DOWN_AFTER failed checks in a row and up again after
PORACLE_UP_AFTER answers (healthy or degraded: any answer means the process answers). It is declared
degraded after PORACLE_DOWN_AFTER degraded answers in a row and fully online again after PORACLE_UP_AFTER
healthy ones. Each change yields one event (plus a reminder every PORACLE_REMIND_EVERY minutes while down,
when set). The store keeps the events until they are delivered.

| declared state      | this check                          | becomes  | event                           |
| ------------------- | ----------------------------------- | -------- | ------------------------------- |
| unknown             | healthy                             | online   | none: up at start-up            |
| not offline         | the DOWN_AFTER-th failure in a row  | offline  | Outage, since the first failure |
| offline             | failure, REMIND_EVERY after alert   | offline  | Reminder                        |
| offline             | the UP_AFTER-th answer in a row     | online   | Recovery (then the next row)    |
| unknown, online     | the DOWN_AFTER-th degraded in a row | degraded | Degraded, since the first one   |
| degraded            | the UP_AFTER-th healthy in a row    | online   | Healthy: fully online again     |

An outage ends a degraded spell (the history shows it ended there); a failure below DOWN_AFTER, or a
degraded answer, does not end one. Degraded answers while offline count towards a degradation declared
just after the recovery (in the same round: "online again", then "degraded").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from bot.core.health import Cause, Condition, HealthResult


class State(StrEnum):
    """What the monitor has declared a server to be (the thresholds passed), not what one check found."""

    UNKNOWN = "unknown"  # not checked yet since start-up
    UP = "online"
    DEGRADED = "degraded"
    DOWN = "offline"


@dataclass(frozen=True, slots=True)
class Outage:
    """Declared offline: PORACLE_DOWN_AFTER failed checks in a row."""

    server: str
    reason: str
    since: datetime  # the first failed check of the streak, not when the threshold was reached


@dataclass(frozen=True, slots=True)
class Reminder:
    """Still offline, PORACLE_REMIND_EVERY minutes after the last alert."""

    server: str
    reason: str
    since: datetime
    at: datetime


@dataclass(frozen=True, slots=True)
class Recovery:
    server: str
    down_since: datetime
    recovered_at: datetime

    @property
    def downtime(self) -> timedelta:
        return self.recovered_at - self.down_since


@dataclass(frozen=True, slots=True)
class Degraded:
    """Declared degraded: PORACLE_DOWN_AFTER degraded answers in a row."""

    server: str
    reason: str
    since: datetime  # the first degraded answer of the streak
    cause: Cause


@dataclass(frozen=True, slots=True)
class Healthy:
    """Fully online again after a degraded spell: PORACLE_UP_AFTER healthy answers in a row."""

    server: str
    degraded_since: datetime
    healthy_at: datetime

    @property
    def duration(self) -> timedelta:
        return self.healthy_at - self.degraded_since


Event = Outage | Reminder | Recovery | Degraded | Healthy


def restart_may_help(event: Event) -> bool:
    """Whether its alert offers a Restart button."""
    if isinstance(event, Degraded):
        return event.cause.restart_may_help
    return isinstance(event, Outage | Reminder)


def outage_id(since: datetime) -> int:
    """How an alert's buttons name the outage it announces: its start, in milliseconds since the epoch."""
    return round(since.timestamp() * 1000)


@dataclass(slots=True)
class ServerWatch:
    """What the monitor knows of one server."""

    state: State = State.UNKNOWN
    failures: int = 0  # consecutive
    successes: int = 0  # consecutive
    first_failure: datetime | None = None
    down_since: datetime | None = None
    last_alert: datetime | None = None  # when the last outage or reminder was raised
    degraded: int = 0  # consecutive degraded answers
    healthy: int = 0  # consecutive healthy answers
    first_degraded: datetime | None = None
    degraded_since: datetime | None = None


@dataclass
class Monitor:
    down_after: int
    up_after: int
    remind_every: timedelta | None = None
    watches: dict[str, ServerWatch] = field(default_factory=dict)  # restored from the store at start-up

    def observe(self, results: Iterable[HealthResult]) -> list[Event]:
        """Take one round of results; return the events it caused, in the order of the results."""
        events: list[Event] = []
        for result in results:
            events += self._update(self.watches.setdefault(result.server, ServerWatch()), result)
        return events

    def down_since(self, server: str) -> datetime | None:
        watch = self.watches.get(server)
        return watch.down_since if watch else None

    def _update(self, watch: ServerWatch, result: HealthResult) -> list[Event]:
        if result.online:
            return self._answered(watch, result)
        watch.successes = watch.degraded = watch.healthy = 0
        watch.first_degraded = None
        watch.failures += 1
        watch.first_failure = watch.first_failure or result.checked_at
        reason = result.reason or "no answer"
        if watch.state is not State.DOWN and watch.failures >= self.down_after:
            watch.state, watch.down_since, watch.last_alert = State.DOWN, watch.first_failure, result.checked_at
            watch.degraded_since = None  # the outage ends a degraded spell
            return [Outage(result.server, reason, watch.first_failure)]
        if (
            watch.state is State.DOWN
            and self.remind_every
            and watch.last_alert is not None
            and result.checked_at - watch.last_alert >= self.remind_every
        ):
            assert watch.down_since is not None
            watch.last_alert = result.checked_at
            return [Reminder(result.server, reason, watch.down_since, result.checked_at)]
        return []

    def _answered(self, watch: ServerWatch, result: HealthResult) -> list[Event]:
        """An answer, healthy or degraded: the process answers."""
        watch.failures, watch.first_failure = 0, None
        watch.successes += 1
        events: list[Event] = []
        if watch.state is State.DOWN and watch.successes >= self.up_after:
            assert watch.down_since is not None
            events.append(Recovery(result.server, watch.down_since, result.checked_at))
            watch.state, watch.down_since = State.UP, None
        if result.condition is Condition.DEGRADED:
            assert result.cause is not None
            watch.healthy = 0
            watch.degraded += 1
            watch.first_degraded = watch.first_degraded or result.checked_at
            if watch.state in (State.UNKNOWN, State.UP) and watch.degraded >= self.down_after:
                watch.state, watch.degraded_since = State.DEGRADED, watch.first_degraded
                events.append(Degraded(result.server, result.reason or "", watch.first_degraded, result.cause))
            return events
        watch.degraded, watch.first_degraded = 0, None
        watch.healthy += 1
        if watch.state is State.UNKNOWN:  # up at start-up: nothing worth announcing
            watch.state = State.UP
        elif watch.state is State.DEGRADED and watch.healthy >= self.up_after:
            assert watch.degraded_since is not None
            events.append(Healthy(result.server, watch.degraded_since, result.checked_at))
            watch.state, watch.degraded_since = State.UP, None
        return events
