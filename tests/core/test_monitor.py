"""The outage and degradation state machine, round by round (the table in bot/core/monitor.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.core.health import Cause, HealthResult
from bot.core.monitor import Degraded, Healthy, Monitor, Outage, Recovery, Reminder, State, restart_may_help

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def result(server: str, online: bool, minute: int) -> HealthResult:
    at = T0 + timedelta(minutes=minute)
    if online:
        return HealthResult(server, True, at, status=200, latency_ms=5.0)
    return HealthResult(server, False, at, reason="connection refused")


REFUSED = "refuses the bot: ip 127.0.0.1 not in whitelist"


def check(server: str, ch: str, minute: int) -> HealthResult:
    if ch == "~":  # answers, but refuses the bot
        at = T0 + timedelta(minutes=minute)
        return HealthResult(server, True, at, status=200, latency_ms=5.0, reason=REFUSED, cause=Cause.REFUSED)
    return result(server, ch == "+", minute)


def run(monitor: Monitor, pattern: str, server: str = "Main") -> list[list[object]]:
    """Feed one result per character ('+' up, '~' degraded, '-' down), one round a minute; return each round's
    events."""
    return [monitor.observe([check(server, ch, i)]) for i, ch in enumerate(pattern)]


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def test_servers_up_at_start_are_not_announced() -> None:
    monitor = Monitor(down_after=2, up_after=1)
    assert run(monitor, "+++") == [[], [], []]
    assert monitor.watches["Main"].state is State.UP


def test_outage_after_down_after_failures_dated_from_the_first_failure() -> None:
    monitor = Monitor(down_after=2, up_after=1)
    rounds = run(monitor, "+--")
    assert rounds[:2] == [[], []]
    assert rounds[2] == [Outage("Main", "connection refused", T0 + timedelta(minutes=1))]
    assert monitor.down_since("Main") == T0 + timedelta(minutes=1)


def test_one_failure_below_the_threshold_is_not_an_outage() -> None:
    monitor = Monitor(down_after=2, up_after=1)
    assert all(events == [] for events in run(monitor, "+-+-+-+"))


def test_no_repeats_while_down_then_one_recovery_with_the_downtime() -> None:
    monitor = Monitor(down_after=2, up_after=2)
    rounds = run(monitor, "+-----++++")
    outages = [e for events in rounds for e in events if isinstance(e, Outage)]
    recoveries = [e for events in rounds for e in events if isinstance(e, Recovery)]
    assert len(outages) == 1
    assert recoveries == [Recovery("Main", T0 + timedelta(minutes=1), T0 + timedelta(minutes=7))]
    assert recoveries[0].downtime == timedelta(minutes=6)
    assert rounds[6] == []  # one success is below up_after=2


def test_server_down_at_start_is_announced() -> None:
    monitor = Monitor(down_after=2, up_after=1)
    assert run(monitor, "--")[1] == [Outage("Main", "connection refused", T0)]


def test_reminders_every_remind_every_while_down_and_none_by_default() -> None:
    reminding = Monitor(down_after=1, up_after=1, remind_every=timedelta(minutes=2))
    events = [e for round_ in run(reminding, "+-----") for e in round_]
    assert events == [
        Outage("Main", "connection refused", T0 + timedelta(minutes=1)),
        Reminder("Main", "connection refused", T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)),
        Reminder("Main", "connection refused", T0 + timedelta(minutes=1), T0 + timedelta(minutes=5)),
    ]
    quiet = Monitor(down_after=1, up_after=1)
    assert [type(e) for round_ in run(quiet, "+-----") for e in round_] == [Outage]


def test_restored_state_continues_an_outage_without_a_second_alert() -> None:
    first = Monitor(down_after=1, up_after=1)
    run(first, "--")
    restored = Monitor(down_after=1, up_after=1, watches=first.watches)
    assert restored.observe([result("Main", False, 5)]) == []
    assert restored.observe([result("Main", True, 6)]) == [Recovery("Main", T0, T0 + timedelta(minutes=6))]


def test_servers_are_tracked_independently() -> None:
    monitor = Monitor(down_after=1, up_after=1)
    events = monitor.observe([result("A", False, 0), result("B", True, 0)])
    assert events == [Outage("A", "connection refused", T0)]
    assert monitor.down_since("B") is None


# -------------------------------------------------------------------------------------------- degraded


def test_degraded_after_down_after_degraded_answers_and_fully_online_after_up_after_healthy_ones() -> None:
    monitor = Monitor(down_after=2, up_after=2)
    rounds = run(monitor, "+~~~~++")
    assert rounds[2] == [Degraded("Main", REFUSED, at(1), Cause.REFUSED)]  # dated from the first degraded answer
    assert rounds[5] == []  # one healthy answer is below up_after=2
    assert rounds[6] == [Healthy("Main", at(1), at(6))] and rounds[6][0].duration == timedelta(minutes=5)
    assert [e for r in rounds for e in r if not isinstance(e, Degraded | Healthy)] == []
    assert monitor.watches["Main"].state is State.UP and monitor.watches["Main"].degraded_since is None


def test_a_degraded_answer_below_the_threshold_is_nothing_and_still_an_answer() -> None:
    monitor = Monitor(down_after=2, up_after=1)
    assert all(events == [] for events in run(monitor, "+~+~+-~-~-+"))  # a degraded answer ends a failure streak


def test_a_server_degraded_at_start_up_is_announced() -> None:
    assert run(Monitor(down_after=2, up_after=1), "~~")[1] == [Degraded("Main", REFUSED, T0, Cause.REFUSED)]


def test_an_outage_ends_a_degraded_spell_and_the_next_one_is_new() -> None:
    monitor = Monitor(down_after=2, up_after=1)
    events = [e for r in run(monitor, "+~~--") for e in r]
    assert monitor.watches["Main"].degraded_since is None  # nothing to announce when a mute ends, nor to show
    events += [e for i, ch in enumerate("+~~", 5) for e in monitor.observe([check("Main", ch, i)])]
    assert events == [
        Degraded("Main", REFUSED, at(1), Cause.REFUSED),
        Outage("Main", "connection refused", at(3)),
        Recovery("Main", at(3), at(5)),
        Degraded("Main", REFUSED, at(6), Cause.REFUSED),
    ]


def test_failures_below_down_after_do_not_end_a_degraded_spell() -> None:
    monitor = Monitor(down_after=2, up_after=1)
    events = [e for r in run(monitor, "~~-~-~+") for e in r]
    assert events == [Degraded("Main", REFUSED, T0, Cause.REFUSED), Healthy("Main", T0, at(6))]


def test_answering_again_degraded_is_a_recovery_then_a_degradation_in_the_same_round() -> None:
    monitor = Monitor(down_after=2, up_after=2)
    rounds = run(monitor, "--~~~")
    assert rounds[3] == [Recovery("Main", T0, at(3)), Degraded("Main", REFUSED, at(2), Cause.REFUSED)]
    assert rounds[4] == [] and monitor.watches["Main"].state is State.DEGRADED


def test_restored_state_continues_a_degraded_spell_without_a_second_alert() -> None:
    first = Monitor(down_after=2, up_after=1)
    run(first, "~~")
    restored = Monitor(down_after=2, up_after=1, watches=first.watches)
    assert restored.observe([check("Main", "~", 5)]) == []
    assert restored.observe([check("Main", "+", 6)]) == [Healthy("Main", T0, at(6))]


def test_a_restart_is_offered_for_outages_and_a_stuck_poracleng_only() -> None:
    def degraded(cause: Cause) -> Degraded:
        return Degraded("Main", "", T0, cause)

    assert restart_may_help(Outage("Main", "", T0)) and restart_may_help(Reminder("Main", "", T0, T0))
    assert restart_may_help(degraded(Cause.QUEUE)) and restart_may_help(degraded(Cause.SILENCE))
    assert not restart_may_help(degraded(Cause.REFUSED)) and not restart_may_help(degraded(Cause.METRICS))
    assert not restart_may_help(Recovery("Main", T0, T0)) and not restart_may_help(Healthy("Main", T0, T0))
