"""/poracle mute and unmute through the Discord double, with the real monitor loop: a muted server's
outage is recorded (delivery 'muted') but not posted while its checks go on; unmute and expiry bring its
alerts back; the mute is in the store, so it outlasts a bot restart.

Main's API is a loopback port that refuses (down) until a test serves it; Clock always answers, so its
request count counts the monitor's rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.store import FILE_NAME, Store
from tests.support.discord_double import DiscordDouble, Message
from tests.support.local_http import HttpServer, http_server, refused_port
from tests.support.world import discord_env, monitor_rounds, running_bot, server_env


@pytest.fixture
async def clock() -> AsyncIterator[HttpServer]:
    async with http_server() as server:
        yield server


@pytest.fixture
def main_port() -> int:
    return refused_port()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def env(discord_double: DiscordDouble, data_dir: Path, main_port: int, clock: HttpServer) -> dict[str, str]:
    """Rounds every 0.2 s; Main is declared down after 2 failed checks."""
    env = discord_env(discord_double, data_dir, PORACLE_HEALTH_INTERVAL="0.2", PORACLE_DOWN_AFTER="2")
    return env | server_env(1, "Main", f"http://127.0.0.1:{main_port}") | server_env(2, "Clock", clock.url)


def deliveries(data_dir: Path) -> list[tuple[str, str, str]]:
    """(kind, server, delivery) of every alert the store recorded, oldest first. The store has no reader for
    delivery states (only for pending ones), so this reads its table, as an operator with sqlite3 would."""
    with contextlib.closing(sqlite3.connect(data_dir / FILE_NAME)) as db:
        rows = db.execute(
            "SELECT kind, name, delivery FROM events JOIN servers ON servers.id = server_id ORDER BY events.id"
        ).fetchall()
    return [(str(kind), str(name), str(delivery)) for kind, name, delivery in rows]


def posts(discord: DiscordDouble) -> list[Message]:
    """What the bot posted in the alert channel on its own, not in answer to a command."""
    return [m for m in discord.channel_messages() if m.interaction_metadata is None]


async def outage_settled(clock: HttpServer) -> None:
    """Main's outage has been raised and delivered (or not): round 2 raises it; once round 4 has started,
    round 3 has finished."""
    await monitor_rounds(clock, 4)


async def mute(discord: DiscordDouble, server: str, minutes: int) -> Message:
    record = await discord.slash(discord.admins[0], "poracle", "mute", server=server, minutes=minutes)
    return await record.wait_original()


async def status_text(discord: DiscordDouble) -> str:
    record = await discord.slash(discord.admins[0], "poracle", "status")
    return (await record.wait_original(lambda m: not m.loading, timeout=5)).text


async def test_a_muted_outage_is_recorded_but_not_posted_while_checks_go_on(
    discord_double: DiscordDouble,
    env: dict[str, str],
    data_dir: Path,
    clock: HttpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    alice = discord_double.admins[0]
    async with running_bot(discord_double, env):
        asked = datetime.now(UTC)
        answer = await mute(discord_double, "main", 30)
        await outage_settled(clock)
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
    clock: HttpServer,
    main_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    alice = discord_double.admins[0]
    async with running_bot(discord_double, env):
        await mute(discord_double, "Main", 30)
        await outage_settled(clock)
        record = await discord_double.slash(alice, "poracle", "unmute", server="Main")
        answer = await record.wait_original()
        # Still down when the mute ends: the held-back outage alert goes out now.
        outage = await discord_double.wait_for_message(lambda m: m in posts(discord_double), timeout=5)
        async with http_server(port=main_port):
            recovery = await discord_double.wait_for_message(
                lambda m: m in posts(discord_double) and m is not outage, timeout=5
            )
        status = await status_text(discord_double)
    assert answer.embeds[0]["title"] == "🔔 Alerts on again: Main"
    assert "Main is offline" in outage.text
    assert "Main is online again" in recovery.text
    assert len(posts(discord_double)) == 2
    assert deliveries(data_dir) == [("outage", "Main", "delivered"), ("recovery", "Main", "delivered")]
    assert "muted" not in status
    assert f"Unmuted Main by {alice.name} ({alice.id})" in caplog.text


async def test_a_mute_ends_by_itself(
    discord_double: DiscordDouble, env: dict[str, str], data_dir: Path, clock: HttpServer, main_port: int
) -> None:
    # /poracle mute takes whole minutes; a mute seconds long, put in the store, expires within the test.
    until = datetime.now(UTC) + timedelta(seconds=8)
    store = Store.open(data_dir)
    store.mute(["Main"], until, "test")
    store.close()
    async with running_bot(discord_double, env):
        await outage_settled(clock)
        assert deliveries(data_dir) == [("outage", "Main", "muted")], "the outage came after the mute ended"
        assert "🔇 muted until" in await status_text(discord_double)
        await asyncio.sleep((until - datetime.now(UTC)).total_seconds())  # wall-clock time is what expires it
        assert "muted" not in await status_text(discord_double)
        outage = await discord_double.wait_for_message(lambda m: m in posts(discord_double), timeout=5)
        async with http_server(port=main_port):
            recovery = await discord_double.wait_for_message(
                lambda m: m in posts(discord_double) and m is not outage, timeout=5
            )
    assert "Main is offline" in outage.text
    assert "Main is online again" in recovery.text


async def test_a_server_back_before_its_mute_ends_is_never_announced(
    discord_double: DiscordDouble, env: dict[str, str], data_dir: Path, clock: HttpServer, main_port: int
) -> None:
    async with running_bot(discord_double, env):
        await mute(discord_double, "Main", 30)
        await outage_settled(clock)
        async with http_server(port=main_port):
            await monitor_rounds(clock, 3)
            record = await discord_double.slash(discord_double.admins[0], "poracle", "unmute", server="Main")
            await record.wait_original()
            await monitor_rounds(clock, 3)
    assert deliveries(data_dir) == [("outage", "Main", "muted"), ("recovery", "Main", "muted")]
    assert posts(discord_double) == []


async def test_a_mute_outlasts_a_bot_restart(
    discord_double: DiscordDouble, env: dict[str, str], data_dir: Path, clock: HttpServer
) -> None:
    async with running_bot(discord_double, env):
        answer = await mute(discord_double, "all", 60)
        await monitor_rounds(clock, 1)  # past on_ready: a stop within its 2 s leaves discord.py's task unrun
    assert answer.embeds[0]["title"] == "🔇 Muted: Main, Clock"
    async with running_bot(discord_double, env):
        await outage_settled(clock)
        status = await status_text(discord_double)
    assert deliveries(data_dir) == [("outage", "Main", "muted")]
    assert posts(discord_double) == []
    assert status.count("🔇 muted until") == 2


async def test_mute_refuses_unknown_servers_and_non_admins(
    discord_double: DiscordDouble, env: dict[str, str], data_dir: Path, clock: HttpServer
) -> None:
    async with running_bot(discord_double, env):
        unknown = await mute(discord_double, "Nope", 30)
        record = await discord_double.slash(discord_double.member, "poracle", "mute", server="Main", minutes=30)
        refused = await record.wait_original()
        await outage_settled(clock)
    assert unknown.ephemeral and "No server called 'Nope'" in unknown.content
    assert refused.ephemeral and "Only Poracle admins" in refused.content
    assert deliveries(data_dir) == [("outage", "Main", "delivered")]  # nothing was muted
    assert len(posts(discord_double)) == 1


async def test_no_recovery_alert_for_an_outage_that_went_unannounced(
    discord_double: DiscordDouble, env: dict[str, str], data_dir: Path, clock: HttpServer, main_port: int
) -> None:
    # Down while the bot had no alert channel: the outage is settled 'off'. A channel set later hears of
    # no recovery from an outage it never heard of.
    async with running_bot(discord_double, {k: v for k, v in env.items() if k != "DISCORD_ALERT_CHANNEL_ID"}):
        await outage_settled(clock)
    async with running_bot(discord_double, env), http_server(port=main_port):
        await monitor_rounds(clock, 4)
    assert deliveries(data_dir) == [("outage", "Main", "off"), ("recovery", "Main", "muted")]
    assert posts(discord_double) == []
