"""ACCESS=command (the default) keeps today's behaviour: a server is sent its RESTART_CMD and nothing else. A
forced command in authorized_keys records every session's command, through the CLI's restart, doctor and
check (Discord's restart flow: tests/discord_bot/test_restarts_access.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import cli, write_env
from tests.support.gate import Recorder, bot_env
from tests.support.local_http import HttpServer
from tests.support.sshd import SshServer


async def test_restart_doctor_and_check_send_only_the_restart_cmd(
    recording_sshd: tuple[SshServer, Recorder], api: HttpServer, tmp_path: Path
) -> None:
    server, recorder = recording_sshd
    env = bot_env(server, tmp_path, api.url, PORACLE_SERVER_1_RESTART_CMD="echo restarted by the cli")
    del env["PORACLE_SERVER_1_ACCESS"]  # the default
    write_env(tmp_path, **env)

    restarted = await cli(tmp_path, "restart", "Main", "--yes")
    assert restarted.code == 0, restarted
    assert "  | restarted by the cli" in restarted.out.splitlines()
    checked = await cli(tmp_path, "doctor")
    assert checked.code == 0, checked
    assert "[NOTE] Main: PORACLE_SERVER_1_ACCESS=command" in checked.out
    assert (await cli(tmp_path, "check")).code == 0
    assert recorder.commands() == ["echo restarted by the cli"]
    assert server.log().count("Accepted publickey") == 2  # doctor did log in: it opened no session
