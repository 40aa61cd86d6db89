"""The settings of issue 14: PORACLE_SERVER_<N>_AUTO_RESTART, PORACLE_AUTO_RESTART_AFTER and _LIMIT,
PORACLE_HEARTBEAT_URL (a secret: masked, never quoted back) and PORACLE_METRICS_LISTEN (host:port)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, Switch, load_settings
from tests.support.cli import cli, write_env
from tests.support.local_http import HttpServer

SERVER = {"PORACLE_SERVER_1_HOST": "192.0.2.10", "PORACLE_SERVER_1_API": "http://192.0.2.10:3030"}
SECRET = "5f0c1e2a-93b7-4d8e-b1c2-7a6f0e9d4c31"


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(SERVER | env)
    return caught.value.problems


def test_everything_is_off_by_default_and_restarts_wait_5_minutes_3_times_at_most() -> None:
    settings = load_settings(SERVER)
    assert settings.servers[0].auto_restart is Switch.OFF
    assert (settings.auto_restart_after, settings.auto_restart_limit) == (5, 3)
    assert settings.heartbeat_url is None and settings.metrics_address is None
    shown = dict(settings.variables())
    assert shown["PORACLE_SERVER_1_AUTO_RESTART"] == "off"
    assert (shown["PORACLE_HEARTBEAT_URL"], shown["PORACLE_METRICS_LISTEN"]) == ("(unset)", "(unset)")
    custom = load_settings(
        SERVER
        | {
            "PORACLE_SERVER_1_AUTO_RESTART": "on",
            "PORACLE_AUTO_RESTART_AFTER": "1",
            "PORACLE_AUTO_RESTART_LIMIT": "100",
        }
    )
    assert (custom.servers[0].auto_restart, custom.auto_restart_after, custom.auto_restart_limit) == (Switch.ON, 1, 100)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("PORACLE_SERVER_1_AUTO_RESTART", "yes", "Input should be 'on' or 'off'"),
        ("PORACLE_AUTO_RESTART_AFTER", "0", "must be from 1 to 1440 minutes"),
        ("PORACLE_AUTO_RESTART_AFTER", "1441", "must be from 1 to 1440 minutes"),
        ("PORACLE_AUTO_RESTART_AFTER", "2.5", "must be an integer (digits 0-9 only)"),
        ("PORACLE_AUTO_RESTART_LIMIT", "0", "must be from 1 to 100 restarts"),
        ("PORACLE_AUTO_RESTART_LIMIT", "101", "must be from 1 to 100 restarts"),
        ("PORACLE_METRICS_LISTEN", "9464", "must be host:port, e.g. 0.0.0.0:9464, 127.0.0.1:9464 or [::1]:9464"),
        ("PORACLE_METRICS_LISTEN", "0.0.0.0", "must be host:port, e.g. 0.0.0.0:9464, 127.0.0.1:9464 or [::1]:9464"),
        ("PORACLE_METRICS_LISTEN", "::1:9464", "an IPv6 address goes in brackets, e.g. 0.0.0.0:9464"),
        ("PORACLE_METRICS_LISTEN", "[::1]9464", "must be [IPv6 address]:port, e.g. 0.0.0.0:9464"),
        ("PORACLE_METRICS_LISTEN", "[nope]:9464", "'nope' is not an IPv6 address; e.g. 0.0.0.0:9464"),
        ("PORACLE_METRICS_LISTEN", "0.0.0.0:0", "the port must be from 1 to 65535, e.g. 0.0.0.0:9464"),
        ("PORACLE_METRICS_LISTEN", "0.0.0.0:65536", "the port must be from 1 to 65535, e.g. 0.0.0.0:9464"),
        ("PORACLE_METRICS_LISTEN", "0.0.0.0:+80", "the port must be from 1 to 65535, e.g. 0.0.0.0:9464"),
        ("PORACLE_METRICS_LISTEN", "bad_host!:9464", "must be a host name, an IPv4 or an IPv6 address"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(variable: str, value: str, problem: str) -> None:
    (found,) = problems({variable: value})
    assert found.startswith(f"{variable}: {problem}"), found
    assert found.endswith(f"(got {value!r})")


@pytest.mark.parametrize(
    ("listen", "address"),
    [("0.0.0.0:9464", ("0.0.0.0", 9464)), ("[::1]:9464", ("::1", 9464)), ("localhost:1", ("localhost", 1))],
)
def test_metrics_listen_is_a_host_and_port_ipv6_in_brackets(listen: str, address: tuple[str, int]) -> None:
    assert load_settings(SERVER | {"PORACLE_METRICS_LISTEN": listen}).metrics_address == address


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://hc-ping.com/{SECRET}",
        f"hc-ping.com/{SECRET}",
        f"https:///{SECRET}",
        f"https://hc-ping.com:99999/{SECRET}",
        f"https://hc-ping.com:0/{SECRET}",
        f"https://{'a' * 70}.example/{SECRET}",
    ],
)
def test_a_heartbeat_url_that_will_not_do_is_an_error_that_does_not_show_it(url: str) -> None:
    (found,) = problems({"PORACLE_HEARTBEAT_URL": url})
    assert found.startswith("PORACLE_HEARTBEAT_URL: "), found
    assert SECRET not in found and "got" not in found


def test_the_heartbeat_url_is_masked_wherever_the_configuration_is_shown() -> None:
    url = f"https://status.example.org:8443/api/push/{SECRET}?status=up&msg=OK&ping="
    settings = load_settings(SERVER | {"PORACLE_HEARTBEAT_URL": url})
    assert settings.heartbeat_url is not None and settings.heartbeat_url.get_secret_value() == url
    shown = dict(settings.variables())
    assert shown["PORACLE_HEARTBEAT_URL"] == "https://status.example.org:8443/******** (set)"
    assert SECRET not in repr(settings) and SECRET not in str(settings.variables())


async def test_bad_values_stop_the_command_line_at_once_naming_each_and_showing_no_secret(
    tmp_path: Path, api: HttpServer
) -> None:
    write_env(
        tmp_path,
        PORACLE_SERVER_1_HOST="127.0.0.1",
        PORACLE_SERVER_1_API=api.url,
        PORACLE_SERVER_1_AUTO_RESTART="always",
        PORACLE_HEARTBEAT_URL=f"hc-ping.com/{SECRET}",
        PORACLE_METRICS_LISTEN="9464",
    )
    run = await cli(tmp_path, "check")
    assert run.code == 2, run
    assert api.requests == []  # nothing was checked
    for variable in ("PORACLE_SERVER_1_AUTO_RESTART", "PORACLE_HEARTBEAT_URL", "PORACLE_METRICS_LISTEN"):
        assert f"{variable}: " in run.err, run.err
    assert SECRET not in run.out + run.err
