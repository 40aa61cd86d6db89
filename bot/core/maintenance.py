"""Maintenance windows (PORACLE_MAINTENANCE, PORACLE_SERVER_<N>_MAINTENANCE): when a server's outages are
recorded but not posted. Pure: parsing a spec, and "is this moment inside a window, and until when".

A spec is windows separated by commas, each `<days> HH:MM-HH:MM` in PORACLE_TIMEZONE, e.g.
`daily 04:00-04:30, sun 02:00-03:00`. Days: `daily`, `mon` ... `sun`, or a range such as `mon-fri` (or
`fri-mon`). An end earlier than the start crosses midnight: `sat 23:00-01:00` ends on Sunday. `none`: no
windows (for one server, overriding PORACLE_MAINTENANCE). Windows that overlap or touch make one.

The days the clocks change: a window starts when its start time first shows on the clock and lasts as long
in real time as on any other day (a maintenance job started by cron runs as long whatever the clock says).
A start time the clocks skip is read with the offset before the change (PEP 495's fold=0), so with
Europe/Berlin `sun 02:00-03:00` is 03:00-04:00 summer time on the last Sunday of March; a start time in the
hour repeated in autumn is its first occurrence, so that window is the first 02:00 to the second 02:00.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NONE = "none"
EXAMPLE = "e.g. 'daily 04:00-04:30, sun 02:00-03:00'"
_WINDOW = re.compile(r"^(?P<days>[a-z]+(?:-[a-z]+)?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$")
_DAY = timedelta(days=1)
_DAY_MINUTES = 24 * 60
_FARTHEST = timedelta(days=8)  # windows chained end to end (daily 00:00-24:00) are followed this far


@dataclass(frozen=True, slots=True)
class Window:
    """One window: on `days` (0 = Monday) from `start`, for `length` of real time (at most 24 h)."""

    days: frozenset[int]
    start: time
    length: timedelta


def parse_windows(spec: str) -> tuple[Window, ...]:
    """The windows of `spec`; ValueError says what is wrong in words the variable's name can precede."""
    text = spec.strip().lower()
    if text == NONE:
        return ()
    windows = []
    for part in text.split(","):
        entry = " ".join(part.split())
        if not entry:
            raise ValueError(f"an empty window between commas; write windows as <days> HH:MM-HH:MM, {EXAMPLE}")
        match = _WINDOW.match(entry)
        if match is None:
            raise ValueError(f"{entry!r} is not a window; write <days> HH:MM-HH:MM, {EXAMPLE}")
        start, end = _minutes(match["start"], entry, end=False), _minutes(match["end"], entry, end=True)
        length = (end - start) % _DAY_MINUTES or (_DAY_MINUTES if (start, end) == (0, _DAY_MINUTES) else 0)
        if not length:
            raise ValueError(f"{entry!r} is empty: its start and end are the same")
        windows.append(Window(_days(match["days"], entry), time(start // 60, start % 60), timedelta(minutes=length)))
    return tuple(windows)


def _days(text: str, entry: str) -> frozenset[int]:
    if text == "daily":
        return frozenset(range(7))
    first, _, last = text.partition("-")
    for name in (first, last or first):
        if name not in DAYS:
            raise ValueError(f"unknown day {name!r} in {entry!r}; use daily, {', '.join(DAYS)} or a range like mon-fri")
    a, b = DAYS.index(first), DAYS.index(last or first)
    return frozenset((a + i) % 7 for i in range((b - a) % 7 + 1))


def _minutes(text: str, entry: str, *, end: bool) -> int:
    hours, minutes = (int(n) for n in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise ValueError(f"{text!r} in {entry!r} is not a time of day (00:00 to 23:59; 24:00 as an end)")
    return hours * 60 + minutes


def zone(name: str) -> tzinfo:
    """The time zone of PORACLE_TIMEZONE (an IANA name); ValueError when unknown."""
    if name.strip().upper() == "UTC":
        return UTC  # needs no time zone database
    try:
        return zoneinfo.ZoneInfo(name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        if not zoneinfo.available_timezones():
            raise ValueError(
                f"cannot look up {name!r}: no time zone database here; install the system's tzdata package "
                "(or `pip install tzdata`)"
            ) from None
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC") from None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A server's windows in its time zone."""

    windows: tuple[Window, ...]
    tz: tzinfo

    def until(self, at: datetime) -> datetime | None:
        """When the maintenance under way at `at` ends (windows that overlap or touch count as one), or
        None outside every window. `at` is timezone-aware; the answer is in UTC."""
        at = at.astimezone(UTC)  # compared in UTC: comparisons across zones mistrust times in a repeated hour
        end = self._end(at)
        if end is None:
            return None
        while end - at < _FARTHEST and (later := self._end(end)) is not None and later > end:
            end = later
        return end

    def _end(self, at: datetime) -> datetime | None:
        """The latest end of the windows that contain `at` (start <= at < end)."""
        return max((end for start, end in self._near(at) if start <= at < end), default=None)

    def _near(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Every window starting on the local day of `at` or the two before it (a window of at most 24 h of
        real time that started earlier cannot contain `at`, even across a 23-hour day)."""
        today = at.astimezone(self.tz).date()
        for back in (2, 1, 0):
            day = today - back * _DAY
            for window in self.windows:
                if day.weekday() in window.days:
                    start = datetime.combine(day, window.start, tzinfo=self.tz).astimezone(UTC)
                    yield start, start + window.length


def schedule(spec: str | None, tz_name: str, fallback: str | None = None) -> Schedule:
    """A server's schedule: its own spec, else the fallback (PORACLE_MAINTENANCE), else no windows."""
    chosen = spec if spec is not None else fallback
    return Schedule(parse_windows(chosen) if chosen is not None else (), zone(tz_name))


def in_maintenance(schedules: Sequence[tuple[str, Schedule]], at: datetime) -> dict[str, datetime]:
    """The servers inside a window at `at`, with when it ends."""
    ends = {name: schedule.until(at) for name, schedule in schedules}
    return {name: end for name, end in ends.items() if end is not None}
