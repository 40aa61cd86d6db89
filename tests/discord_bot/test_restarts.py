"""/poracle restart end to end: the Discord double, a real OpenSSH sshd and real aiohttp health servers,
all on 127.0.0.1. Every outcome a restart can have, as the admin and the alert channel see it."""

from __future__ import annotations

import asyncio
import getpass
import logging
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import running_cli, write_env
from tests.support.discord_double import DiscordDouble, Message
from tests.support.fixtures import SlowRestart, lines
from tests.support.local_http import HttpServer
from tests.support.sshd import SshdFactory, SshServer, free_port, remote_processes, trust, wait_remote_processes_gone
from tests.support.world import (
    RESTART_TIMEOUT,
    confirmed_restart,
    discord_env,
    is_result,
    running_bot,
    server_env,
    ssh_env,
)

pytestmark = pytest.mark.usefixtures("token_stays_out_of_the_log")


def main_env(
    discord: DiscordDouble, sshd: SshServer, tmp_path: Path, api: HttpServer, command: str, **extra: str
) -> dict[str, str]:
    """One server, Main, restarted with `command`; `extra` overrides any variable."""
    env = discord_env(discord, tmp_path / "data") | ssh_env(sshd, tmp_path / "known_hosts")
    return env | server_env(1, "Main", api.url, sshd, command) | extra


def field(message: Message, name: str) -> str:
    (embed,) = message.embeds
    values: list[str] = [f["value"] for f in embed.get("fields", []) if f["name"] == name]
    assert len(values) == 1, f"no single field {name!r} in {embed}"
    return values[0]


async def announcement(discord: DiscordDouble) -> Message:
    return await discord.wait_for_message(lambda m: "restarted by" in m.content, channel_id=discord.channel_id)


async def test_a_second_restart_of_a_running_one_is_refused_at_once(
    discord_double: DiscordDouble, sshd: SshServer, api: HttpServer, slow_restart: SlowRestart, tmp_path: Path
) -> None:
    env = main_env(discord_double, sshd, tmp_path, api, slow_restart.command)
    async with running_bot(discord_double, env):
        alice, bob = discord_double.admins
        record = await discord_double.slash(alice, "poracle", "restart", server="Main")
        await discord_double.click(alice, await record.wait_original(), "Confirm")
        await slow_restart.started()  # the command runs now, until released

        second = await discord_double.slash(bob, "poracle", "restart", server="Main")
        refusal = await second.wait_original()
        still_running = not is_result(discord_double.message(record.original_message_id or 0))
        slow_restart.release()

        final = await record.wait_original(is_result, timeout=RESTART_TIMEOUT)
        await announcement(discord_double)
    assert refusal.ephemeral
    assert refusal.content.startswith(
        f"**Main** is already restarting (a restart of this server is already running, started by {alice.name} "
        f"({alice.id}) in Discord at "
    )
    assert refusal.content.endswith(" UTC); wait for that to finish.")
    assert refusal.buttons == []  # no prompt: nothing bob could confirm
    assert still_running, "the refusal waited for the running restart"
    assert final.embeds[0]["title"] == "Main: restarted"
    assert slow_restart.runs == 1


async def test_a_restart_the_command_line_is_running_is_refused_at_once_naming_it(
    discord_double: DiscordDouble, sshd: SshServer, api: HttpServer, slow_restart: SlowRestart, tmp_path: Path
) -> None:
    env = main_env(discord_double, sshd, tmp_path, api, slow_restart.command)
    write_env(tmp_path, **env)  # the command line reads the bot's configuration: the same data directory
    async with running_cli(tmp_path, "restart", "Main", "--yes") as command_line:
        await slow_restart.started()
        async with running_bot(discord_double, env):
            record = await discord_double.slash(discord_double.admins[0], "poracle", "restart", server="Main")
            refusal = await record.wait_original()
        slow_restart.release()
        assert await command_line.wait() == 0
    holder = f"{getpass.getuser()} on the command line (pid {command_line.pid})"
    assert refusal.ephemeral and refusal.buttons == []
    assert refusal.content.startswith(
        f"**Main** is already restarting (a restart of this server is already running, started by {holder} at "
    )
    assert slow_restart.runs == 1


async def test_a_restart_that_takes_too_long_is_stopped_and_says_so(
    discord_double: DiscordDouble, sshd: SshServer, api: HttpServer, tmp_path: Path
) -> None:
    tag = f"slow-{uuid.uuid4().hex}"
    command = f"echo started {tag}; sleep 30; echo finished {tag}"
    env = main_env(discord_double, sshd, tmp_path, api, command, PORACLE_SSH_TIMEOUT="1")
    async with running_bot(discord_double, env):
        alice = discord_double.admins[0]
        record = await discord_double.slash(alice, "poracle", "restart", server="Main")
        await discord_double.click(alice, await record.wait_original(), "Confirm")
        deadline = time.monotonic() + 10
        while not remote_processes(tag):  # proves the check below can see the command
            assert time.monotonic() < deadline, "the remote command never started"
            await asyncio.sleep(0.02)
        final = await record.wait_original(is_result, timeout=RESTART_TIMEOUT)
        line = await announcement(discord_double)
    assert final.embeds[0]["title"] == "Main: timed out"
    value = field(final, "Main")
    assert "**timed out** · no result within 1 s; the command was stopped" in value
    assert f"```\nstarted {tag}\n```" in value  # the output so far is kept
    assert "finished" not in value
    assert await asyncio.to_thread(wait_remote_processes_gone, tag) == []
    assert line.content == f"**Main** restarted by <@{alice.id}>: timed out"


@pytest.mark.parametrize("problem", ["refused", "rejected"])
async def test_ssh_failures_say_why(
    discord_double: DiscordDouble,
    sshd: SshServer,
    api: HttpServer,
    marker: Path,
    wrong_client_key: Path,
    tmp_path: Path,
    problem: str,
) -> None:
    extra = (
        {"PORACLE_SERVER_1_SSH_PORT": str(free_port())}
        if problem == "refused"
        else {"PORACLE_SSH_KEY_PATH": str(wrong_client_key)}
    )
    env = main_env(discord_double, sshd, tmp_path, api, f"echo ran >> {marker}", **extra)
    async with running_bot(discord_double, env):
        final, _ = await confirmed_restart(discord_double)
        line = await announcement(discord_double)
    assert final.embeds[0]["title"] == "Main: failed"
    value = field(final, "Main")
    assert value.startswith("**failed** · ")
    if problem == "refused":
        assert "SSH connection refused on port" in value
    else:
        assert f"SSH key rejected by {sshd.user}@127.0.0.1" in value
    assert not marker.exists()
    assert line.content == f"**Main** restarted by <@{discord_double.admins[0].id}>: failed"


async def test_a_failing_command_shows_its_exit_code_and_output(
    discord_double: DiscordDouble, sshd: SshServer, api: HttpServer, tmp_path: Path
) -> None:
    env = main_env(discord_double, sshd, tmp_path, api, "echo boom; exit 3")
    async with running_bot(discord_double, env):
        final, _ = await confirmed_restart(discord_double)
        line = await announcement(discord_double)
    assert final.embeds[0]["title"] == "Main: failed"
    assert final.embeds[0]["color"] == 0xE74C3C  # red
    value = field(final, "Main")
    assert value.startswith("**failed** · exit code 3 · ")
    assert value.endswith("\n```\nboom\n```")
    assert line.content == f"**Main** restarted by <@{discord_double.admins[0].id}>: failed"


async def test_restart_all_asks_once_and_restarts_every_server_at_the_same_time(
    discord_double: DiscordDouble,
    sshd: SshServer,
    sshd_factory: SshdFactory,
    api: HttpServer,
    marker: Path,
    tmp_path: Path,
) -> None:
    names = ["Alpha", "Beta", "Gamma"]
    targets = [sshd, *(sshd_factory(client_key=sshd.client_key) for _ in names[1:])]  # one SSH target each
    env = discord_env(discord_double, tmp_path / "data") | ssh_env(sshd, tmp_path / "known_hosts")
    trust(tmp_path / "known_hosts", *targets)
    for number, (name, target) in enumerate(zip(names, targets, strict=True), 1):
        command = f"echo {name}-start >> {marker}; sleep 1.5; echo {name}-end >> {marker}"
        env |= server_env(number, name, api.url, target, command)
    async with running_bot(discord_double, env):
        alice = discord_double.admins[0]
        record = await discord_double.slash(alice, "poracle", "restart", server="all")
        prompt = await record.wait_original()
        (asked,) = prompt.embeds  # the prompt as first shown (the message object follows later edits)
        await discord_double.click(alice, prompt, "Confirm")
        final = await record.wait_original(is_result, timeout=RESTART_TIMEOUT)
        line = await announcement(discord_double)
    assert asked["title"] == "Restart Alpha, Beta, Gamma?"
    assert [f["name"] for f in asked["fields"]] == names
    assert f"echo Alpha-start >> {marker}" in asked["fields"][0]["value"]
    prompts = [m for m in discord_double.messages if any(v.components for v in m.versions)]
    assert prompts == [final]  # one prompt for all of them
    assert final.embeds[0]["title"] == "Restart of 3 servers: 3 restarted"
    for name in names:
        assert field(final, name).startswith("**restarted** · exit code 0 · ")
    ran = lines(marker)
    assert sorted(ran) == sorted([f"{n}-start" for n in names] + [f"{n}-end" for n in names])
    assert all(entry.endswith("-start") for entry in ran[:3]), f"one after another: {ran}"
    alice_mention = f"<@{alice.id}>"
    assert line.content.splitlines() == [f"**{n}** restarted by {alice_mention}: restarted" for n in names]


async def test_remote_output_pings_nobody_and_loses_its_terminal_codes(
    discord_double: DiscordDouble, sshd: SshServer, api: HttpServer, tmp_path: Path
) -> None:
    role, bob = discord_double.admin_role_id, discord_double.admins[1]
    command = rf"printf '\033[1;31m@everyone\033[0m @here <@&{role}> <@{bob.id}> \033[32mdone\033[0m\n'"
    env = main_env(discord_double, sshd, tmp_path, api, command)
    async with running_bot(discord_double, env):
        final, _ = await confirmed_restart(discord_double)
        await announcement(discord_double)
    value = field(final, "Main")
    assert f"```\n@everyone @here <@&{role}> <@{bob.id}> done\n```" in value
    assert "\x1b" not in final.text
    sent = [m for m in discord_double.messages if m.author.id == discord_double.bot_user.id]
    assert len(sent) >= 2  # the prompt (with its result) and the announcement at least
    for message in sent:
        for version in message.versions:
            assert "\x1b[" not in version.content
    for message in discord_double.messages:
        assert not message.pings_everyone, message
        assert message.pinged_role_ids == set(), message
        assert message.pinged_user_ids == set(), message


async def test_an_error_inside_the_command_reaches_the_admin_briefly_and_the_log_in_full(
    discord_double: DiscordDouble,
    sshd: SshServer,
    api: HttpServer,
    marker: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # discord.py retries a 5xx on webhook routes 5 times, 1 + 3 + 5 + 7 + 9 s apart: 25 s before it gives
    # up. A 400 is raised at once, and is just as much an exception inside the command.
    fault = discord_double.fail_next(
        "PATCH", "/webhooks/*/*/messages/@original", 400, code=50035, message="Invalid Form Body"
    )
    env = main_env(discord_double, sshd, tmp_path, api, f"echo ran >> {marker}")
    async with running_bot(discord_double, env):
        alice = discord_double.admins[0]
        record = await discord_double.slash(alice, "poracle", "restart", server="Main")
        await discord_double.click(alice, await record.wait_original(), "Confirm")
        error = await record.wait_followup()
    assert fault.hits == 1
    assert error.ephemeral
    assert error.content == "Something went wrong; the error was logged."
    failures = [r for r in caplog.records if r.getMessage() == f"/poracle restart failed for {alice.name} ({alice.id})"]
    assert len(failures) == 1 and failures[0].levelno == logging.ERROR
    assert failures[0].exc_info is not None
    assert "Traceback (most recent call last)" in caplog.text and "Invalid Form Body" in caplog.text
    assert not marker.exists()


async def test_an_unknown_server_is_refused_with_the_known_names(
    discord_double: DiscordDouble, sshd: SshServer, api: HttpServer, marker: Path, tmp_path: Path
) -> None:
    env = main_env(discord_double, sshd, tmp_path, api, f"echo ran >> {marker}")
    env |= server_env(2, "Backup", api.url, sshd, f"echo ran >> {marker}")
    async with running_bot(discord_double, env):
        record = await discord_double.slash(discord_double.admins[0], "poracle", "restart", server="Nope")
        refusal = await record.wait_original()
        await asyncio.sleep(0.3)  # room for anything else the bot might wrongly do
    assert refusal.ephemeral
    assert refusal.content == "No server called 'Nope'; known: Main, Backup or all"
    assert refusal.buttons == []
    assert [m for m in discord_double.messages if not m.ephemeral] == []
    assert not marker.exists()
