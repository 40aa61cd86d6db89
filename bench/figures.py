"""What every bench prints: our figure beside the floor's, measured alternately in the same run, and the ratio.

    ours   SshRunner.run                      median   294.1 ms   min   270.0   max   330.2   (n=20)
    floor  bare asyncssh.connect + run, pty   median   280.3 ms   min   262.1   max   311.9   (n=20)
    ratio  ours / floor (medians) 1.05   goal <= 1.10: met

The floor is what the machine allows for the same work; the ratio says how much of the time is ours.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
WIDTH = 40  # of the variant's name


def describe(role: str, name: str, values: Sequence[float], unit: str = "ms", scale: float = 1000.0) -> str:
    """One line: the role (ours, floor), what ran, median, min and max of `values` (seconds, shown in `unit`)."""
    shown = [value * scale for value in values]
    digits = 3 if unit == "s" else 1
    return (
        f"{role:<6} {name:<{WIDTH}} median {statistics.median(shown):8.{digits}f} {unit:<3} "
        f"min {min(shown):8.{digits}f}   max {max(shown):8.{digits}f}   (n={len(shown)})"
    )


def ratio(ours: Sequence[float], floor: Sequence[float], goal: float | None = None, what: str = "") -> str:
    """The ratio of the medians (seconds), the difference, and whether it meets `goal` (at most that many times
    the floor)."""
    value = statistics.median(ours) / statistics.median(floor)
    difference = (statistics.median(ours) - statistics.median(floor)) * 1000
    verdict = "" if goal is None else f"   goal <= {goal:.2f}: {'met' if value <= goal else 'NOT met'}"
    return f"{'ratio':<6} {what or 'ours / floor (medians)':<{WIDTH}} {value:.3f} ({difference:+.1f} ms){verdict}"


def rss(role: str, name: str, peaks_kib: Sequence[int], goal_mib: float | None = None) -> str:
    """Peak resident memory (ru_maxrss, KiB on Linux) of the processes that ran `name`: median and max."""
    mib = [peak / 1024 for peak in peaks_kib]
    verdict = "" if goal_mib is None else f"   goal <= {goal_mib:g} MiB: {'met' if max(mib) <= goal_mib else 'NOT met'}"
    return f"{role:<6} {name:<{WIDTH}} peak RSS median {statistics.median(mib):6.1f} MiB, max {max(mib):6.1f}{verdict}"


def rotated(variants: Sequence[T], run: int) -> list[T]:
    """`variants` starting with a different one each run, so that neither always goes first (drift, warm caches)."""
    start = run % len(variants)
    return [*variants[start:], *variants[:start]]


def alternate(variants: Sequence[Callable[[], T]], runs: int) -> list[list[T]]:
    """Each variant `runs` times, interleaved: one of each per run, in rotating order. Results per variant."""
    results: list[list[T]] = [[] for _ in variants]
    for run in range(runs):
        for index in rotated(range(len(variants)), run):
            results[index].append(variants[index]())
    return results


async def alternate_async(variants: Sequence[Callable[[], Awaitable[T]]], runs: int) -> list[list[T]]:
    """`alternate` for coroutines, on the running event loop."""
    results: list[list[T]] = [[] for _ in variants]
    for run in range(runs):
        for index in rotated(range(len(variants)), run):
            results[index].append(await variants[index]())
    return results
