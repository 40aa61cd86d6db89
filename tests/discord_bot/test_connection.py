"""Staying connected while Discord is away: the back-off schedule and the log of a streak, driven with a fake
clock; then the loop itself with the real discord.py against a refused port, and against a Discord whose
REST API answers but whose gateway refuses (the first-connection crash of discord.py#10520)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import discord.gateway
import discord.http
import pytest
import yarl

from bot.discord_bot.connection import MAX_RETRY, DiscordLink, retry_delay, stay_connected
from tests.support.clock import FakeClock
from tests.support.discord_double import DiscordDouble
from tests.support.discord_double.driver import api_base, gateway_url
from tests.support.local_http import HttpServer, refused_port
from tests.support.waiting import eventually
from tests.support.world import bot_front, discord_env, server_env

AWAY = "Cannot reach Discord ("


def test_the_back_off_doubles_from_2_s_to_5_min_and_stays_there() -> None:
    assert [retry_delay(failures) for failures in range(1, 13)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300]
    assert retry_delay(10**6) == MAX_RETRY  # a week of failures neither overflows nor waits longer


def test_a_streak_of_failures_is_one_warning_and_coming_back_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    clock = FakeClock()
    link = DiscordLink(clock)
    assert not link.connected and link.away_since == clock.start  # not connected yet: away since the start
    refused, timeout = ConnectionRefusedError(111, "Connect call failed"), TimeoutError()
    for error in (refused, timeout, timeout, refused):  # the same error reported twice counts once
        link.failed(error)
        clock.advance(60)
    assert link.failures == 3
    clock.advance(480)
    link.up()
    assert (link.connected, link.away_since, link.failures) == (True, None, 0)

    link.down()  # a drop discord.py resumes at once: nothing said
    assert link.away_since == clock.now()
    link.up()
    link.down()
    link.failed(refused := ConnectionRefusedError(111, "Connect call failed"))  # a new streak

    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    warning = (
        "WARNING",
        "Cannot reach Discord (ConnectionRefusedError: [Errno 111] Connect call failed): the monitor goes on and "
        "keeps its alerts until Discord is back; retrying",
    )
    assert said == [
        warning,
        ("INFO", "Connected to Discord again after 12 min 0 s away (3 failed attempt(s))"),
        warning,
    ]


@contextlib.asynccontextmanager
async def staying_connected(link: DiscordLink, token: str) -> AsyncIterator[list[discord.Client]]:
    """stay_connected with plain discord.py clients; the list of every client it made."""
    made: list[discord.Client] = []

    def new_client() -> discord.Client:
        made.append(discord.Client(intents=discord.Intents.default()))
        return made[-1]

    task = asyncio.create_task(stay_connected(link, new_client, token))
    try:
        yield made
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert all(client.is_closed() for client in made)  # nothing left open behind a failed attempt


async def test_an_unreachable_discord_is_tried_forever_with_fresh_clients_on_the_back_off_schedule(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = refused_port()
    monkeypatch.setattr(discord.http.Route, "BASE", api_base(port))
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(gateway_url(port)))
    clock = FakeClock()
    link = DiscordLink(clock)
    async with staying_connected(link, "a.token.nobody-checks") as made:
        await eventually(lambda: len(clock.sleeps) >= 10, "ten failed attempts")
    assert clock.sleeps[:10] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert len({id(client) for client in made}) == len(made) >= 10  # a fresh client for every attempt
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith(AWAY)] == [
        f"Cannot reach Discord (ClientConnectorError: Cannot connect to host 127.0.0.1:{port} ssl:default "
        f"[Connect call failed ('127.0.0.1', {port})]): the monitor goes on and keeps its alerts until Discord is "
        "back; retrying"
    ]
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


async def test_a_failed_first_gateway_connection_is_retried_not_a_crash(
    discord_double: DiscordDouble, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # REST answers (login works), the gateway refuses: discord.py retries once itself, then raises
    # AttributeError ('NoneType' object has no attribute 'sequence'), discord.py#10520.
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(gateway_url(refused_port())))
    clock = FakeClock()
    link = DiscordLink(clock)
    async with staying_connected(link, discord_double.token):
        await eventually(lambda: len(clock.sleeps) >= 2, "two failed attempts", timeout=15)
    assert len(discord_double.requests_to("GET", "/users/@me")) >= 2  # each attempt logged in afresh
    assert clock.sleeps[:2] == [2, 4]
    assert len([r for r in caplog.records if r.getMessage().startswith(AWAY)]) == 1
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


async def test_a_connection_lost_later_is_resumed_and_reported_in_two_lines_without_a_traceback(
    discord_double: DiscordDouble, api: HttpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Once connected, discord.py reconnects by itself (logging a traceback per failed attempt, unfiltered).
    caplog.set_level(logging.INFO, logger="bot")
    d = discord_double
    async with bot_front(discord_env(d, tmp_path / "data") | server_env(1, "Main", api.url)) as front, front.service:
        link = front.link
        task = asyncio.create_task(stay_connected(link, front.new_client, d.token))
        try:
            await eventually(lambda: link.connected, "the first connection")
            first = link.client
            await d.stop()  # Discord goes away: the gateway and the API refuse
            await eventually(lambda: link.failures >= 1, "a failed reconnect")
            await d.start(d.port)
            await eventually(lambda: link.connected, "the connection again", timeout=20)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert link.client is first  # resumed by discord.py: the same client, its views and flows kept
    said = [r.getMessage() for r in caplog.records if r.name == "bot.discord_bot.connection"]
    assert len(said) == 2 and said[0].startswith(AWAY) and said[1].startswith("Connected to Discord again after")
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
