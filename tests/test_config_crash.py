"""PORACLE_CRASH_RESTARTS and PORACLE_CRASH_WINDOW: defaults, bad values as errors naming the variable, and a
window no two rounds fall in as a warning (only errored and stopped processes could then be seen)."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, access_warnings, load_settings

SERVER = {"PORACLE_SERVER_1_HOST": "192.0.2.10", "PORACLE_SERVER_1_API": "http://192.0.2.10:3030"}
GATE = SERVER | {"PORACLE_SERVER_1_ACCESS": "gate"}


def test_three_restarts_within_ten_minutes_by_default() -> None:
    settings = load_settings(SERVER)
    assert (settings.crash_restarts, settings.crash_window) == (3, 10)
    shown = dict(settings.variables())
    assert (shown["PORACLE_CRASH_RESTARTS"], shown["PORACLE_CRASH_WINDOW"]) == ("3", "10")
    custom = load_settings(SERVER | {"PORACLE_CRASH_RESTARTS": "5", "PORACLE_CRASH_WINDOW": "30"})
    assert (custom.crash_restarts, custom.crash_window) == (5, 30)


NOT_AN_INTEGER = "must be an integer (digits 0-9 only)"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("PORACLE_CRASH_RESTARTS", "0", "must be from 1 to 100"),
        ("PORACLE_CRASH_RESTARTS", "many", NOT_AN_INTEGER),
        ("PORACLE_CRASH_WINDOW", "0", "must be from 1 to 1440 minutes"),
        ("PORACLE_CRASH_WINDOW", "1441", "must be from 1 to 1440 minutes"),
        ("PORACLE_CRASH_WINDOW", "2.5", NOT_AN_INTEGER),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(variable: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(GATE | {variable: value})
    assert caught.value.problems == [f"{variable}: {problem} (got {value!r})"]


def test_a_window_shorter_than_a_round_is_a_warning_for_gate_servers_only() -> None:
    slow = {"PORACLE_HEALTH_INTERVAL": "900"}
    assert access_warnings(load_settings(GATE | slow)) == [
        "PORACLE_CRASH_WINDOW: 10 min is shorter than PORACLE_HEALTH_INTERVAL (900 s), so no crash loop can be "
        "seen (only errored and stopped processes); make it at least 15"
    ]
    assert access_warnings(load_settings(SERVER | slow)) == []  # command mode: no process lists at all
    assert access_warnings(load_settings(GATE | slow | {"PORACLE_CRASH_WINDOW": "15"})) == []
