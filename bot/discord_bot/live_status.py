"""The live status message in PORACLE_STATUS_CHANNEL_ID: one message, edited in place after every round.

Its id is kept in the store, so a restarted bot edits the same message instead of posting another;
a message someone deleted is posted afresh.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from bot.core.store import Store
from bot.core.watchdog import StatusReport
from bot.discord_bot import outgoing
from bot.discord_bot.channels import ConfiguredChannel, PostableChannel
from bot.discord_bot.connection import DiscordLink
from bot.discord_bot.embeds import status_embeds
from bot.discord_bot.limits import fit

log = logging.getLogger(__name__)

MESSAGE_KEY = "live_status_message"


class LiveStatus:
    """Keeps the status message up to date. Never raises: a failure is logged and tried again next round."""

    def __init__(self, link: DiscordLink, store: Store, channel_id: int | None) -> None:
        self.store = store
        self.channel = (
            ConfiguredChannel(link, channel_id, "PORACLE_STATUS_CHANNEL_ID", "keep the live status")
            if channel_id
            else None
        )
        self._message_id: int | None = None

    async def update(self, report: StatusReport) -> None:
        if self.channel is None:
            return
        # One message holds what fits; the rest is a command away.
        embeds = fit(None, status_embeds(report), left_out="Checked · more in /poracle status").embeds
        try:
            await self.channel.attempt(lambda channel: self._show(channel, embeds))
        except Exception:  # the monitor round must go on whatever happens here
            log.exception("Updating the live status in channel %s failed", self.channel.id)

    async def _show(self, channel: PostableChannel, embeds: list[discord.Embed]) -> None:
        store = self.store
        if self._message_id is None:
            stored = await asyncio.to_thread(store.get, MESSAGE_KEY)
            self._message_id = int(stored) if stored and stored.isdigit() else None
        if self._message_id is not None:
            try:
                await outgoing.edit_post(channel.get_partial_message(self._message_id), embeds=embeds)
                return
            except discord.NotFound:  # deleted by someone, or in another channel: post a new one
                log.info("The live status message %s is gone; posting a new one", self._message_id)
        message = await outgoing.post(channel, embeds=embeds)
        self._message_id = message.id
        await asyncio.to_thread(store.put, MESSAGE_KEY, str(message.id))
        log.info("Posted the live status message %s in channel %s", message.id, channel.id)
