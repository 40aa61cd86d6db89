"""Someone watching the watcher, through the real bot running its own rounds (every 0.2 s) against the Discord
double: the heartbeat URL (a loopback server) is requested after the rounds, one that refuses or hangs changes
nothing else (the rounds keep their pace, the alerts go out, one log line, never the URL's secret), and the
bot's own metrics are served and read back with prometheus-client's parser. The rules are tested fast in
tests/core/test_push.py and tests/core/test_exporter.py."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.discord_double import DiscordDouble
from tests.support.local_http import HttpServer, http_server, hung_server, refused_port
from tests.support.scrape import samples
from tests.support.sshd import free_port
from tests.support.world import discord_env, monitor_rounds, running_bot, server_env, wait_alert

pytestmark = pytest.mark.usefixtures("token_stays_out_of_the_log")

SECRET = "3c9d7a2e-51f4-4b8a-9e06-d27c4f18ab55"
PATH = f"/ping/{SECRET}"


def watched_env(
    discord: DiscordDouble, tmp_path: Path, counter: HttpServer, heartbeat: str, **extra: str
) -> dict[str, str]:
    """Main (down), and Clock, which answers and so counts the rounds."""
    env = discord_env(
        discord, tmp_path / "data", PORACLE_HEALTH_INTERVAL="0.2", PORACLE_HEARTBEAT_URL=heartbeat, **extra
    )
    return env | server_env(1, "Main", f"http://127.0.0.1:{refused_port()}") | server_env(2, "Clock", counter.url)


async def test_the_heartbeat_is_pushed_after_the_rounds_and_the_metrics_are_served(
    discord_double: DiscordDouble, counter: HttpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    async with http_server() as receiver:
        env = watched_env(
            discord_double, tmp_path, counter, f"{receiver.url}{PATH}", PORACLE_METRICS_LISTEN=f"127.0.0.1:{port}"
        )
        async with running_bot(discord_double, env):
            await monitor_rounds(counter, 3)
            await monitor_rounds(receiver, 3)  # pushed after the rounds, as they go on
            await wait_alert(discord_double, "offline")
            await monitor_rounds(counter, 1)  # a round after the alert was posted, so it is counted
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
    assert set(receiver.requests) == {PATH}
    assert SECRET not in caplog.text  # the log was captured at DEBUG (token_stays_out_of_the_log)
    found = samples(text)
    assert found[("poracle_bot_server_status", (("server", "Main"), ("status", "offline")))] == 1
    assert found[("poracle_bot_server_status", (("server", "Clock"), ("status", "online")))] == 1
    assert found[("poracle_bot_server_latency_seconds", (("server", "Clock"),))] > 0
    assert found[("poracle_bot_round_duration_seconds_count", ())] >= 4
    assert found[("poracle_bot_alerts_posted_total", (("kind", "outage"),))] == 1
    assert found[("poracle_bot_discord_connected", ())] == 1


@contextlib.asynccontextmanager
async def failing_heartbeat(how: str) -> AsyncIterator[str]:
    """The URL of a heartbeat service that refuses connections, or accepts them and never answers."""
    if how == "refused":
        yield f"http://127.0.0.1:{refused_port()}{PATH}"
        return
    async with hung_server() as hung:
        yield f"{hung.url}{PATH}"


@pytest.mark.parametrize("how", ["refused", "hung"])
async def test_a_heartbeat_that_fails_changes_nothing_else_and_is_logged_once_without_its_secret(
    discord_double: DiscordDouble, counter: HttpServer, tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with failing_heartbeat(how) as url:
        env = watched_env(discord_double, tmp_path, counter, url)  # PORACLE_HEALTH_TIMEOUT=1: a push may hang 1 s
        async with running_bot(discord_double, env):
            # Rounds every 0.2 s go on at their pace: 12 of them would take over 12 s if each waited for the push.
            await monitor_rounds(counter, 12, timeout=6)
            outage = await wait_alert(discord_double, "offline")
            await monitor_rounds(counter, 6, timeout=6)  # more pushes fail meanwhile: logged once
    assert outage.title == "🔴 Main is offline"
    failures = [r.getMessage() for r in caplog.records if r.name == "bot.core.push" and r.levelno == logging.WARNING]
    reason = "connection refused" if how == "refused" else "no answer within 1 s"
    assert len(failures) == 1 and f"/******** failed: {reason};" in failures[0], failures
    assert SECRET not in caplog.text
