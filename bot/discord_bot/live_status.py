"""The live status message in PORACLE_STATUS_CHANNEL_ID: one message, edited in place after every round.

Its id is kept in the store, so a restarted bot edits the same message instead of posting another;
a message someone deleted is posted afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

from bot.core.watchdog import StatusReport
from bot.discord_bot.channels import ConfiguredChannel, PostableChannel
from bot.discord_bot.embeds import EMBED_LIMIT, status_embeds

if TYPE_CHECKING:
    from bot.discord_bot.client import PoracleBot

log = logging.getLogger(__name__)

MESSAGE_KEY = "live_status_message"
MAX_EMBEDS = 10  # Discord: per message, sharing EMBED_LIMIT characters between them


def one_message(embeds: Sequence[discord.Embed]) -> list[discord.Embed]:
    """As many embeds as one message may carry; the last says where the rest is."""
    note = "Checked · more in /poracle status"
    # The first always goes: status_embeds keeps each embed within the limit on its own.
    kept, total = [embeds[0]], len(embeds[0])
    for embed in embeds[1:MAX_EMBEDS]:
        if total + len(embed) + len(note) > EMBED_LIMIT:
            break
        kept.append(embed)
        total += len(embed)
    if len(kept) < len(embeds):
        kept[-1].set_footer(text=note)
    return kept


class LiveStatus:
    """Keeps the status message up to date. Never raises: a failure is logged and tried again next round."""

    def __init__(self, bot: PoracleBot, channel_id: int | None) -> None:
        self.bot = bot
        self.channel = (
            ConfiguredChannel(bot, channel_id, "PORACLE_STATUS_CHANNEL_ID", "keep the live status")
            if channel_id
            else None
        )
        self._message_id: int | None = None

    async def update(self, report: StatusReport) -> None:
        if self.channel is None:
            return
        embeds = one_message(status_embeds(report))
        try:
            await self.channel.attempt(lambda channel: self._show(channel, embeds))
        except Exception:  # the monitor round must go on whatever happens here
            log.exception("Updating the live status in channel %s failed", self.channel.id)

    async def _show(self, channel: PostableChannel, embeds: list[discord.Embed]) -> None:
        store = self.bot.store
        if self._message_id is None:
            stored = await asyncio.to_thread(store.get, MESSAGE_KEY)
            self._message_id = int(stored) if stored and stored.isdigit() else None
        if self._message_id is not None:
            try:
                await channel.get_partial_message(self._message_id).edit(embeds=embeds)
                return
            except discord.NotFound:  # deleted by someone, or in another channel: post a new one
                log.info("The live status message %s is gone; posting a new one", self._message_id)
        message = await channel.send(embeds=embeds, allowed_mentions=discord.AllowedMentions.none())
        self._message_id = message.id
        await asyncio.to_thread(store.put, MESSAGE_KEY, str(message.id))
        log.info("Posted the live status message %s in channel %s", message.id, channel.id)
