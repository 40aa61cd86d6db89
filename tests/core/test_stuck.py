"""Stuck detection, fed round by round with metrics and check times: pure, so minutes pass in microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.core.health import Cause, Condition, HealthResult
from bot.core.metrics import PoracleMetrics
from bot.core.stuck import Quiet, StuckTracker

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SILENCE = timedelta(minutes=10)


def reading(minute: float, webhooks: float, queue: float = 0, server: str = "NG") -> HealthResult:
    at = T0 + timedelta(minutes=minute)
    return HealthResult(server, True, at, 200, 5.0, metrics=PoracleMetrics(queue, webhooks))


def verdicts(tracker: StuckTracker, counts: list[float], every: float = 1, start: float = 0) -> list[str | None]:
    """The reason of each round (None: healthy), one round every `every` minutes with these counter values."""
    return [tracker.judge([reading(start + i * every, n)], remember=True)[0].reason for i, n in enumerate(counts)]


def test_a_backlog_above_the_limit_is_degraded_at_each_such_check_and_says_how_far() -> None:
    tracker = StuckTracker(200, SILENCE)
    below, at_limit, above = tracker.judge(
        [reading(0, 5, queue=150), reading(0, 5, queue=200, server="B"), reading(0, 5, queue=350, server="C")],
        remember=True,
    )
    assert below.condition is Condition.ONLINE and at_limit.condition is Condition.ONLINE
    assert (above.condition, above.cause, above.reason) == (Condition.DEGRADED, Cause.QUEUE, "delivery queue 350 > 200")
    assert above.cause.restart_may_help


def test_a_counter_that_stops_growing_is_silent_after_the_window_and_growing_again_ends_it() -> None:
    tracker = StuckTracker(200, SILENCE)
    reasons = verdicts(tracker, [10, 20, 30] + [30] * 11 + [31])
    assert reasons[:12] == [None] * 12  # the counter last changed at minute 2: 10 minutes at minute 12
    assert reasons[12:14] == ["no webhooks for 10 min", "no webhooks for 11 min"]
    assert reasons[14] is None


def test_a_new_tracker_waits_a_whole_window_before_calling_a_silence() -> None:
    """After a bot restart without memory, or a first start: the counter may have been flat for hours, but
    that has not been seen."""
    tracker = StuckTracker(200, SILENCE)
    reasons = verdicts(tracker, [500] * 11, start=60)
    assert reasons[:10] == [None] * 10 and reasons[10] == "no webhooks for 10 min"


def test_a_poracleng_restart_resets_its_counter_and_the_window_starts_again() -> None:
    """No series until the first webhook after a start: 0, which is a change from 900."""
    tracker = StuckTracker(200, SILENCE)
    assert verdicts(tracker, [900] * 11)[-1] == "no webhooks for 10 min"
    assert verdicts(tracker, [0] * 10, start=11) == [None] * 10


def test_a_look_between_rounds_does_not_move_the_silence_on() -> None:
    tracker = StuckTracker(200, SILENCE)
    verdicts(tracker, [7, 7])
    (peek,) = tracker.judge([reading(5, 8)], remember=False)  # a /poracle status that saw a new webhook
    assert peek.condition is Condition.ONLINE
    assert tracker.quiet["NG"] == Quiet(7, T0 + timedelta(minutes=0))
    assert tracker.judge([reading(10, 7)], remember=False)[0].reason == "no webhooks for 10 min"


def test_restored_counters_carry_a_silence_across_a_bot_restart() -> None:
    first = StuckTracker(200, SILENCE)
    verdicts(first, [3] * 12)
    restored = StuckTracker(200, SILENCE, dict(first.quiet))
    assert restored.judge([reading(13, 3)], remember=True)[0].reason == "no webhooks for 13 min"


def test_both_at_once_name_both_and_the_queue_leads() -> None:
    tracker = StuckTracker(200, SILENCE)
    tracker.judge([reading(0, 1)], remember=True)
    (stuck,) = tracker.judge([reading(10, 1, queue=201)], remember=True)
    assert (stuck.cause, stuck.reason) == (Cause.QUEUE, "delivery queue 201 > 200; no webhooks for 10 min")


def test_results_without_metrics_are_left_as_they_are() -> None:
    tracker = StuckTracker(200, SILENCE)
    offline = HealthResult("NG", False, T0, reason="connection refused")
    refused = HealthResult("NG", True, T0, 403, 3.0, reason="refuses the bot: HTTP 403", cause=Cause.REFUSED)
    assert tracker.judge([offline, refused], remember=True) == [offline, refused]
    assert tracker.quiet == {}


def test_judging_twice_gives_the_same_verdict() -> None:
    """/poracle status judges what a round judged already (its live status) or a fresh check."""
    tracker = StuckTracker(200, SILENCE)
    verdicts(tracker, [1] * 10)
    once = tracker.judge([reading(10, 1, queue=300)], remember=True)
    assert tracker.judge(once, remember=False) == once
