"""The live status message in PORACLE_STATUS_CHANNEL_ID: one message, edited in place after every round.

Its id is kept in the store, so a restarted bot edits the same message instead of posting another;
a message someone deleted is posted afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord

from bot.core.health import HealthResult
from bot.discord_bot.embeds import EMBED_LIMIT, status_embeds

if TYPE_CHECKING:
    from bot.discord_bot.client import PoracleBot

log = logging.getLogger(__name__)

MESSAGE_KEY = "live_status_message"
MAX_EMBEDS = 10  # Discord: per message, sharing EMBED_LIMIT characters between them


async def status_with_history(bot: PoracleBot, results: Sequence[HealthResult]) -> list[discord.Embed]:
    """The status embeds with each server's uptime, latency, last restart and mute, as /poracle status shows."""
    now = datetime.now(UTC)
    histories, mutes = await asyncio.gather(
        asyncio.to_thread(bot.store.server_histories, now), asyncio.to_thread(bot.store.mutes, now)
    )
    return status_embeds(results, bot.monitor.down_since, histories, mutes)


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
        self.channel_id = channel_id
        self._message_id: int | None = None

    async def update(self, results: Sequence[HealthResult]) -> None:
        if self.channel_id is None:
            return
        try:
            await self._update(results)
        except discord.Forbidden:
            log.error(
                "Cannot keep the live status in channel %s: the bot needs View Channel, Send Messages and "
                "Embed Links there (PORACLE_STATUS_CHANNEL_ID)",
                self.channel_id,
            )
        except discord.NotFound:
            log.error("Status channel %s does not exist: check PORACLE_STATUS_CHANNEL_ID", self.channel_id)
        except discord.HTTPException as exc:
            log.error("Updating the live status in channel %s failed: %s %s", self.channel_id, exc.status, exc.text)
        except Exception:  # the monitor round must go on whatever happens here
            log.exception("Updating the live status in channel %s failed", self.channel_id)

    async def _update(self, results: Sequence[HealthResult]) -> None:
        assert self.channel_id is not None
        embeds = one_message(await status_with_history(self.bot, results))
        channel = self.bot.get_channel(self.channel_id) or await self.bot.fetch_channel(self.channel_id)
        if not isinstance(channel, discord.TextChannel | discord.Thread | discord.VoiceChannel):
            log.error("PORACLE_STATUS_CHANNEL_ID %s is not a channel the bot can post in", self.channel_id)
            return
        if self._message_id is None:
            stored = await asyncio.to_thread(self.bot.store.get, MESSAGE_KEY)
            self._message_id = int(stored) if stored and stored.isdigit() else None
        if self._message_id is not None:
            try:
                await channel.get_partial_message(self._message_id).edit(embeds=embeds)
                return
            except discord.NotFound:  # deleted by someone, or in another channel: post a new one
                log.info("The live status message %s is gone; posting a new one", self._message_id)
        message = await channel.send(embeds=embeds, allowed_mentions=discord.AllowedMentions.none())
        self._message_id = message.id
        await asyncio.to_thread(self.bot.store.put, MESSAGE_KEY, str(message.id))
        log.info("Posted the live status message %s in channel %s", message.id, self.channel_id)
