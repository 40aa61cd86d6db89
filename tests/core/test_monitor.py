"""The outage state machine, round by round."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.core.health import HealthResult
from bot.core.monitor import Monitor, Outage, Recovery, Reminder, State

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def result(server: str, online: bool, minute: int) -> HealthResult:
    at = T0 + timedelta(minutes=minute)
    if online:
        return HealthResult(server, True, at, status=200, latency_ms=5.0)
    return HealthResult(server, False, at, reason="connection refused")


def run(monitor: Monitor, pattern: str, server: str = "Main") -> list[list[object]]:
    """Feed one result per character ('+' up, '-' down), one round a minute; return each round's events."""
    return [monitor.observe([result(server, ch == "+", i)]) for i, ch in enumerate(pattern)]


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
