"""The alert channel: the Discord front's AlertSink (outages, recoveries, pm2 alerts, automatic restarts' notices)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import discord

from bot.core.autorestart import AutoRestarted, NeedsHuman
from bot.core.crashloop import CrashLoop, ProcessRecovery
from bot.core.diagnosis import hints
from bot.core.monitor import Event, Outage, Reminder
from bot.core.watchdog import Alert
from bot.discord_bot import outgoing
from bot.discord_bot.acknowledge import alert_view
from bot.discord_bot.channels import ConfiguredChannel, PostableChannel
from bot.discord_bot.embeds import HINT, alert_embed, auto_restart_notice, needs_human_embed
from bot.discord_bot.process_embeds import process_alert_embed
from bot.discord_bot.views import restart_view

if TYPE_CHECKING:
    from bot.discord_bot.client import PoracleFront

log = logging.getLogger(__name__)


class AlertChannel:
    """Posts to DISCORD_ALERT_CHANNEL_ID through the front's current client. Discord refusing a post, or being
    away, is logged and reported as False (the alert waits in the outbox); anything else (a bug) propagates to
    the caller, whose round or command reports it."""

    def __init__(self, front: PoracleFront) -> None:
        self.front = front
        self.link = front.link
        channel_id = front.settings.discord_alert_channel_id
        self.channel = (
            ConfiguredChannel(self.link, channel_id, "DISCORD_ALERT_CHANNEL_ID", "post alerts") if channel_id else None
        )

    @property
    def enabled(self) -> bool:
        return self.channel is not None

    @property
    def connected(self) -> bool:
        return self.link.connected

    @property
    def away_since(self) -> datetime | None:
        return self.link.away_since

    async def send(self, alert: Alert) -> bool:
        """The alert as an embed; outages and reminders get Restart and Acknowledge buttons per server, and
        the alerts that page ping DISCORD_ALERT_ROLE_ID. True when posted."""
        settings = self.front.settings
        ping_role = settings.discord_alert_role_id if alert.pages else None
        processes = [event for event in alert.events if isinstance(event, CrashLoop | ProcessRecovery)]
        if processes:  # an alert holds events of one kind: all of pm2's, or none
            return await self.post(embed=process_alert_embed(processes), ping_role=ping_role)
        told = [event for event in alert.events if isinstance(event, AutoRestarted)]
        if told:  # notices: a line each, pinging nobody
            return await self.post(content="\n".join(map(auto_restart_notice, told)))
        given_up = [event for event in alert.events if isinstance(event, NeedsHuman)]
        if given_up:
            servers = [event.server for event in given_up]
            return await self.post(
                embed=needs_human_embed(given_up), view=restart_view(settings, servers), ping_role=ping_role
            )
        others = CrashLoop | ProcessRecovery | NeedsHuman | AutoRestarted
        events = [event for event in alert.events if not isinstance(event, others)]
        embed = alert_embed(events, alert.acknowledged)
        for hint in self._hints(events):
            embed.add_field(name=f"{HINT} Hint", value=hint, inline=False)
        return await self.post(embed=embed, view=alert_view(settings, events), ping_role=ping_role)

    def _hints(self, events: Sequence[Event]) -> list[str]:
        """For one server offline: what its last pm2 list and the reason say together (servers with the gate)."""
        if len(events) != 1 or not isinstance(events[0], Outage | Reminder):
            return []
        event = events[0]
        report = self.front.watchdog.process_report(event.server)
        return hints(report, event.reason, discord.utils.escape_markdown)

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
