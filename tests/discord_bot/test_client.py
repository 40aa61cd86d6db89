"""The whole bot, stopped and started again over the same data directory, through the Discord double with
the watchdog's own loop (rounds every 0.2 s): an outage is not announced twice and its recovery, after the
restart, names the outage's start from before it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.core.monitor import State
from bot.discord_bot.client import PoracleBot
from tests.support.discord_double import DiscordDouble, Message
from tests.support.local_http import HttpServer, SwitchableServer
from tests.support.world import discord_env, running_bot, server_env


async def checks(bot: PoracleBot, server: str, field: str, count: int, timeout: float = 10) -> None:
    """Wait until the monitor has seen `count` more checks of `server` (`failures` or `successes` in a row)."""

    def seen() -> int:
        watch = bot.watchdog.monitor.watches.get(server)
        return 0 if watch is None else int(getattr(watch, field))

    target, deadline = seen() + count, time.monotonic() + timeout
    while seen() < target:
        assert time.monotonic() < deadline, f"no {count} more {field} of {server} in {timeout} s"
        await asyncio.sleep(0.01)


def alerts(discord: DiscordDouble, word: str) -> list[Message]:
    return [m for m in discord.channel_messages(discord.channel_id) if word in m.text]


def seconds(text: str) -> int:
    units = {"d": 86400, "h": 3600, "min": 60, "s": 1}
    return sum(int(n) * units[unit] for n, unit in re.findall(r"(\d+) (d|h|min|s)\b", text))


async def test_a_bot_restarted_during_an_outage_does_not_repeat_it_and_announces_the_recovery(
    discord_double: DiscordDouble, switchable: Callable[[], SwitchableServer], tmp_path: Path
) -> None:
    d = discord_double
    main = switchable()
    await main.up()
    env = discord_env(d, tmp_path / "data", PORACLE_HEALTH_INTERVAL="0.2", PORACLE_DOWN_AFTER="1")
    env |= server_env(1, "Main", main.url)
    async with running_bot(d, env) as bot:
        await checks(bot, "Main", "successes", 1)
        await main.down()
        went_down = time.monotonic()
        outage = await d.wait_for_message(lambda m: "Main is offline" in m.text, timeout=10)
        await checks(bot, "Main", "failures", 3)
    assert len(alerts(d, "offline")) == 1

    async with running_bot(d, env) as bot:
        assert bot.watchdog.monitor.watches["Main"].state is State.DOWN  # restored before the first round
        await checks(bot, "Main", "failures", 5)
        assert len(alerts(d, "offline")) == 1  # still down: nothing new to say
        await main.up()
        came_back = time.monotonic()
        recovery = await d.wait_for_message(lambda m: "Main is online again" in m.text, timeout=10)
        await checks(bot, "Main", "successes", 3)
    assert len(alerts(d, "offline")) == 1
    assert len(alerts(d, "online again")) == 1
    assert len(d.channel_messages(d.channel_id)) == 2
    # The recovery names the outage's start, from before the restart, and the whole downtime.
    assert outage.fields["Down since"].startswith(recovery.fields["Down since"])
    assert seconds(recovery.fields["Down for"]) >= int(came_back - went_down) - 1


async def test_a_bot_stopped_before_discord_calls_it_ready_leaves_no_task_behind(
    discord_double: DiscordDouble, counter: HttpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = discord_env(discord_double, tmp_path / "data") | server_env(1, "Main", counter.url)
    async with running_bot(discord_double, env, monitor=False) as bot:
        ready = bot._connection._ready_task  # READY is in; discord.py fires 'ready' 2 s after its last guild
        assert ready is not None and not ready.done()
    await asyncio.wait_for(ready, timeout=5)
    assert ready.exception() is None  # not the AttributeError of dispatching into a closed client
    assert "Connected to Discord as" not in caplog.text
