"""PORACLE_SERVER_<N>_ACCESS: `command` (the default) or `gate`; any other value is an error naming the
variable, and a RESTART_CMD that gate mode ignores is a warning."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bot.config import Access, ConfigError, access_warnings, load_settings
from tests.support.cli import cli, write_env
from tests.support.gate import bot_env
from tests.support.local_http import HttpServer
from tests.support.sshd import SshServer

SERVER = {"PORACLE_SERVER_1_HOST": "192.0.2.10", "PORACLE_SERVER_1_API": "http://192.0.2.10:3030"}


def test_command_is_the_default_and_gate_the_other_choice() -> None:
    assert load_settings(SERVER).servers[0].access is Access.COMMAND
    gate = load_settings(SERVER | {"PORACLE_SERVER_1_ACCESS": "gate"})
    assert gate.servers[0].access is Access.GATE
    assert ("PORACLE_SERVER_1_ACCESS", "gate") in gate.variables()


@pytest.mark.parametrize("value", ["Gate", "shell", "gate,command"])
def test_another_value_is_an_error_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(SERVER | {"PORACLE_SERVER_1_ACCESS": value, "PORACLE_SERVER_2_HOST": "192.0.2.11"})
    assert caught.value.problems == [
        f"PORACLE_SERVER_1_ACCESS: Input should be 'command' or 'gate' (got {value!r})",
        "PORACLE_SERVER_2_API: required",
    ]


@pytest.mark.parametrize(
    ("variables", "warned"),
    [
        ({"PORACLE_SERVER_1_ACCESS": "gate", "PORACLE_SERVER_1_RESTART_CMD": "pm2 restart all"}, True),
        ({"PORACLE_SERVER_1_ACCESS": "gate"}, False),
        ({"PORACLE_SERVER_1_RESTART_CMD": "pm2 restart all"}, False),
    ],
)
def test_a_restart_cmd_gate_mode_ignores_is_a_warning(variables: dict[str, str], warned: bool) -> None:
    expected = [
        "PORACLE_SERVER_1_RESTART_CMD: ignored, PORACLE_SERVER_1_ACCESS is gate (the bot sends that server only "
        "poracle-gate's verbs; a restart restarts all its pm2 processes); remove it"
    ]
    assert access_warnings(load_settings(SERVER | variables)) == (expected if warned else [])


async def test_the_cli_logs_the_warning_and_goes_on(tmp_path: Path) -> None:
    write_env(tmp_path, **SERVER, PORACLE_SERVER_1_ACCESS="gate", PORACLE_SERVER_1_RESTART_CMD="pm2 restart all")
    run = await cli(tmp_path, "config")
    assert run.code == 0, run
    assert "WARNING" in run.err and "PORACLE_SERVER_1_RESTART_CMD: ignored" in run.err
    assert "PORACLE_SERVER_1_ACCESS=gate" in run.out.splitlines()


async def test_a_bad_value_runs_nothing(sshd: SshServer, api: HttpServer, tmp_path: Path) -> None:
    marker = sshd.workdir / f"ran-{uuid.uuid4().hex}"
    env = bot_env(
        sshd, tmp_path, api.url, PORACLE_SERVER_1_ACCESS="gates", PORACLE_SERVER_1_RESTART_CMD=f"touch {marker}"
    )
    write_env(tmp_path, **env)
    run = await cli(tmp_path, "restart", "Main", "--yes")
    assert run.code == 2, run
    assert "PORACLE_SERVER_1_ACCESS: Input should be 'command' or 'gate' (got 'gates')" in run.err
    assert not marker.exists()
    assert api.requests == []
