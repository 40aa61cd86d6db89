"""Maintenance windows, the pure rules: parsing a spec (every mistake in words), and "is this moment inside a
window, and until when" in a real time zone, across midnight and the days the clocks change."""

from __future__ import annotations

import importlib.util
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest

from bot.core.maintenance import Schedule, Window, in_maintenance, parse_windows, schedule, zone

BERLIN = "Europe/Berlin"  # CET/CEST: clocks forward 2026-03-29 02:00, back 2026-10-25 03:00
EVERY_DAY = frozenset(range(7))


def local(text: str, tz: str = BERLIN, fold: int = 0) -> datetime:
    """A wall-clock time in `tz` ("2026-03-29 03:30"; `fold` 1: the second of a repeated hour), in UTC (aware
    datetimes of two zones never compare equal in a repeated hour)."""
    return datetime.fromisoformat(text).replace(tzinfo=zoneinfo.ZoneInfo(tz), fold=fold).astimezone(UTC)


def windows(spec: str, tz: str = BERLIN) -> Schedule:
    return schedule(spec, tz)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("daily 04:00-04:30", [Window(EVERY_DAY, time(4), timedelta(minutes=30))]),
        ("Sun 2:00 - 3:00", [Window(frozenset({6}), time(2), timedelta(hours=1))]),
        ("mon-fri 22:00-06:00", [Window(frozenset(range(5)), time(22), timedelta(hours=8))]),
        ("fri-mon 01:00-01:01", [Window(frozenset({4, 5, 6, 0}), time(1), timedelta(minutes=1))]),
        ("sat 12:00-24:00", [Window(frozenset({5}), time(12), timedelta(hours=12))]),
        ("wed 00:00-24:00", [Window(frozenset({2}), time(0), timedelta(hours=24))]),
        (
            "daily 04:00-04:30,  sun 02:00-03:00",
            [Window(EVERY_DAY, time(4), timedelta(minutes=30)), Window(frozenset({6}), time(2), timedelta(hours=1))],
        ),
        ("none", []),
    ],
)
def test_specs_parse_into_windows(spec: str, expected: list[Window]) -> None:
    assert list(parse_windows(spec)) == expected


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("sonday 02:00-03:00", "unknown day 'sonday' in 'sonday 02:00-03:00'; use daily, mon, tue,"),
        ("mon-fry 02:00-03:00", "unknown day 'fry'"),
        ("daily 4-5", "'daily 4-5' is not a window; write <days> HH:MM-HH:MM, e.g. 'daily 04:00-04:30"),
        ("04:00-04:30", "'04:00-04:30' is not a window"),
        ("daily 25:00-26:00", "'25:00' in 'daily 25:00-26:00' is not a time of day (00:00 to 23:59; 24:00 as an end)"),
        ("daily 04:60-05:00", "'04:60' in 'daily 04:60-05:00' is not a time of day"),
        ("daily 24:00-01:00", "'24:00' in 'daily 24:00-01:00' is not a time of day"),
        ("daily 04:00-04:00", "'daily 04:00-04:00' is empty: its start and end are the same"),
        ("daily 04:00-04:30,", "an empty window between commas"),
        ("", "an empty window between commas"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(spec: str, words: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_windows(spec)
    assert words in str(raised.value)


def test_inside_and_outside_a_window_start_counts_end_does_not() -> None:
    daily = windows("daily 04:00-04:30")
    assert daily.until(local("2026-03-02 03:59:59")) is None
    assert daily.until(local("2026-03-02 04:00")) == local("2026-03-02 04:30")
    assert daily.until(local("2026-03-02 04:29:59")) == local("2026-03-02 04:30")
    assert daily.until(local("2026-03-02 04:30")) is None
    assert windows("none").until(local("2026-03-02 04:10")) is None


def test_a_window_only_on_its_days() -> None:
    sunday = windows("sun 02:00-03:00")
    assert sunday.until(local("2026-03-01 02:30")) == local("2026-03-01 03:00")  # a Sunday
    assert sunday.until(local("2026-03-02 02:30")) is None  # Monday


def test_a_window_crossing_midnight_belongs_to_the_day_it_starts() -> None:
    saturday_night = windows("sat 23:00-01:00")
    assert saturday_night.until(local("2026-03-07 23:30")) == local("2026-03-08 01:00")  # Saturday evening
    assert saturday_night.until(local("2026-03-08 00:30")) == local("2026-03-08 01:00")  # Sunday, after midnight
    assert saturday_night.until(local("2026-03-07 00:30")) is None  # Saturday after Friday's midnight: no


def test_windows_that_overlap_or_touch_are_one() -> None:
    chained = windows("daily 23:30-00:30, daily 00:30-01:00, mon 00:45-02:00")
    assert chained.until(local("2026-03-01 23:45")) == local("2026-03-02 02:00")  # Sunday night into Monday
    assert chained.until(local("2026-03-02 23:45")) == local("2026-03-03 01:00")  # Monday night: no Tuesday one
    always = windows("daily 00:00-24:00")
    at = local("2026-03-02 12:00")
    end = always.until(at)
    assert end is not None and end - at >= timedelta(days=7)  # followed a week ahead, not forever


def test_times_are_in_the_time_zone() -> None:
    at = datetime(2026, 3, 2, 3, 10, tzinfo=UTC)  # 04:10 in Berlin (CET, UTC+1)
    assert windows("daily 04:00-04:30").until(at) == datetime(2026, 3, 2, 3, 30, tzinfo=UTC)
    assert windows("daily 04:00-04:30", "UTC").until(at) is None
    assert windows("daily 03:00-03:30", "UTC").until(at) == datetime(2026, 3, 2, 3, 30, tzinfo=UTC)


def test_spring_forward_a_start_the_clocks_skip_is_read_with_the_offset_before_and_lasts_as_long() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:00-03:00 never shows on the clock.
    sunday = windows("sun 02:00-03:00")
    assert sunday.until(local("2026-03-29 01:59")) is None
    assert sunday.until(local("2026-03-29 03:00")) == local("2026-03-29 04:00")  # an hour, not nothing
    assert sunday.until(local("2026-03-29 03:59")) == local("2026-03-29 04:00")
    assert sunday.until(local("2026-03-29 04:00")) is None
    half_past = windows("sun 02:30-03:30")  # 02:30 read as CET = 03:30 CEST, then an hour
    assert half_past.until(local("2026-03-29 03:15")) is None
    assert half_past.until(local("2026-03-29 03:30")) == local("2026-03-29 04:30")
    across = windows("sun 01:30-02:30")  # starts before the jump, ends in the gap: still one hour of real time
    assert across.until(local("2026-03-29 03:10")) == local("2026-03-29 03:30")
    spanning = windows("sun 01:00-04:00")  # three hours of real time, not until 04:00 on the clock
    assert spanning.until(local("2026-03-29 04:30")) == local("2026-03-29 05:00")


def test_fall_back_a_start_in_the_repeated_hour_is_its_first_occurrence_and_lasts_as_long() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:00-03:00 shows twice.
    sunday = windows("sun 02:00-03:00")
    first_two = local("2026-10-25 02:00", fold=0)  # CEST, 00:00 UTC
    second_two = local("2026-10-25 02:00", fold=1)  # CET, 01:00 UTC
    assert first_two + timedelta(hours=1) == second_two == datetime(2026, 10, 25, 1, tzinfo=UTC)
    assert sunday.until(local("2026-10-25 01:59")) is None
    assert sunday.until(first_two) == second_two  # one hour of real time
    assert sunday.until(local("2026-10-25 02:30", fold=0)) == second_two
    assert sunday.until(second_two) is None  # the second 02:00 starts nothing
    assert sunday.until(local("2026-10-25 02:30", fold=1)) is None


def test_a_daily_window_keeps_its_wall_clock_start_on_both_sides_of_a_change() -> None:
    daily = windows("daily 04:00-04:30")
    for day in ("2026-03-28", "2026-03-29", "2026-03-30", "2026-10-24", "2026-10-25", "2026-10-26"):
        assert daily.until(local(f"{day} 04:10")) == local(f"{day} 04:30"), day


def test_a_servers_own_spec_overrides_the_fallback_and_none_opts_out() -> None:
    at = local("2026-03-02 04:10")
    fallback = "daily 04:00-04:30"
    assert schedule(None, BERLIN, fallback).until(at) == local("2026-03-02 04:30")
    assert schedule("none", BERLIN, fallback).until(at) is None
    assert schedule("daily 04:05-05:00", BERLIN, fallback).until(at) == local("2026-03-02 05:00")
    assert schedule(None, BERLIN).until(at) is None
    servers = [("Main", schedule(None, BERLIN, fallback)), ("Other", schedule("none", BERLIN, fallback))]
    assert in_maintenance(servers, at) == {"Main": local("2026-03-02 04:30")}


def test_time_zones_by_iana_name() -> None:
    assert zone("UTC") is UTC and zone("utc") is UTC
    assert zone(BERLIN) == zoneinfo.ZoneInfo(BERLIN)
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Berln'; use an IANA name such as Europe/Berlin"):
        zone("Europe/Berln")
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("../../etc/passwd")


@pytest.fixture
def no_tz_database() -> Iterator[None]:
    """As in an image without the system's tzdata: no zone files."""
    if importlib.util.find_spec("tzdata") is not None:
        pytest.skip("the tzdata package is installed: zoneinfo finds the zones there")
    zoneinfo.reset_tzpath(to=[])
    try:
        yield
    finally:
        zoneinfo.reset_tzpath()


def test_without_a_time_zone_database_utc_works_and_a_name_says_what_to_install(no_tz_database: None) -> None:
    assert zone("UTC") is UTC
    with pytest.raises(ValueError, match="no time zone database here; install the system's tzdata package"):
        zone("Pacific/Chatham")  # a zone no other test loads (ZoneInfo caches what it has read)
