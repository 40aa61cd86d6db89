"""/poracle mute and unmute through the Discord double: the answers, what the alert channel then gets, and
the refusals. The mute rules themselves (expiry, servers back before the end, bot restarts) are tested
against the core in tests/core/test_watchdog.py; here the tests drive the rounds.

Main's API is a loopback port that refuses (down) until a test serves it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.discord_double import DiscordDouble, Message
from tests.support.fixtures import deliveries
from tests.support.local_http import HttpServer, http_server, refused_port
from tests.support.world import ask_status, discord_env, posts, rounds, running_bot, server_env


@pytest.fixture
def main_port() -> int:
    return refused_port()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def env(discord_double: DiscordDouble, data_dir: Path, main_port: int, api: HttpServer) -> dict[str, str]:
    """Main is declared down after 2 failed checks; Other always answers."""
    env = discord_env(discord_double, data_dir, PORACLE_DOWN_AFTER="2")
    return env | server_env(1, "Main", f"http://127.0.0.1:{main_port}") | server_env(2, "Other", api.url)


async def mute(discord: DiscordDouble, server: str, minutes: int) -> Message:
    record = await discord.slash(discord.admins[0], "poracle", "mute", server=server, minutes=minutes)
    return await record.wait_original()


async def status_text(discord: DiscordDouble) -> str:
    return (await ask_status(discord)).text


async def test_a_muted_outage_is_recorded_but_not_posted_while_checks_go_on(
    discord_double: DiscordDouble, env: dict[str, str], data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    alice = discord_double.admins[0]
    async with running_bot(discord_double, env, monitor=False) as bot:
        asked = datetime.now(UTC)
        answer = await mute(discord_double, "main", 30)
        await rounds(bot, 3)
        status = await status_text(discord_double)
    (embed,) = answer.embeds
    assert not answer.ephemeral and embed["title"] == "🔇 Muted: Main"
    until = int(embed["description"].split("<t:")[1].split(":")[0])
    assert abs(until - (asked + timedelta(minutes=30)).timestamp()) < 5
    assert "the checks go on" in embed["description"]
    assert deliveries(data_dir) == [("outage", "Main", "muted")]  # checked, found down, and held back
    assert posts(discord_double) == []
    assert f"🔇 muted until <t:{until}:R>" in status and "offline" in status
    assert f"Muted Main until {datetime.fromtimestamp(until, UTC).date()}" in caplog.text
    assert f"by {alice.name} ({alice.id})" in caplog.text


async def test_unmute_brings_the_alerts_back(
    discord_double: DiscordDouble,
    env: dict[str, str],
    data_dir: Path,
    main_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    alice = discord_double.admins[0]
    async with running_bot(discord_double, env, monitor=False) as bot:
        await mute(discord_double, "Main", 30)
        await rounds(bot, 3)
        record = await discord_double.slash(alice, "poracle", "unmute", server="Main")
        answer = await record.wait_original()
        await rounds(bot, 1)  # still down when the mute ends: the held-back outage alert goes out now
        async with http_server(port=main_port):
            await rounds(bot, 1)
            status = await status_text(discord_double)
    assert answer.embeds[0]["title"] == "🔔 Alerts on again: Main"
    outage, recovery = posts(discord_double)
    assert "Main is offline" in outage.text
    assert "Main is online again" in recovery.text
    assert deliveries(data_dir) == [("outage", "Main", "delivered"), ("recovery", "Main", "delivered")]
    assert "muted" not in status
    assert f"Unmuted Main by {alice.name} ({alice.id})" in caplog.text


async def test_mute_refuses_unknown_servers_and_non_admins(
    discord_double: DiscordDouble, env: dict[str, str], data_dir: Path
) -> None:
    async with running_bot(discord_double, env, monitor=False) as bot:
        unknown = await mute(discord_double, "Nope", 30)
        record = await discord_double.slash(discord_double.member, "poracle", "mute", server="Main", minutes=30)
        refused = await record.wait_original()
        await rounds(bot, 3)
        everything = await mute(discord_double, "all", 60)
    assert unknown.ephemeral and "No server called 'Nope'" in unknown.content
    assert refused.ephemeral and "Only Poracle admins" in refused.content
    assert deliveries(data_dir) == [("outage", "Main", "delivered")]  # nothing was muted
    assert len(posts(discord_double)) == 1
    assert everything.embeds[0]["title"] == "🔇 Muted: Main, Other"


async def unmute(discord: DiscordDouble, server: str) -> Message:
    record = await discord.slash(discord.admins[0], "poracle", "unmute", server=server)
    return await record.wait_original()


async def test_unmute_of_a_server_that_was_not_muted_says_so_and_changes_nothing(
    discord_double: DiscordDouble, env: dict[str, str], data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(discord_double, env, monitor=False) as bot:
        one, every = await unmute(discord_double, "Main"), await unmute(discord_double, "all")
        await mute(discord_double, "Other", 30)
        some = await unmute(discord_double, "all")
        await rounds(bot, 2)
    assert one.ephemeral and one.content == "**Main** was not muted: nothing to unmute."
    assert every.ephemeral and every.content == "No server was muted: nothing to unmute."
    assert not some.ephemeral and some.embeds[0]["title"] == "🔔 Alerts on again: Other"  # the one that was
    assert [r.getMessage().split(" by ")[0] for r in caplog.records if r.getMessage().startswith("Unmuted")] == [
        "Unmuted Other"
    ]
    assert deliveries(data_dir) == [("outage", "Main", "delivered")]  # Main's alerts were never held
