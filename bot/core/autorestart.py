"""Guard rails for automatic restarts (PORACLE_SERVER_<N>_AUTO_RESTART=on). Pure state: no I/O, time passed in.

Each round the watchdog tells the rails, for each opted-in server, what is wrong with it (a Trouble: declared
offline, a stuck PoracleNG, or with ACCESS=gate a pm2 process errored, stopped or crash-looping) and what may
hold a restart back (a Situation). The rails answer with one decision: restart (the whole server, or only the
failing pm2 process), skip with the reason, or "needs a human". The rules, in the order they apply:

| when                                                                      | decision                  |
| ------------------------------------------------------------------------- | ------------------------- |
| "needs a human" is latched                                                | skip                      |
| an automatic restart of it is running                                     | skip                      |
| in trouble for less than PORACLE_AUTO_RESTART_AFTER minutes               | skip: waiting             |
| muted, in a maintenance window, or its outage acknowledged                | skip                      |
| a person restarted it (the audit: Discord or the command line) < 10 min ago | skip                    |
| PORACLE_AUTO_RESTART_LIMIT automatic restarts started in the last 6 h     | needs a human (1)         |
| the k-th automatic restart since the counters were reset was < AFTER * 2^k ago | skip: backing off    |
| otherwise                                                                 | restart                   |

(1) A skip instead when a person restarted it since the last automatic one: the person is on it.

The trouble's start is what AFTER counts from: an outage's first failed check, a degraded spell's first
degraded answer, a crash-loop episode's first round. So with AFTER 5 a server that stays down is restarted
5 min after its first failed check, then 10 min after that attempt, then 20 min after the second (AFTER,
2 * AFTER, 4 * AFTER ...; never more than 6 h).

"Needs a human" is latched, raising one alert, when the limit is reached and the server is still in trouble
(at once when the last allowed restart did not bring it back), or when two automatic restarts in a row failed:
the command failed, timed out or the bot could not log in, so another one cannot help (a restart that ran but
after which the server still does not answer counts towards the limit, not as a failure: PoracleJS may take
longer to come back than the bot waited). While latched nothing is tried. A restart by a person after the
latch clears it, and so does a round that finds the server out of trouble (a recovery).

After 30 minutes without trouble the back-off and the failures in a row start afresh. The 6 h window itself
slides and is never reset, so no server is restarted automatically more than LIMIT times in any 6 hours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from bot.core.crashloop import FailingProcess
from bot.core.gate_protocol import NAME_PATTERN
from bot.core.health import Condition, HealthResult
from bot.core.monitor import ServerWatch, State

WINDOW = timedelta(hours=6)  # the limit counts the automatic restarts started in this window
AFTER_A_PERSON = timedelta(minutes=10)  # a person's restart is given this long before the bot steps in
STABLE = timedelta(minutes=30)  # this long out of trouble and the back-off and failures start afresh
FAILURES_IN_A_ROW = 2  # automatic restarts in a row that failed before a human is called


def _clock(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%H:%M} UTC"


def _minutes(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes / 60:g} h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes:.0f} min"


@dataclass(frozen=True, slots=True)
class Trouble:
    """What is wrong with a server this round, and what a restart would restart."""

    since: datetime  # the earliest start of what is wrong
    reason: str
    process: str | None = None  # the failing pm2 process to restart alone; None: the whole server


def trouble_of(
    watch: ServerWatch | None, result: HealthResult | None, failing: Sequence[FailingProcess] = ()
) -> Trouble | None:
    """The trouble the monitor's declared state, the round's check and the failing pm2 processes show: an outage
    (from its first failed check), a degraded spell a restart may help (a stuck PoracleNG: not an IP allow-list),
    a failing process (the oldest episode's process is restarted alone). None: nothing a restart could fix."""
    starts: list[datetime] = []
    words: list[str] = []
    if watch is not None and watch.state is State.DOWN and watch.down_since is not None:
        starts.append(watch.down_since)
        words.append(f"offline ({result.reason if result is not None and result.reason else 'no answer'})")
    elif (
        watch is not None
        and watch.state is State.DEGRADED
        and watch.degraded_since is not None
        and result is not None
        and result.condition is Condition.DEGRADED
        and result.cause is not None
        and result.cause.restart_may_help
    ):
        starts.append(watch.degraded_since)
        words.append(f"degraded ({result.reason})")
    process = None
    if failing:
        first = min(failing, key=lambda f: (f.since, f.name))
        process = _target(first)
        starts.append(first.since)
        words.append(f"pm2 process {first.name}: {first.reason}")
    return Trouble(min(starts), "; ".join(words), process) if starts else None


def _target(process: FailingProcess) -> str:
    """How a restart names the process to the gate: by name, or by id when the gate would not take the name."""
    usable = process.name != "all" and not process.name.isdigit() and NAME_PATTERN.fullmatch(process.name)
    return process.name if usable else str(process.pm_id)


@dataclass(frozen=True, slots=True)
class PersonRestart:
    """The latest restart of a server by a person (from Discord or the command line), from the audit."""

    at: datetime
    by: str


@dataclass(frozen=True, slots=True)
class Situation:
    """What the rails are told of one server in a round."""

    trouble: Trouble | None
    muted_until: datetime | None = None
    maintenance_until: datetime | None = None
    acknowledged_by: str | None = None  # its outage was acknowledged
    person: PersonRestart | None = None
    running: bool = False  # an automatic restart of it has not finished yet


@dataclass(frozen=True, slots=True)
class NeedsHuman:
    """The rails gave up on a server until a person acts: the alert that pings DISCORD_ALERT_ROLE_ID."""

    server: str
    reason: str
    since: datetime  # when the rails gave up


@dataclass(slots=True)
class RailState:
    """What the rails remember of one server; the store keeps it, so a restarted bot neither forgets its
    limit nor repeats its "needs a human"."""

    attempts: list[datetime] = field(default_factory=list)  # automatic restarts started in the last 6 h
    last_attempt: datetime | None = None
    streak: int = 0  # automatic restarts since the counters were last reset: the back-off's exponent
    failures: int = 0  # automatic restarts in a row that failed
    up_since: datetime | None = None  # out of trouble since
    needs_human: NeedsHuman | None = None  # latched


class SkipKind(StrEnum):
    LATCHED = "needs a human"
    RUNNING = "running"
    WAITING = "waiting"
    MUTED = "muted"
    MAINTENANCE = "maintenance"
    ACKNOWLEDGED = "acknowledged"
    PERSON = "person"
    LIMIT = "limit"
    BACKING_OFF = "backing off"


@dataclass(frozen=True, slots=True)
class Skip:
    server: str
    kind: SkipKind
    reason: str


@dataclass(frozen=True, slots=True)
class Restart:
    """Restart the server (or only `process`) now."""

    server: str
    process: str | None
    attempt: int  # its number among the automatic restarts of the last 6 h
    limit: int
    trouble: str  # what is wrong, in words
    at: datetime


Decision = Restart | Skip | NeedsHuman


@dataclass(frozen=True, slots=True)
class AutoRestarted:
    """An automatic restart that ran, as the alert channel is told of it: kept in the outbox until posted, so
    Discord being away at that moment does not lose it."""

    server: str
    process: str | None  # the one pm2 process restarted; None: the whole server
    at: datetime  # when it ended
    word: str  # how it ended: restarted, failed, timed out ...
    why: str  # the reason when it did not succeed, else ""
    answers: bool | None  # whether the server answered its health check after it; None: not checked
    attempt: int  # its number among the automatic restarts of the last 6 h
    limit: int
    trouble: str  # what was wrong, in words


@dataclass(frozen=True, slots=True)
class Verdict:
    """A round's decision for a server (None: nothing wrong, nothing to decide), and what changed besides."""

    decision: Decision | None
    notes: tuple[str, ...] = ()  # a latch cleared, the counters reset


class Outcome(StrEnum):
    """An automatic restart as the rails see it."""

    FIXED = "fixed"  # restarted, and it answers its health check again
    NOT_FIXED = "not fixed"  # restarted, but it does not answer yet
    FAILED = "failed"  # it did not run to success: failed, timed out, could not log in
    REFUSED = "refused"  # another restart of it was running: nothing ran, nothing is counted


@dataclass
class Rails:
    limit: int  # PORACLE_AUTO_RESTART_LIMIT
    after: timedelta  # PORACLE_AUTO_RESTART_AFTER
    states: dict[str, RailState] = field(default_factory=dict)  # restored from the store

    def state(self, server: str) -> RailState:
        return self.states.setdefault(server, RailState())

    def decide(self, server: str, situation: Situation, now: datetime) -> Verdict:
        """This round's decision for `server`; a Restart is counted at once (call `finish` with its outcome)."""
        state = self.state(server)
        self._slide(state, now)
        notes = self._clear(server, state, situation)
        trouble = situation.trouble
        if trouble is None:
            state.up_since = state.up_since or now
            if (state.streak or state.failures) and now - state.up_since >= STABLE:
                state.streak = state.failures = 0
                notes.append(f"out of trouble for {_minutes(STABLE)}: the back-off and failures start afresh")
            return Verdict(None, tuple(notes))
        state.up_since = None
        return Verdict(self._decision(server, state, situation, trouble, now), tuple(notes))

    def _clear(self, server: str, state: RailState, situation: Situation) -> list[str]:
        """A latch ends when a person restarts the server after it, or when the server is out of trouble."""
        latched = state.needs_human
        if latched is None:
            return []
        if situation.trouble is None:
            why = "it recovered"
        elif situation.person is not None and situation.person.at > latched.since:
            why = f"{situation.person.by} restarted it"
        else:
            return []
        state.needs_human = None
        state.failures = 0
        return [f"automatic restarts resume: {why}"]

    def _decision(
        self, server: str, state: RailState, situation: Situation, trouble: Trouble, now: datetime
    ) -> Decision:
        if state.needs_human is not None:
            latched = state.needs_human
            return Skip(server, SkipKind.LATCHED, f"needs a human since {_clock(latched.since)}: {latched.reason}")
        if situation.running:
            return Skip(server, SkipKind.RUNNING, "an automatic restart of it is still running")
        if now - trouble.since < self.after:
            start = _clock(trouble.since + self.after)
            return Skip(server, SkipKind.WAITING, f"in trouble since {_clock(trouble.since)}; restart at {start}")
        if situation.muted_until is not None:
            return Skip(server, SkipKind.MUTED, f"muted until {_clock(situation.muted_until)}")
        if situation.maintenance_until is not None:
            return Skip(
                server, SkipKind.MAINTENANCE, f"in a maintenance window until {_clock(situation.maintenance_until)}"
            )
        if situation.acknowledged_by is not None:
            return Skip(server, SkipKind.ACKNOWLEDGED, f"its outage was acknowledged by {situation.acknowledged_by}")
        person = situation.person
        if person is not None and now - person.at < AFTER_A_PERSON:
            return Skip(
                server,
                SkipKind.PERSON,
                f"{person.by} restarted it at {_clock(person.at)}; not within {_minutes(AFTER_A_PERSON)} of that",
            )
        if len(state.attempts) >= self.limit:
            if person is not None and state.last_attempt is not None and person.at > state.last_attempt:
                return Skip(
                    server,
                    SkipKind.LIMIT,
                    f"{self.limit} automatic restart(s) in {_minutes(WINDOW)} already; {person.by} restarted it "
                    f"since; the next may start at {_clock(state.attempts[0] + WINDOW)}",
                )
            return self._latch(server, state, f"still {trouble.reason} after {self._tries()}", now)
        if state.streak and state.last_attempt is not None:
            due = state.last_attempt + self.wait(state.streak)
            if now < due:
                return Skip(server, SkipKind.BACKING_OFF, f"backing off; the next attempt at {_clock(due)}")
        state.attempts.append(now)
        state.last_attempt = now
        state.streak += 1
        return Restart(server, trouble.process, len(state.attempts), self.limit, trouble.reason, now)

    def wait(self, streak: int) -> timedelta:
        """The back-off after the `streak`-th attempt: AFTER * 2^streak, at most the 6 h window."""
        doubled: timedelta = self.after * 2 ** min(streak, 16)
        return min(doubled, WINDOW)

    def finish(self, server: str, started: datetime, outcome: Outcome, reason: str, now: datetime) -> NeedsHuman | None:
        """The outcome of the automatic restart started at `started`; the "needs a human" it latches, if any."""
        state = self.state(server)
        if outcome is Outcome.REFUSED:  # nothing ran: it does not count
            if started in state.attempts:
                state.attempts.remove(started)
            state.streak = max(0, state.streak - 1)
            state.last_attempt = state.attempts[-1] if state.attempts else None
            return None
        state.failures = state.failures + 1 if outcome is Outcome.FAILED else 0
        self._slide(state, now)
        if state.failures >= FAILURES_IN_A_ROW:
            return self._latch(server, state, f"{FAILURES_IN_A_ROW} automatic restarts in a row failed ({reason})", now)
        if outcome is not Outcome.FIXED and len(state.attempts) >= self.limit:
            return self._latch(server, state, f"{self._tries()} did not bring it back", now)
        return None

    def _tries(self) -> str:
        return f"{self.limit} automatic restart(s) in {_minutes(WINDOW)}"

    def _latch(self, server: str, state: RailState, reason: str, now: datetime) -> NeedsHuman:
        state.needs_human = NeedsHuman(server, reason, now)
        return state.needs_human

    def _slide(self, state: RailState, now: datetime) -> None:
        state.attempts = [at for at in state.attempts if now - at < WINDOW]

    def latched(self) -> Mapping[str, NeedsHuman]:
        """The servers that need a human now."""
        return {name: state.needs_human for name, state in self.states.items() if state.needs_human is not None}
