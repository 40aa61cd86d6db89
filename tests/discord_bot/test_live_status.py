"""The live status message in PORACLE_STATUS_CHANNEL_ID through the Discord double: posted once, then edited
in place each round; re-used after a bot restart; posted afresh when deleted. The tests drive the rounds
(the watchdog's own schedule is tested in tests/core/test_watchdog.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.core.store import Store
from bot.discord_bot.live_status import MESSAGE_KEY
from tests.support.discord_double import DiscordDouble, Message, RequestRecord
from tests.support.local_http import HttpServer
from tests.support.world import discord_env, rounds, running_bot, server_env


@pytest.fixture
async def status_channel(discord_double: DiscordDouble) -> int:
    return (await discord_double.add_channel("poracle-status")).id


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def env(discord_double: DiscordDouble, data_dir: Path, api: HttpServer, status_channel: int) -> dict[str, str]:
    env = discord_env(discord_double, data_dir, PORACLE_STATUS_CHANNEL_ID=str(status_channel))
    return env | server_env(1, "Main", api.url)


def posts(discord: DiscordDouble, channel: int) -> list[RequestRecord]:
    return discord.requests_to("POST", f"/channels/{channel}/messages")


def edits(discord: DiscordDouble, channel: int, message: Message) -> list[RequestRecord]:
    return discord.requests_to("PATCH", f"/channels/{channel}/messages/{message.id}")


def stored_id(data_dir: Path) -> str | None:
    store = Store.open(data_dir)
    try:
        return store.get(MESSAGE_KEY)
    finally:
        store.close()


async def test_the_live_status_is_one_message_edited_every_round(
    discord_double: DiscordDouble, env: dict[str, str], data_dir: Path, status_channel: int
) -> None:
    async with running_bot(discord_double, env, monitor=False) as bot:
        await rounds(bot, 4)
    (live,) = discord_double.channel_messages(status_channel)
    assert len(posts(discord_double, status_channel)) == 1
    assert len(edits(discord_double, status_channel, live)) == 3
    assert len(live.versions) == 4
    assert stored_id(data_dir) == str(live.id)
    (embed,) = live.embeds
    assert embed["title"] == "PoracleJS servers: 1/1 online"
    (field,) = embed["fields"]
    assert field["name"] == "Main" and "HTTP 200" in field["value"]
    assert "uptime 24 h 100 % · 7 d 100 % · median" in field["value"]  # the history, as /poracle status shows
    assert discord_double.channel_messages() == []  # nothing in the alert channel


async def test_the_live_status_is_reused_after_a_bot_restart(
    discord_double: DiscordDouble, env: dict[str, str], status_channel: int
) -> None:
    async with running_bot(discord_double, env, monitor=False) as bot:
        await rounds(bot, 2)
    (first,) = discord_double.channel_messages(status_channel)
    async with running_bot(discord_double, env, monitor=False) as bot:
        await rounds(bot, 2)
    assert discord_double.channel_messages(status_channel) == [first]
    assert len(posts(discord_double, status_channel)) == 1
    assert len(edits(discord_double, status_channel, first)) == 3


async def test_a_deleted_live_status_is_posted_again(
    discord_double: DiscordDouble,
    env: dict[str, str],
    data_dir: Path,
    status_channel: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(discord_double, env, monitor=False) as bot:
        await rounds(bot, 2)
        (first,) = discord_double.channel_messages(status_channel)
        await discord_double.delete_message(first)
        await rounds(bot, 3)
    (second,) = discord_double.channel_messages(status_channel)
    assert second.id != first.id
    assert len(posts(discord_double, status_channel)) == 2
    assert len(edits(discord_double, status_channel, second)) == 2
    assert stored_id(data_dir) == str(second.id)
    assert f"The live status message {first.id} is gone; posting a new one" in caplog.text


async def test_a_forbidden_status_channel_is_logged_and_the_rounds_go_on(
    discord_double: DiscordDouble,
    env: dict[str, str],
    data_dir: Path,
    status_channel: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    discord_double.forbid_channel(status_channel)
    async with running_bot(discord_double, env, monitor=False) as bot:
        await rounds(bot, 3)  # a failed post that stopped a round would raise here
    assert len(posts(discord_double, status_channel)) == 3
    assert discord_double.channel_messages(status_channel) == []
    assert stored_id(data_dir) is None
    assert (
        f"Cannot keep the live status in channel {status_channel}: the bot needs View Channel, Send Messages "
        "and Embed Links there (PORACLE_STATUS_CHANNEL_ID)" in caplog.text
    )


async def test_the_live_status_of_many_long_named_servers_is_one_message_within_the_limits(
    discord_double: DiscordDouble, env: dict[str, str], api: HttpServer, status_channel: int
) -> None:
    count = 80  # compact lines of 100-character names: more than 6000 characters in all
    env |= {"PORACLE_HEALTH_TIMEOUT": "10"}
    for number in range(1, count + 1):
        env |= server_env(number, f"server-with-a-long-name-{number:03}-" + "x" * 70, api.url)
    async with running_bot(discord_double, env, monitor=False) as bot:
        await rounds(bot, 2)
    (live,) = discord_double.channel_messages(status_channel)
    assert [r.status for r in discord_double.requests if r.status >= 400] == []  # nothing refused as too long
    assert len(live.versions) == 2
    assert 1 <= len(live.embeds) <= 10 and sum(len(e.get("description", "")) for e in live.embeds) <= 6000
    assert live.embeds[-1]["footer"]["text"] == "Checked · more in /poracle status"
    assert live.embeds[0]["title"] == f"PoracleJS servers: {count}/{count} online"
