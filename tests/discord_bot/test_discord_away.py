"""`poracle-bot run` started while Discord is away, as its own process: Discord stopped (the port refuses),
answering 503, or black-holing connections (accepted, never answered). The bot checks the servers from the
start, says once that Discord is away, and when Discord is back announces the outage that began meanwhile,
once. No traceback. (The back-off schedule itself: tests/discord_bot/test_connection.py.)"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.bot_process import bot_process
from tests.support.cli import cli, write_env
from tests.support.discord_double import DiscordDouble
from tests.support.fixtures import deliveries
from tests.support.local_http import HttpServer, SwitchableServer, hung_server, refused_port
from tests.support.world import discord_env, monitor_rounds, server_env

AWAY = "Cannot reach Discord ("
BACK = "Connected to Discord again after"


@pytest.mark.parametrize("away", ["refused", "erroring", "black-holed"])
async def test_a_bot_started_while_discord_is_away_monitors_and_announces_the_outage_once_it_is_back(
    away: str, switchable: Callable[[], SwitchableServer], counter: HttpServer, tmp_path: Path
) -> None:
    main = switchable()
    await main.up()
    port = refused_port()
    discord = DiscordDouble()  # its seeded guild and token are there before it listens
    data = tmp_path / "data"
    env = discord_env(discord, data, PORACLE_HEALTH_INTERVAL="0.3", PORACLE_DOWN_AFTER="1")
    write_env(tmp_path, **env, **server_env(1, "Main", main.url), **server_env(2, "Clock", counter.url))
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(discord.stop)
        away_stack = await stack.enter_async_context(contextlib.AsyncExitStack())
        if away == "erroring":
            await discord.start(port)
            fault = discord.fail_next("GET", "/users/@me", 503, times=10**6)
        elif away == "black-holed":
            hung = await away_stack.enter_async_context(hung_server(port))
        bot = await stack.enter_async_context(bot_process(tmp_path, port))

        if away == "black-holed":  # the login waits for an answer that never comes
            await bot.wait_until(lambda: hung.accepted >= 1, "a connection to the black hole")
        else:
            await bot.wait_for_line(AWAY)
        await monitor_rounds(counter, 2, timeout=15)  # the monitor runs all the same
        await main.down()
        await bot.wait_until(lambda: deliveries(data) == [("outage", "Main", "pending")], "the outage, recorded")
        health = await cli(tmp_path, "healthcheck")

        # Discord comes back.
        if away == "erroring":
            await bot.wait_until(lambda: fault.hits >= 2, "a second failed login")
            discord.faults.clear()
        else:
            if away == "black-holed":
                await away_stack.aclose()  # the black hole's connections close: the login fails now
                await bot.wait_for_line(AWAY)
            await discord.start(port)
        outage = await discord.wait_for_message(lambda m: "Main is offline" in m.text, timeout=20)
        await bot.wait_for_line(BACK)
        await monitor_rounds(counter, 3, timeout=15)  # a few more rounds: nothing is announced twice

    assert health.code == 0
    assert health.out.startswith("healthy: monitoring; not connected to Discord for ")
    assert health.out.endswith(", 1 alert waiting\n")
    assert outage.channel_id == discord.channel_id
    assert [m.id for m in discord.channel_messages() if "offline" in m.text] == [outage.id]
    assert deliveries(data) == [("outage", "Main", "delivered")]
    assert len(bot.matching(AWAY)) == 1, bot.output
    assert len(bot.matching(BACK)) == 1
    assert "Traceback" not in bot.output
    assert bot.matching("ERROR") == []


async def test_a_token_discord_refuses_stops_the_bot_as_a_configuration_error(
    discord_double: DiscordDouble, counter: HttpServer, tmp_path: Path
) -> None:
    env = discord_env(discord_double, tmp_path / "data") | {"DISCORD_TOKEN": "MTIz.not-the-token.abc"}
    write_env(tmp_path, **env, **server_env(1, "Clock", counter.url))
    async with bot_process(tmp_path, discord_double.port) as bot:
        code = await bot.exited(timeout=30)
    assert code == 2, bot.output
    assert "DISCORD_TOKEN: Discord refused this token; copy it again from the developer portal" in bot.output
    assert "MTIz.not-the-token.abc" not in bot.output and "not-the-token" not in bot.output
    assert "Traceback" not in bot.output
    assert [r.status for r in discord_double.requests if r.path.endswith("/users/@me")] == [401]  # asked once
    assert discord_double.channel_messages() == []
