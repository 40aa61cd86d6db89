"""`poracle-bot run` stopped in the middle of a restart, as its own process, with a real sshd and the Discord
double. SIGTERM (docker stop, compose down, an upgrade) lets a restart that fits its budget finish, shows
its outcome and takes no new one; a second signal ends what the bot cannot wait for as interrupted; after
SIGKILL, the next start says the restart was cut off. The message, the audit and the server agree."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from bot.core.service import CUT_OFF_REASON, STOPPED_REASON
from bot.discord_bot.views import STOPPING
from tests.support.bot_process import BotProcess, bot_process
from tests.support.cli import write_env
from tests.support.discord_double import DiscordDouble, InteractionRecord, Message
from tests.support.fixtures import audit, lines
from tests.support.local_http import HttpServer
from tests.support.sshd import SshServer, wait_remote_processes_gone
from tests.support.world import confirmed_restart_elsewhere, discord_env, server_env, ssh_env

START_TIMEOUT = 30.0  # the process imports discord.py and asyncssh, logs in and syncs its commands


def configure(discord: DiscordDouble, sshd: SshServer, api: HttpServer, tmp_path: Path, command: str) -> None:
    """A `.env` in tmp_path: one server, Main, restarted with `command` over the real sshd."""
    env = discord_env(discord, tmp_path / "data") | ssh_env(sshd, tmp_path / "known_hosts")
    write_env(tmp_path, **env, **server_env(1, "Main", api.url, sshd, command))


@contextlib.asynccontextmanager
async def long_restart_running(
    discord: DiscordDouble, sshd: SshServer, api: HttpServer, tmp_path: Path, marker: Path
) -> AsyncIterator[tuple[BotProcess, InteractionRecord, str]]:
    """The bot in its own process while Main's restart, one of 30 s, runs; the tag that finds its processes."""
    tag = f"long-{uuid.uuid4().hex}"
    configure(discord, sshd, api, tmp_path, f"echo started >> {marker}; sleep 30; echo done {tag} >> {marker}")
    async with bot_process(tmp_path, discord.port) as bot:
        yield bot, await restart_running(discord, bot, marker), tag


async def restart_running(discord: DiscordDouble, bot: BotProcess, marker: Path) -> InteractionRecord:
    """alice restarts Main and confirms; returns once the remote command has written `started` to `marker`."""
    await discord.wait_until_ready(START_TIMEOUT)
    record = await confirmed_restart_elsewhere(discord, "Main")
    await bot.wait_until(lambda: "started" in " ".join(lines(marker)), "the remote command running")
    return record


def prompt(discord: DiscordDouble, record: InteractionRecord) -> Message:
    assert record.original_message_id is not None
    return discord.message(record.original_message_id)


async def test_sigterm_lets_a_running_restart_finish_shows_its_outcome_and_takes_no_new_one(
    discord_double: DiscordDouble, sshd: SshServer, api: HttpServer, marker: Path, tmp_path: Path
) -> None:
    d = discord_double
    configure(d, sshd, api, tmp_path, f"echo started >> {marker}; sleep 3; echo done >> {marker}")
    async with bot_process(tmp_path, d.port) as bot:
        record = await restart_running(d, bot, marker)
        bot.send(signal.SIGTERM)
        await bot.wait_for_line("SIGTERM received: stopping")
        refused = await d.slash(d.admins[1], "poracle", "restart", server="Main")  # bob, while it stops
        refusal = await refused.wait_original()
        code = await bot.exited(timeout=30)
        exited = time.time()
    assert code == 0
    assert lines(marker) == ["started", "done"]  # not killed halfway
    assert prompt(d, record).embeds[0]["title"] == "Main: restarted"
    announcement = await d.wait_for_message(lambda m: "restarted by" in m.content, channel_id=d.channel_id)
    assert announcement.content == f"**Main** restarted by <@{d.admins[0].id}>: restarted"
    assert refusal.ephemeral and refusal.content == STOPPING
    (row,) = audit(tmp_path / "data")
    assert (row.outcome, row.reason, row.healthy_after) == ("restarted", "exit code 0", True)
    assert exited - marker.stat().st_mtime < 10  # and exited promptly after it
    assert "Traceback" not in bot.output


async def test_a_restart_the_stopping_bot_cannot_wait_for_ends_as_interrupted(
    discord_double: DiscordDouble, sshd: SshServer, api: HttpServer, marker: Path, tmp_path: Path
) -> None:
    async with long_restart_running(discord_double, sshd, api, tmp_path, marker) as (bot, record, tag):
        bot.send(signal.SIGTERM)
        await bot.wait_for_line("SIGTERM received: stopping")
        bot.send(signal.SIGINT)  # and again (Ctrl-C twice): the 30 s are not waited for
        code = await bot.exited(timeout=15)
    assert code == 0
    assert prompt(discord_double, record).embeds[0]["title"] == f"Restart Main: interrupted: {STOPPED_REASON}"
    (row,) = audit(tmp_path / "data")
    assert (row.outcome, row.reason) == ("interrupted", STOPPED_REASON)
    assert await asyncio.to_thread(wait_remote_processes_gone, tag) == []  # hung up on, not left running
    assert lines(marker) == ["started"]
    assert "Traceback" not in bot.output


async def test_a_restart_cut_off_by_sigkill_is_reported_at_the_next_start(
    discord_double: DiscordDouble, sshd: SshServer, api: HttpServer, marker: Path, tmp_path: Path
) -> None:
    d = discord_double
    async with long_restart_running(d, sshd, api, tmp_path, marker) as (bot, record, tag):
        (running,) = audit(tmp_path / "data")  # written when the restart started
        bot.send(signal.SIGKILL)
        assert await bot.exited(timeout=10) == -signal.SIGKILL
    left = prompt(d, record).embeds[0]["title"]
    assert await asyncio.to_thread(wait_remote_processes_gone, tag) == []

    async with bot_process(tmp_path, d.port) as again:
        await d.wait_until_ready(START_TIMEOUT)
        told = await d.wait_for_message(lambda m: m.id == record.original_message_id and "interrupted" in m.text)
        again.send(signal.SIGTERM)
        code = await again.exited(timeout=15)
    assert (running.outcome, left) == ("running", "Restart Main: restarting...")
    assert told.embeds[0]["title"] == f"Restart Main: interrupted: {CUT_OFF_REASON}"
    (row,) = audit(tmp_path / "data")
    assert (row.outcome, row.reason, row.at) == ("interrupted", CUT_OFF_REASON, running.at)
    assert code == 0
    assert "Traceback" not in again.output
