"""The channels an operator configured (alerts, live status): found once per use, Discord's refusals logged
with the variable to fix, never raised into the monitor's round."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import discord

log = logging.getLogger(__name__)

PostableChannel = discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.StageChannel
T = TypeVar("T")


class ConfiguredChannel:
    """The channel in `variable` (e.g. DISCORD_ALERT_CHANNEL_ID), used to `purpose` (e.g. "post alerts")."""

    def __init__(self, client: discord.Client, channel_id: int, variable: str, purpose: str) -> None:
        self.client = client
        self.id = channel_id
        self.variable = variable
        self.purpose = purpose

    async def attempt(self, action: Callable[[PostableChannel], Awaitable[T]]) -> T | None:
        """`action` on the channel, or None after logging why Discord refused it."""
        try:
            channel = self.client.get_channel(self.id) or await self.client.fetch_channel(self.id)
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
        except discord.HTTPException as exc:
            log.error("Could not %s in channel %s: %s %s", self.purpose, self.id, exc.status, exc.text)
        return None
