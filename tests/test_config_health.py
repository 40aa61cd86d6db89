"""PORACLE_SERVER_<N>_METRICS (on|off), PORACLE_QUEUE_LIMIT and PORACLE_WEBHOOK_SILENCE: defaults, and every
bad value an error naming its variable, before any server is asked anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, Switch, load_settings
from tests.support.cli import cli, write_env
from tests.support.poracle_http import PoracleNgLike, poracle_ng

SERVER = {"PORACLE_SERVER_1_HOST": "192.0.2.10", "PORACLE_SERVER_1_API": "http://192.0.2.10:3030"}


def test_metrics_are_off_by_default_and_on_reads_the_apis_metrics() -> None:
    settings = load_settings(SERVER)
    (server,) = settings.servers
    assert (server.metrics, server.metrics_url) == (Switch.OFF, None)
    assert (settings.queue_limit, settings.webhook_silence) == (180, 10)
    (on,) = load_settings(SERVER | {"PORACLE_SERVER_1_METRICS": "on"}).servers
    assert on.metrics_url == "http://192.0.2.10:3030/metrics"
    variables = dict(load_settings(SERVER).variables())
    assert (variables["PORACLE_SERVER_1_METRICS"], variables["PORACLE_QUEUE_LIMIT"]) == ("off", "180")
    assert variables["PORACLE_WEBHOOK_SILENCE"] == "10"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("PORACLE_SERVER_1_METRICS", "yes", "Input should be 'on' or 'off' (got 'yes')"),
        ("PORACLE_SERVER_1_METRICS", "ON", "Input should be 'on' or 'off' (got 'ON')"),
        ("PORACLE_QUEUE_LIMIT", "0", "must be from 1 to 1000000 jobs (got '0')"),
        ("PORACLE_QUEUE_LIMIT", "lots", "must be an integer (digits 0-9 only) (got 'lots')"),
        ("PORACLE_WEBHOOK_SILENCE", "-5", "must be from 1 to 10080 minutes (got '-5')"),
        ("PORACLE_WEBHOOK_SILENCE", "1.5", "must be an integer (digits 0-9 only) (got '1.5')"),
    ],
)
def test_a_bad_value_is_an_error_naming_its_variable(variable: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(SERVER | {variable: value})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{variable}: {words}"), problem


async def test_check_with_a_bad_metrics_setting_exits_2_and_asks_no_server(tmp_path: Path) -> None:
    fake = PoracleNgLike()
    async with poracle_ng(fake) as http:
        server = {"PORACLE_SERVER_1_HOST": "127.0.0.1", "PORACLE_SERVER_1_API": http.url}
        write_env(tmp_path, **server, PORACLE_SERVER_1_METRICS="true", PORACLE_QUEUE_LIMIT="none")
        bad = await cli(tmp_path, "check")
        assert http.requests == []
        write_env(tmp_path, **server, PORACLE_SERVER_1_METRICS="on")  # the control: now it is asked
        good = await cli(tmp_path, "check")
    assert bad.code == 2, bad
    assert "PORACLE_SERVER_1_METRICS: Input should be 'on' or 'off' (got 'true')" in bad.err
    assert "PORACLE_QUEUE_LIMIT: must be an integer (digits 0-9 only)" in bad.err
    assert good.code == 0, good
    assert sorted(http.requests) == ["/health", "/metrics"]
