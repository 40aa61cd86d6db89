"""`poracle-bot processes NAME` and `poracle-bot logs NAME PROCESS [--lines N]`, run as an operator does, against
a REAL sshd whose key forces the REAL gate in front of a REAL pm2 (tests/support/gate.py). Nothing secret
in their output or their log; bad input is refused with a clear error and nothing sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Run, cli, write_env
from tests.support.gate import SECRETS, GateHost, Recorder, bot_env
from tests.support.local_http import HttpServer
from tests.support.sshd import SshServer


def assert_nothing_secret(run: Run, host: GateHost) -> None:
    assert [s for s in SECRETS if s in run.out + run.err] == []
    host.check_secrets("")


async def test_processes_prints_a_table_and_says_one_is_not_online(gate_host: GateHost, tmp_path: Path) -> None:
    write_env(tmp_path, **bot_env(gate_host.server, tmp_path, gate_host.api))
    run = await cli(tmp_path, "--verbose", "processes", "main")  # any case, as everywhere
    assert run.code == 1, run  # broken is errored
    first, header, *rows = run.out.splitlines()
    assert first.startswith("Main: ") and "broken errored" in first
    assert header.split() == ["NAME", "ID", "STATUS", "PID", "UPTIME", "RESTARTS", "MEMORY", "CPU"]
    table = {row.split()[0]: row.split() for row in rows}
    assert set(table) == {"poracle", "helper", "looper", "broken"}
    assert table["poracle"][2:4] == ["online", str(gate_host.running()["poracle"])]
    assert table["broken"][2] == "errored"
    assert_nothing_secret(run, gate_host)


async def test_logs_prints_the_redacted_tail(gate_host: GateHost, tmp_path: Path) -> None:
    write_env(tmp_path, **bot_env(gate_host.server, tmp_path, gate_host.api))
    run = await cli(tmp_path, "--verbose", "logs", "Main", "poracle", "--lines", "200")
    assert run.code == 0, run
    assert "DISCORD_TOKEN=[REDACTED] db password [REDACTED]" in run.out.splitlines()
    assert "request headers: x-poracle-secret: [REDACTED]" in run.out.splitlines()
    assert f"poracle (id {gate_host.pm_ids['poracle']}) on Main: the last 200 lines, redacted" in run.err
    default = await cli(tmp_path, "logs", "Main", str(gate_host.pm_ids["helper"]))  # an id; 50 lines
    assert default.code == 0 and default.out.count("helper warming up") == 50
    assert_nothing_secret(run, gate_host)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("logs", "Main", "poracle", "--lines", "0"), 2, "--lines: must be a whole number from 1 to 200, not '0'"),
        (("logs", "Main", "poracle", "--lines", "201"), 2, "--lines: must be a whole number from 1 to 200, not '201'"),
        (("logs", "Main", "a;b"), 2, "poracle-bot: not a pm2 process name the gate accepts: 'a;b'"),
        (("logs", "Main", "all"), 2, "poracle-bot: 'all' names no single pm2 process"),
        (("processes", "Nope"), 1, "poracle-bot: no server called 'Nope'; known: Main"),
        (("processes",), 2, "the following arguments are required: NAME"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_sent(
    gate_host: GateHost, tmp_path: Path, args: tuple[str, ...], code: int, words: str
) -> None:
    write_env(tmp_path, **bot_env(gate_host.server, tmp_path, gate_host.api))
    gate_log = gate_host.log_text()
    run = await cli(tmp_path, *args)
    assert (run.code, run.out) == (code, ""), run
    assert words in run.err
    assert gate_host.log_text() == gate_log


async def test_a_server_in_command_mode_is_sent_nothing(
    recording_sshd: tuple[SshServer, Recorder], api: HttpServer, tmp_path: Path
) -> None:
    server, recorder = recording_sshd
    write_env(tmp_path, **bot_env(server, tmp_path, api.url, PORACLE_SERVER_1_ACCESS="command"))
    for args in (("processes", "Main"), ("logs", "Main", "poracle")):
        run = await cli(tmp_path, *args)
        assert (run.code, run.out) == (2, ""), run
        assert "poracle-bot: Main: this needs PORACLE_SERVER_1_ACCESS=gate (`poracle-bot gate` shows how)" in run.err
    assert recorder.commands() == []
