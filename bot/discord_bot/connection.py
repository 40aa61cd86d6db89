"""Staying connected to Discord while it is away, slow or erroring, without a traceback: a fresh client for
every attempt, a capped back-off between attempts, and one log line when Discord goes away and one when
it is back, however many attempts that takes.

discord.py itself retries only once it has connected (and logs a traceback for each attempt); a failed
login or first connection ends `Client.start` (the first even with an AttributeError: discord.py#10520),
and a closed client cannot connect again (its HTTP connector stays closed), hence the fresh client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import aiohttp
import discord

from bot.core.clock import Clock
from bot.discord_bot.embeds import duration

log = logging.getLogger(__name__)

FIRST_RETRY = 2.0  # seconds before the second attempt; doubling from there
MAX_RETRY = 300.0  # the longest wait between attempts: Discord being back is noticed within 5 min

# What Discord being away, slow or erroring raises out of discord.py (OSError covers refused connections,
# DNS failures and timeouts). A token Discord refuses (LoginFailure) is not among them: it stays refused.
UNREACHABLE: tuple[type[Exception], ...] = (
    OSError,
    aiohttp.ClientError,
    discord.HTTPException,
    discord.ConnectionClosed,
    discord.GatewayNotFound,
)
INVALID_TOKEN = 4004  # the gateway's close code for a token it refuses


def retry_delay(failures: int) -> float:
    """Seconds to wait after `failures` failed attempts in a row: FIRST_RETRY, doubling, at most MAX_RETRY."""
    return min(MAX_RETRY, FIRST_RETRY * 2.0 ** min(max(failures, 1) - 1, 16))


def describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class DiscordLink:
    """The client of the current connection attempt, whether it is connected and since when it is not; the
    one place that logs Discord going away and coming back."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.client: discord.Client | None = None
        self.connected = False
        self.away_since: datetime | None = clock.now()  # not connected yet
        self.failures = 0  # failed attempts since the last connection
        self._last_error: BaseException | None = None

    def up(self) -> None:
        """Connected (again)."""
        if self.failures and self.away_since is not None:
            away = duration(self.clock.now() - self.away_since)
            log.info("Connected to Discord again after %s away (%d failed attempt(s))", away, self.failures)
        self.connected, self.away_since, self.failures = True, None, 0

    def down(self) -> None:
        """The connection is gone (discord.py may resume it at once)."""
        if self.connected:
            self.connected, self.away_since = False, self.clock.now()

    def failed(self, error: BaseException) -> None:
        """An attempt to connect failed; the first of a row is logged, the others only at DEBUG."""
        if error is self._last_error:  # discord.py logs it, then crashes on it (#10520): one attempt
            return
        self._last_error = error
        self.down()
        self.failures += 1
        if self.failures == 1:
            log.warning(
                "Cannot reach Discord (%s): the monitor goes on and keeps its alerts until Discord is back; retrying",
                describe(error),
            )
        else:
            log.debug("Attempt %d to reach Discord failed (%s)", self.failures, describe(error))


class QuietReconnects(logging.Filter):
    """discord.py logs every failed reconnect at ERROR with a traceback ("Attempting a reconnect in 1.23s"):
    that is Discord being away, which the link reports in one line instead. Its "logging in" line is kept
    for the first attempt of a row only."""

    RECONNECT = "Attempting a reconnect in %.2fs"
    LOGIN = "logging in using static token"

    def __init__(self, link: DiscordLink) -> None:
        super().__init__()
        self.link = link

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == self.LOGIN:
            return self.link.failures == 0
        if record.msg != self.RECONNECT:
            return True
        error = record.exc_info[1] if record.exc_info else None
        self.link.failed(error or ConnectionError("connection lost"))
        return False


async def stay_connected(link: DiscordLink, new_client: Callable[[], discord.Client], token: str) -> None:
    """Connected to Discord until cancelled, whatever Discord does; raises LoginFailure if it refuses `token`."""
    quiet = QuietReconnects(link)
    discord_log = logging.getLogger("discord.client")
    discord_log.addFilter(quiet)
    try:
        while True:
            client = link.client = new_client()
            try:
                async with client:
                    await client.start(token)  # returns only once closed
                return
            except discord.ConnectionClosed as exc:
                if exc.code == INVALID_TOKEN:
                    raise discord.LoginFailure("Discord closed the connection: invalid token") from exc
                link.failed(exc)
            except UNREACHABLE as exc:
                link.failed(exc)
            except AttributeError as exc:  # discord.py#10520: the first gateway connection failed
                if client.ws is not None or not isinstance(exc.__context__, UNREACHABLE):
                    raise
                link.failed(exc.__context__)
            finally:
                link.down()
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise asyncio.CancelledError  # cancelled, but the cancellation came out as a network error
            await link.clock.sleep(retry_delay(link.failures))
    finally:
        discord_log.removeFilter(quiet)
