"""The channels an operator configured (alerts, live status): found once per use, Discord's refusals logged
with the variable to fix, never raised into the monitor's round."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import discord

from bot.discord_bot.connection import UNREACHABLE, DiscordLink, describe

log = logging.getLogger(__name__)

PostableChannel = discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.StageChannel
T = TypeVar("T")


class ConfiguredChannel:
    """The channel in `variable` (e.g. DISCORD_ALERT_CHANNEL_ID), used to `purpose` (e.g. "post alerts"),
    through the link's current client."""

    def __init__(self, link: DiscordLink, channel_id: int, variable: str, purpose: str) -> None:
        self.link = link
        self.id = channel_id
        self.variable = variable
        self.purpose = purpose
        self._unreachable = False  # the last attempt could not reach Discord: logged once until it can

    async def attempt(self, action: Callable[[PostableChannel], Awaitable[T]]) -> T | None:
        """`action` on the channel, or None after logging why Discord refused it. Nothing is tried while the
        bot is not connected to Discord; Discord failing meanwhile (unreachable, 5xx) is logged once, not
        every round, and once more when it answers again."""
        client = self.link.client
        if client is None or not self.link.connected:
            return None
        try:
            outcome = await self._attempt(client, action)
        except UNREACHABLE as exc:
            if not self._unreachable:
                log.warning("Cannot reach Discord to %s (%s); trying again later", self.purpose, describe(exc))
            self._unreachable = True
            return None
        if self._unreachable:
            log.info("Discord answers again: able to %s", self.purpose)
            self._unreachable = False
        return outcome

    async def _attempt(self, client: discord.Client, action: Callable[[PostableChannel], Awaitable[T]]) -> T | None:
        try:
            channel = client.get_channel(self.id) or await client.fetch_channel(self.id)
            if not isinstance(channel, PostableChannel):
                log.error("%s %s is not a channel the bot can post in", self.variable, self.id)
                return None
            return await action(channel)
        except discord.Forbidden:
            log.error(
                "Cannot %s in channel %s: the bot needs View Channel, Send Messages and Embed Links there (%s)",
                self.purpose,
                self.id,
                self.variable,
            )
        except discord.NotFound:
            log.error("Channel %s does not exist: check %s", self.id, self.variable)
        except discord.DiscordServerError:
            raise  # Discord erroring, not refusing: as if it were away
        except discord.HTTPException as exc:
            log.error("Could not %s in channel %s: %s %s", self.purpose, self.id, exc.status, exc.text)
        return None
