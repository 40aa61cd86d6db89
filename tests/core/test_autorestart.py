"""The guard rails of automatic restarts, driven directly a minute at a time: every rule, with time moved by
the test (the rails are pure: the time is an argument). The wiring (the watchdog, the store, real restarts) is
tested in tests/core/test_selfheal.py and, over a real sshd, in tests/discord_bot/test_autorestart.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from bot.core.autorestart import (
    NeedsHuman,
    Outcome,
    PersonRestart,
    Rails,
    Restart,
    Situation,
    Skip,
    SkipKind,
    Trouble,
    Verdict,
    trouble_of,
)
from bot.core.crashloop import FailingProcess
from bot.core.health import Cause, HealthResult
from bot.core.monitor import ServerWatch, State
from tests.support.clock import START

MINUTE = timedelta(minutes=1)


@dataclass
class Drive:
    """One server, `Main`, a round a minute: in trouble (since `since`) or not, every restart ending at once
    with `outcome`. Keeps every verdict and when it came."""

    rails: Rails = field(default_factory=lambda: Rails(limit=3, after=timedelta(minutes=5)))
    now: datetime = START
    since: datetime | None = START  # None: out of trouble
    outcome: Outcome = Outcome.NOT_FIXED
    reason: str = "exit code 1"
    verdicts: list[tuple[datetime, Verdict]] = field(default_factory=list)
    latched: list[NeedsHuman] = field(default_factory=list)  # latched by outcomes

    def minutes(self, count: int, **situation: object) -> None:
        for _ in range(count):
            trouble = None if self.since is None else Trouble(self.since, "offline (connection refused)")
            verdict = self.rails.decide("Main", Situation(trouble, **situation), self.now)  # type: ignore[arg-type]
            self.verdicts.append((self.now, verdict))
            if isinstance(verdict.decision, Restart):
                done = self.rails.finish("Main", verdict.decision.at, self.outcome, self.reason, self.now)
                self.latched += [done] if done else []
            self.now += MINUTE

    def restarts(self) -> list[float]:
        """When each restart was decided, in minutes from START."""
        return [(at - START) / MINUTE for at, v in self.verdicts if isinstance(v.decision, Restart)]

    def needs_human(self) -> list[NeedsHuman]:
        return self.latched + [v.decision for _, v in self.verdicts if isinstance(v.decision, NeedsHuman)]

    def last(self) -> Restart | Skip | NeedsHuman | None:
        return self.verdicts[-1][1].decision

    def skips(self) -> list[SkipKind]:
        return [v.decision.kind for _, v in self.verdicts if isinstance(v.decision, Skip)]

    def notes(self) -> list[str]:
        return [note for _, verdict in self.verdicts for note in verdict.notes]


def test_a_server_that_stays_down_is_restarted_after_5_15_and_35_minutes_then_needs_a_human_once() -> None:
    drive = Drive()
    drive.minutes(120)
    assert drive.restarts() == [5, 15, 35]  # AFTER, then 2 x AFTER and 4 x AFTER after each attempt
    (latched,) = drive.needs_human()  # at once after the last one allowed did not bring it back
    assert latched.since == START + 35 * MINUTE
    assert latched.reason == "3 automatic restart(s) in 6 h did not bring it back"
    waiting = drive.verdicts[0][1].decision
    assert isinstance(waiting, Skip) and waiting.kind is SkipKind.WAITING
    assert waiting.reason == "in trouble since 12:00 UTC; restart at 12:05 UTC"
    assert drive.skips()[6:15] == [SkipKind.BACKING_OFF] * 9
    assert set(drive.skips()[36:]) == {SkipKind.LATCHED}
    attempts = [v.decision for _, v in drive.verdicts if isinstance(v.decision, Restart)]
    assert [(a.attempt, a.limit, a.process) for a in attempts] == [(1, 3, None), (2, 3, None), (3, 3, None)]


def test_waiting_counts_from_the_troubles_start_not_from_when_the_rails_first_hear_of_it() -> None:
    drive = Drive(since=START - 4 * MINUTE)  # the first failed check was 4 minutes before this round
    drive.minutes(3)
    assert drive.restarts() == [1]


def test_at_most_limit_automatic_restarts_in_any_6_hours_even_when_each_one_works() -> None:
    """A server that comes back after each restart and goes down again 40 minutes later (so the back-off
    starts afresh each time): three restarts, then a human, never a fourth within 6 h."""
    drive = Drive(outcome=Outcome.FIXED)
    for _ in range(4):
        drive.since = drive.now
        drive.minutes(6)
        drive.since = None
        drive.minutes(34)
    assert drive.restarts() == [5, 45, 85]
    (latched,) = drive.needs_human()
    assert latched.since == START + 125 * MINUTE  # the fourth outage, AFTER minutes in
    assert latched.reason.startswith("still offline (connection refused) after 3 automatic restart(s) in 6 h")
    assert "automatic restarts resume: it recovered" in drive.notes()


def test_a_restart_counts_towards_the_limit_for_6_hours() -> None:
    drive = Drive(rails=Rails(limit=1, after=timedelta(minutes=5)), outcome=Outcome.FIXED)
    drive.minutes(6)
    drive.since = None
    drive.minutes(6 * 60 - 12)
    drive.since = drive.now
    drive.minutes(5)  # 6 h after the first restart, less a minute
    assert drive.restarts() == [5]
    assert drive.needs_human() == []  # the limit was reached, but it is AFTER minutes in only now:
    drive.minutes(1)
    assert drive.restarts() == [5] and len(drive.needs_human()) == 1


def test_the_window_lets_a_new_restart_in_after_6_hours() -> None:
    drive = Drive(rails=Rails(limit=1, after=timedelta(minutes=5)), outcome=Outcome.FIXED)
    drive.minutes(6)
    drive.since = None
    drive.minutes(6 * 60)
    drive.since = drive.now
    drive.minutes(6)
    assert drive.restarts() == [5, 6 * 60 + 11] and drive.needs_human() == []


@pytest.mark.parametrize(
    ("situation", "kind", "reason"),
    [
        ({"muted_until": START + 60 * MINUTE}, SkipKind.MUTED, "muted until 13:00 UTC"),
        ({"maintenance_until": START + 30 * MINUTE}, SkipKind.MAINTENANCE, "in a maintenance window until 12:30 UTC"),
        ({"acknowledged_by": "alice (1)"}, SkipKind.ACKNOWLEDGED, "its outage was acknowledged by alice (1)"),
        ({"running": True}, SkipKind.RUNNING, "an automatic restart of it is still running"),
    ],
)
def test_never_while_muted_in_maintenance_acknowledged_or_already_restarting(
    situation: dict[str, object], kind: SkipKind, reason: str
) -> None:
    drive = Drive()
    drive.minutes(60, **situation)
    assert drive.restarts() == [] and drive.needs_human() == []
    skip = drive.last()
    assert isinstance(skip, Skip) and (skip.kind, skip.reason) == (kind, reason)
    drive.minutes(1)  # held no longer: in trouble for over AFTER minutes, so at once
    assert drive.restarts() == [60]


def test_not_within_10_minutes_of_a_restart_by_a_person() -> None:
    drive = Drive()
    person = PersonRestart(START + 3 * MINUTE, "alice (1)")
    drive.minutes(13, person=person)
    skip = drive.last()
    assert isinstance(skip, Skip) and skip.kind is SkipKind.PERSON
    assert skip.reason == "alice (1) restarted it at 12:03 UTC; not within 10 min of that"
    drive.minutes(1, person=person)
    assert drive.restarts() == [13]


@pytest.mark.parametrize(("up", "fourth"), [(31, 112), (30, 150)])
def test_the_back_off_starts_afresh_after_30_minutes_out_of_trouble(up: int, fourth: int) -> None:
    drive = Drive(rails=Rails(limit=10, after=timedelta(minutes=10)))
    drive.minutes(71)
    assert drive.restarts() == [10, 30, 70]  # the next would wait 8 x AFTER: until 150
    drive.since = None
    drive.minutes(up)  # rounds from 71 on: the 31st is 30 minutes after the first
    drive.since = drive.now
    drive.minutes(fourth + 1 - 71 - up)
    assert drive.restarts() == [10, 30, 70, fourth]  # afresh: AFTER after the new trouble's start
    afresh = [note for note in drive.notes() if "afresh" in note]
    assert afresh == (["out of trouble for 30 min: the back-off and failures start afresh"] if up == 31 else [])


def test_two_automatic_restarts_in_a_row_that_failed_call_a_human() -> None:
    drive = Drive(rails=Rails(limit=10, after=timedelta(minutes=5)), outcome=Outcome.FAILED, reason="timed out")
    drive.minutes(60)
    assert drive.restarts() == [5, 15]
    (latched,) = drive.needs_human()
    assert latched.reason == "2 automatic restarts in a row failed (timed out)"
    assert latched.since == START + 15 * MINUTE


def test_failures_not_in_a_row_do_not_call_a_human() -> None:
    rails = Rails(limit=10, after=timedelta(minutes=5))
    trouble = Situation(Trouble(START, "offline"))
    assert rails.finish("Main", _restart(rails, trouble, 5), Outcome.FAILED, "x", START + 5 * MINUTE) is None
    assert rails.finish("Main", _restart(rails, trouble, 15), Outcome.NOT_FIXED, "", START + 16 * MINUTE) is None
    assert rails.finish("Main", _restart(rails, trouble, 35), Outcome.FAILED, "x", START + 36 * MINUTE) is None


def _restart(rails: Rails, situation: Situation, minute: int) -> datetime:
    verdict = rails.decide("Main", situation, START + minute * MINUTE)
    assert isinstance(verdict.decision, Restart), verdict
    return verdict.decision.at


@pytest.mark.parametrize("by", ["a person's restart", "a recovery"])
def test_a_person_restarting_it_or_a_recovery_ends_needs_a_human(by: str) -> None:
    drive = Drive(rails=Rails(limit=10, after=timedelta(minutes=5)), outcome=Outcome.FAILED)
    drive.minutes(20)
    assert drive.restarts() == [5, 15] and len(drive.needs_human()) == 1
    if by == "a recovery":
        drive.since = None
        drive.minutes(1)
        drive.since = drive.now
        drive.minutes(15)
        assert drive.notes() == ["automatic restarts resume: it recovered"]
    else:
        person = PersonRestart(drive.now, "alice (1)")
        drive.minutes(16, person=person)
        assert drive.notes() == ["automatic restarts resume: alice (1) restarted it"]
    # Neither resets the back-off (4 x AFTER after the attempt at 15), only the latch and the failures:
    assert drive.restarts() == [5, 15, 35]
    assert len(drive.needs_human()) == 1


def test_after_a_person_restarted_it_a_full_window_says_so_instead_of_calling_again() -> None:
    drive = Drive()
    drive.minutes(36)
    assert drive.restarts() == [5, 15, 35] and len(drive.needs_human()) == 1
    person = PersonRestart(drive.now, "alice (1)")
    drive.minutes(60, person=person)
    assert len(drive.needs_human()) == 1  # no second call: the person is on it
    skip = drive.last()
    assert isinstance(skip, Skip) and skip.kind is SkipKind.LIMIT
    assert skip.reason == (
        "3 automatic restart(s) in 6 h already; alice (1) restarted it since; the next may start at 18:05 UTC"
    )


def test_a_restart_refused_because_another_one_ran_does_not_count() -> None:
    rails = Rails(limit=1, after=timedelta(minutes=5))
    trouble = Situation(Trouble(START, "offline"))
    started = _restart(rails, trouble, 5)
    assert rails.finish("Main", started, Outcome.REFUSED, "already restarting", START + 5 * MINUTE) is None
    assert rails.state("Main").attempts == [] and rails.state("Main").streak == 0
    assert _restart(rails, trouble, 6) == START + 6 * MINUTE  # no back-off either


def test_the_back_off_never_exceeds_the_window() -> None:
    rails = Rails(limit=3, after=timedelta(minutes=300))
    assert [rails.wait(n) for n in (1, 2, 40)] == [timedelta(hours=6)] * 3
    assert Rails(limit=3, after=timedelta(minutes=5)).wait(3) == timedelta(minutes=40)


# -- what counts as trouble


def watch(state: State, since: datetime | None = START) -> ServerWatch:
    return ServerWatch(state, down_since=since if state is State.DOWN else None, degraded_since=since)


def test_an_outage_is_trouble_from_its_first_failed_check_but_a_failure_not_declared_yet_is_not() -> None:
    refused = HealthResult("Main", False, START, reason="connection refused")
    assert trouble_of(watch(State.DOWN), refused) == Trouble(START, "offline (connection refused)")
    assert trouble_of(ServerWatch(State.UP, failures=1, first_failure=START), refused) is None
    assert trouble_of(None, None) is None


@pytest.mark.parametrize(
    ("cause", "helps"), [(Cause.QUEUE, True), (Cause.SILENCE, True), (Cause.REFUSED, False), (Cause.METRICS, False)]
)
def test_a_degraded_server_is_trouble_only_when_a_restart_may_help(cause: Cause, helps: bool) -> None:
    result = HealthResult("Main", True, START, 200, 5.0, reason="delivery queue 350 > 180", cause=cause)
    expected = Trouble(START, "degraded (delivery queue 350 > 180)") if helps else None
    assert trouble_of(watch(State.DEGRADED), result) == expected
    healthy_again = HealthResult("Main", True, START, 200, 5.0)  # declared degraded still, but this one is fine
    assert trouble_of(watch(State.DEGRADED), healthy_again) is None


def test_a_failing_pm2_process_is_restarted_alone_the_oldest_first_by_id_when_its_name_will_not_do() -> None:
    ok = HealthResult("Main", True, START, 200, 5.0)
    later, older = (
        FailingProcess("looper", 3, START + MINUTE, "5 restarts in 10 min"),
        FailingProcess("broken", 4, START, "errored (exit code 1)"),
    )
    assert trouble_of(watch(State.UP), ok, [later, older]) == Trouble(
        START, "pm2 process broken: errored (exit code 1)", "broken"
    )
    for name in ("42", "all", "bad name"):
        odd = FailingProcess(name, 7, START, "stopped")
        trouble = trouble_of(watch(State.UP), ok, [odd])
        assert trouble is not None and trouble.process == "7"
    down = HealthResult("Main", False, START + 2 * MINUTE, reason="connection refused")
    both = trouble_of(watch(State.DOWN, START + 2 * MINUTE), down, [later])
    assert both == Trouble(
        START + MINUTE, "offline (connection refused); pm2 process looper: 5 restarts in 10 min", "looper"
    )
