"""Stuck detection for PoracleNG, from what its /metrics said (METRICS=on). Pure: fed each round's results
with their check times, no I/O.

- Delivery backlog: a check whose `poracle_delivery_queue_depth` is above PORACLE_QUEUE_LIMIT is degraded;
  the monitor's PORACLE_DOWN_AFTER turns that into "stays above for so many rounds".
- Webhook silence: degraded once the webhooks-received counter has not changed for PORACLE_WEBHOOK_SILENCE
  minutes while the server answers. The silence is counted from the first check that saw the counter at its
  value, so a bot that has just started (or a PoracleNG that restarted, resetting its counter) waits for a
  whole silence window before it says so. The store keeps that memory across bot restarts: without it, a
  restarted bot would announce the end of a silence that has not ended.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.config import Settings
from bot.core.health import Cause, HealthResult
from bot.core.metrics import count


@dataclass(frozen=True, slots=True)
class Quiet:
    """A server's webhook counter as last seen, and the first check that saw it at that value."""

    total: float
    since: datetime


class StuckTracker:
    def __init__(self, queue_limit: int, silence: timedelta, quiet: dict[str, Quiet] | None = None) -> None:
        self.queue_limit = queue_limit
        self.silence = silence
        self.quiet = quiet if quiet is not None else {}  # restored from the store at start-up

    @classmethod
    def configured(cls, settings: Settings, quiet: dict[str, Quiet] | None = None) -> StuckTracker:
        """With PORACLE_QUEUE_LIMIT and PORACLE_WEBHOOK_SILENCE. A new one, for one look (check, doctor),
        judges the queue only: a silence takes a window of watching."""
        return cls(settings.queue_limit, timedelta(minutes=settings.webhook_silence), quiet)

    def judge(self, results: Iterable[HealthResult], *, remember: bool) -> list[HealthResult]:
        """`results` with the verdicts their metrics call for. `remember`: a monitor round, whose counters
        are kept; not for a look in between (/poracle status), which must not move the silence on."""
        return [self._judge(result, remember) for result in results]

    def _judge(self, result: HealthResult, remember: bool) -> HealthResult:
        metrics = result.metrics
        if metrics is None:  # offline, refused, or not a METRICS=on server: nothing to judge
            return result
        quiet = self.quiet.get(result.server)
        if quiet is None or quiet.total != metrics.webhooks_received:
            quiet = Quiet(metrics.webhooks_received, result.checked_at)
        if remember:
            self.quiet[result.server] = quiet
        problems = []
        if metrics.delivery_queue > self.queue_limit:
            problems.append((Cause.QUEUE, f"delivery queue {count(metrics.delivery_queue)} > {self.queue_limit}"))
        silent = result.checked_at - quiet.since
        if silent >= self.silence:
            problems.append((Cause.SILENCE, f"no webhooks for {int(silent.total_seconds() // 60)} min"))
        if not problems:
            return replace(result, cause=None, reason=None)
        return replace(result, cause=problems[0][0], reason="; ".join(words for _, words in problems))
