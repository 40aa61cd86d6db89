"""The outage state machine, round by round."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.health import HealthResult
from bot.monitor import Monitor, Outage, Recovery, State

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


def test_undelivered_events_stay_pending_in_order_until_delivered() -> None:
    monitor = Monitor(down_after=1, up_after=1)
    run(monitor, "+-+")
    assert [type(e) for e in monitor.pending] == [Outage, Recovery]
    monitor.delivered(monitor.pending[0])
    assert [type(e) for e in monitor.pending] == [Recovery]


def test_servers_are_tracked_independently() -> None:
    monitor = Monitor(down_after=1, up_after=1)
    events = monitor.observe([result("A", False, 0), result("B", True, 0)])
    assert events == [Outage("A", "connection refused", T0)]
    assert monitor.down_since("B") is None
