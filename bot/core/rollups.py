"""The arithmetic behind the status figures: latency histograms, medians, and running sums per hour.

The store keeps, per server and hour, the number of checks, of answers, of degraded answers and a latency
histogram; the uptime, degraded share and median of /poracle status are sums over 24 and 168 of those
hours. `Rollup` keeps the sums of the hours before the current one, moved on as hours enter and leave the
windows, so a status query only reads the current hour's rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DAY_HOURS, WEEK_HOURS = 24, 24 * 7  # the windows of the uptime figures
# Latency histograms use 4 buckets per doubling (each about 19 % wide): a median within 9 % (half a bucket)
# from hourly rows, instead of reading a million raw samples for every /poracle status.
BUCKETS_PER_DOUBLING = 4

Counts = dict[int, list[int]]  # server id -> [checks, online, degraded]
Histograms = dict[int, dict[int, int]]  # server id -> bucket -> answers
Sums = tuple[Counts, Histograms]


def bucket(latency_ms: float) -> int:
    return round(BUCKETS_PER_DOUBLING * math.log2(max(latency_ms, 1.0)))


def median(histogram: Mapping[int, int]) -> float | None:
    total = sum(histogram.values())
    if total == 0:
        return None
    seen = 0
    for key in sorted(histogram):
        seen += histogram[key]
        if seen * 2 >= total:
            return float(2 ** (key / BUCKETS_PER_DOUBLING))
    raise AssertionError("unreachable: the counts add up to total")


def ratio(checks: int, online: int) -> float | None:
    return online / checks if checks else None


NO_COUNTS = (0, 0, 0)


def plus(totals: Counts, server_id: int, counts: list[int], sign: int = 1) -> None:
    total = totals.setdefault(server_id, list(NO_COUNTS))
    for i, count in enumerate(counts):
        total[i] += sign * count


def plus_histogram(histograms: Histograms, server_id: int, counts: Mapping[int, int]) -> None:
    histogram = histograms.setdefault(server_id, {})
    for key, answers in counts.items():
        histogram[key] = histogram.get(key, 0) + answers
        if histogram[key] == 0:
            del histogram[key]


@dataclass(slots=True)
class Rollup:
    """Sums per server id of the hours before `hour`: over the day and the week, and the day's latencies."""

    hour: int
    day: Counts  # of the hours in (hour - 24, hour)
    week: Counts  # of the hours in (hour - 168, hour)
    latency: Histograms  # of the hours in (hour - 24, hour)

    def add(self, hourly: Iterable[tuple[int, int, int, int]], latency: Iterable[tuple[int, int, int]]) -> None:
        """Rows just written (server id, hour, online, degraded / bucket): those of hours in the sums are added."""
        for server_id, hour, online, degraded in hourly:
            if self.hour - WEEK_HOURS < hour < self.hour:
                plus(self.week, server_id, [1, online, degraded])
                if hour > self.hour - DAY_HOURS:
                    plus(self.day, server_id, [1, online, degraded])
        for server_id, hour, key in latency:
            if self.hour - DAY_HOURS < hour < self.hour:
                plus_histogram(self.latency, server_id, {key: 1})

    def move(self, hour: int, entered: Sums, left_day: Sums, left_week: Sums) -> None:
        """On to `hour`: add the hours now settled, take away those that left the day or the week."""
        for sums, sign in ((entered, 1), (left_day, -1)):
            for server_id, counts in sums[0].items():
                plus(self.day, server_id, counts, sign)
            for server_id, histogram in sums[1].items():
                plus_histogram(self.latency, server_id, {b: sign * n for b, n in histogram.items()})
        for sums, sign in ((entered, 1), (left_week, -1)):
            for server_id, counts in sums[0].items():
                plus(self.week, server_id, counts, sign)
        self.hour = hour
