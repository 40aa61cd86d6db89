"""/poracle restart by access mode, through the Discord double: with ACCESS=gate the prompt names the gate's
request and the answer what the gate restarted (a REAL gate and pm2, tests/support/gate.py); with
ACCESS=command the server is sent its RESTART_CMD and nothing else (a forced command records every session)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.discord_double import DiscordDouble
from tests.support.gate import SECRETS, Recorder, World, bot_env
from tests.support.local_http import HttpServer
from tests.support.sshd import SshServer
from tests.support.world import confirmed_restart, discord_env, running_bot, server_env, ssh_env

pytestmark = pytest.mark.usefixtures("token_stays_out_of_the_log")


async def test_a_gate_restart_shows_the_request_and_what_the_gate_restarted(
    discord_double: DiscordDouble, world: World, tmp_path: Path
) -> None:
    env = discord_env(discord_double, tmp_path / "data") | bot_env(world.server, tmp_path, world.api)
    before = world.running()
    async with running_bot(discord_double, env, monitor=False):
        final, _ = await confirmed_restart(discord_double)
    after = world.running()
    (asked,) = final.versions[0].embeds  # the prompt, before the answer replaced it
    assert asked["fields"][0]["value"].endswith("```\nporacle-gate 1 restart all\n```")
    assert final.title == "Main: restarted"
    value = final.fields["Main"]
    assert value.startswith("**restarted** · exit code 0 · ")
    for app in (world.alpha, world.beta):
        pids = f"pid {before[world.key(app)]} → {after[world.key(app)]}"
        assert f"{app.name} (id {world.pm_ids[app.name]}): {pids}, online" in value
        assert after[world.key(app)] != before[world.key(app)]
    shown = json.dumps([(v.content, v.embeds) for message in discord_double.messages for v in message.versions])
    assert [secret for secret in SECRETS if secret in shown] == []


async def test_in_command_mode_the_server_is_sent_its_restart_cmd_and_nothing_else(
    discord_double: DiscordDouble,
    recording_sshd: tuple[SshServer, Recorder],
    api: HttpServer,
    tmp_path: Path,
) -> None:
    server, recorder = recording_sshd
    env = discord_env(discord_double, tmp_path / "data") | ssh_env(server, tmp_path / "known_hosts")
    env |= server_env(1, "Main", api.url, server, "echo restarted by discord")
    async with running_bot(discord_double, env):  # its monitor round too
        final, _ = await confirmed_restart(discord_double)
    assert final.title == "Main: restarted"
    assert final.fields["Main"].endswith("```\nrestarted by discord\n```")
    assert recorder.commands() == ["echo restarted by discord"]
