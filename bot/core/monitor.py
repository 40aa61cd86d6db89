"""Outage and recovery detection from rounds of health checks. Pure state: no I/O, no Discord.

A server is declared down after PORACLE_DOWN_AFTER failed checks in a row and up again after
PORACLE_UP_AFTER good ones. Each change yields one event (plus a reminder every PORACLE_REMIND_EVERY
minutes while down, when set). The store keeps the events until they are delivered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from bot.core.health import HealthResult


class State(StrEnum):
    """What the monitor has declared a server to be (the thresholds passed), not what one check found."""

    UNKNOWN = "unknown"  # not checked yet since start-up
    UP = "online"
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


Event = Outage | Reminder | Recovery


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


@dataclass
class Monitor:
    down_after: int
    up_after: int
    remind_every: timedelta | None = None
    watches: dict[str, ServerWatch] = field(default_factory=dict)  # restored from the store at start-up

    def observe(self, results: Iterable[HealthResult]) -> list[Event]:
        """Take one round of results; return the events it caused, in the order of the results."""
        events = []
        for result in results:
            event = self._update(self.watches.setdefault(result.server, ServerWatch()), result)
            if event is not None:
                events.append(event)
        return events

    def down_since(self, server: str) -> datetime | None:
        watch = self.watches.get(server)
        return watch.down_since if watch else None

    def _update(self, watch: ServerWatch, result: HealthResult) -> Event | None:
        if result.online:
            watch.failures, watch.first_failure = 0, None
            watch.successes += 1
            if watch.state is State.UNKNOWN:  # up at start-up: nothing worth announcing
                watch.state = State.UP
            elif watch.state is State.DOWN and watch.successes >= self.up_after:
                assert watch.down_since is not None
                event = Recovery(result.server, watch.down_since, result.checked_at)
                watch.state, watch.down_since = State.UP, None
                return event
            return None
        watch.successes = 0
        watch.failures += 1
        watch.first_failure = watch.first_failure or result.checked_at
        reason = result.reason or "no answer"
        if watch.state is not State.DOWN and watch.failures >= self.down_after:
            watch.state, watch.down_since, watch.last_alert = State.DOWN, watch.first_failure, result.checked_at
            return Outage(result.server, reason, watch.first_failure)
        if (
            watch.state is State.DOWN
            and self.remind_every
            and watch.last_alert is not None
            and result.checked_at - watch.last_alert >= self.remind_every
        ):
            assert watch.down_since is not None
            watch.last_alert = result.checked_at
            return Reminder(result.server, reason, watch.down_since, result.checked_at)
        return None
