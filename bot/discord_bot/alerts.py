"""The alert channel: the Discord front's AlertSink, and where restart notices are posted."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from bot.core.watchdog import Alert
from bot.discord_bot import outgoing
from bot.discord_bot.acknowledge import alert_view
from bot.discord_bot.channels import ConfiguredChannel, PostableChannel
from bot.discord_bot.embeds import alert_embed

if TYPE_CHECKING:
    from bot.discord_bot.client import PoracleBot

log = logging.getLogger(__name__)


class AlertChannel:
    """Posts to DISCORD_ALERT_CHANNEL_ID. Discord refusing a post is logged and reported as False; anything
    else (a bug, a dropped connection) propagates to the caller, whose round or command reports it."""

    def __init__(self, bot: PoracleBot, channel_id: int | None) -> None:
        self.bot = bot
        self.channel = (
            ConfiguredChannel(bot, channel_id, "DISCORD_ALERT_CHANNEL_ID", "post alerts") if channel_id else None
        )

    @property
    def enabled(self) -> bool:
        return self.channel is not None

    @property
    def connected(self) -> bool:
        return self.bot.connected

    async def send(self, alert: Alert) -> bool:
        """The alert as an embed; outages and reminders get Restart and Acknowledge buttons per server, and
        the alerts that page ping DISCORD_ALERT_ROLE_ID. True when posted."""
        settings = self.bot.settings
        return await self.post(
            embed=alert_embed(alert.events, alert.acknowledged),
            view=alert_view(settings, alert.events),
            ping_role=settings.discord_alert_role_id if alert.pages else None,
        )

    async def post(
        self,
        *,
        content: str | None = None,
        embed: discord.Embed | None = None,
        view: discord.ui.View | None = None,
        ping_role: int | None = None,
    ) -> bool:
        """True when the message was posted."""
        if self.channel is None:
            return False

        async def send(channel: PostableChannel) -> bool:
            embeds = [] if embed is None else [embed]
            await outgoing.post(channel, content=content, embeds=embeds, view=view, ping_role=ping_role)
            return True

        return await self.channel.attempt(send) is True
