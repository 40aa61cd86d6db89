"""The alert channel, and the background task that posts outage and recovery alerts there."""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord
from discord.ext import commands, tasks
from discord.utils import MISSING

from bot.core import heartbeat
from bot.core.heartbeat import Heartbeat
from bot.core.monitor import Event, Outage, Recovery, Reminder
from bot.discord_bot.embeds import alert_embed, duration
from bot.discord_bot.views import RestartButton

if TYPE_CHECKING:
    from bot.discord_bot.client import PoracleBot

log = logging.getLogger(__name__)

MAX_BUTTONS = 25  # Discord: five rows of five


class AlertChannel:
    """Posts to DISCORD_ALERT_CHANNEL_ID. Discord refusing the post is logged and reported as False; anything
    else (a bug, a dropped connection) propagates to the caller, whose round or command reports it."""

    def __init__(self, bot: PoracleBot, channel_id: int | None) -> None:
        self.bot = bot
        self.channel_id = channel_id

    @property
    def enabled(self) -> bool:
        return self.channel_id is not None

    async def send(
        self, *, content: str | None = None, embed: discord.Embed | None = None, view: discord.ui.View | None = None
    ) -> bool:
        """True when the message was posted."""
        if self.channel_id is None:
            return False
        try:
            channel = self.bot.get_channel(self.channel_id) or await self.bot.fetch_channel(self.channel_id)
            if not isinstance(channel, discord.abc.Messageable):
                log.error("DISCORD_ALERT_CHANNEL_ID %s is not a channel the bot can post in", self.channel_id)
                return False
            await channel.send(
                content=content,
                embed=embed if embed is not None else MISSING,
                view=view if view is not None else MISSING,
                allowed_mentions=discord.AllowedMentions.none(),
            )
            return True
        except discord.Forbidden:
            log.error(
                "Cannot post in alert channel %s: the bot needs View Channel, Send Messages and Embed Links there",
                self.channel_id,
            )
        except discord.NotFound:
            log.error("Alert channel %s does not exist: check DISCORD_ALERT_CHANNEL_ID", self.channel_id)
        except discord.HTTPException as exc:
            log.error("Posting in alert channel %s failed: %s %s", self.channel_id, exc.status, exc.text)
        return False


class Alerts(commands.Cog):
    """Checks every server each PORACLE_HEALTH_INTERVAL seconds and announces changes of state."""

    def __init__(self, bot: PoracleBot) -> None:
        self.bot = bot
        self.rounds.change_interval(seconds=bot.settings.health_interval)

    async def cog_load(self) -> None:
        if not self.bot.alerts.enabled:
            log.warning("DISCORD_ALERT_CHANNEL_ID is not set: outages are logged but not posted")
        self.rounds.start()

    async def cog_unload(self) -> None:
        self.rounds.cancel()

    @tasks.loop(seconds=60)
    async def rounds(self) -> None:
        try:
            await self.run_round()
        except Exception:  # one bad round must never stop the monitor
            log.exception("Monitor round failed; trying again in %g s", self.bot.settings.health_interval)

    @rounds.before_loop
    async def _before_first_round(self) -> None:
        await self.bot.wait_until_ready()

    async def run_round(self) -> None:
        bot = self.bot
        results = await bot.service.check_all()
        before = {name: copy.copy(watch) for name, watch in bot.monitor.watches.items()}
        events = bot.monitor.observe(results)
        try:
            await asyncio.to_thread(bot.store.record_round, results, bot.monitor.watches, events)
        except Exception:
            # Not recorded, so forget the round: the next one raises its outages and recoveries again
            # instead of having moved on without them (an outage nobody would ever be told of).
            bot.monitor.watches = before
            raise
        for event in events:
            _log_event(event)
        await self.deliver_pending()
        await bot.live_status.update(results)  # logs its own failures; never raises
        await asyncio.to_thread(bot.store.prune, datetime.now(UTC))
        self._beat()

    def _beat(self) -> None:
        try:
            heartbeat.write(self.bot.settings.data_dir, Heartbeat(datetime.now(UTC), self.bot.connected))
        except OSError as exc:  # the healthcheck will say so; the monitor itself keeps going
            log.error("Cannot write the heartbeat file in %s: %s", self.bot.settings.data_dir, exc)

    async def deliver_pending(self) -> None:
        """Post undelivered alerts, one message per round and kind; stop at the first failure and try
        again next round. Alerts of muted servers, or with no alert channel, are settled unposted; a server
        still down when its mute ends gets its outage alert then, one that came back meanwhile nothing."""
        store = self.bot.store
        muted = await asyncio.to_thread(store.mutes, datetime.now(UTC))
        still_down = {
            name: watch.down_since
            for name, watch in self.bot.monitor.watches.items()
            if watch.down_since is not None and name not in muted
        }
        await asyncio.to_thread(store.unsilence_outages, still_down)
        pending = await asyncio.to_thread(store.pending_events)
        for _, group in itertools.groupby(pending, key=lambda stored: (stored.round, type(stored.event))):
            stored = list(group)
            silent = [s.id for s in stored if s.event.server in muted or s.follows_silence]
            await asyncio.to_thread(store.mark_events, silent, "muted")
            loud = [s for s in stored if s.id not in silent]
            if not loud:
                continue
            if not self.bot.alerts.enabled:
                await asyncio.to_thread(store.mark_events, [s.id for s in loud], "off")
                continue
            embed, view = self._message([s.event for s in loud])
            if not await self.bot.alerts.send(embed=embed, view=view):
                return
            await asyncio.to_thread(store.mark_events, [s.id for s in loud], "delivered")

    def _message(self, events: list[Event]) -> tuple[discord.Embed, discord.ui.View | None]:
        """The alert for events of one kind from one round; outages get a Restart button per server."""
        embed = alert_embed(events)
        servers = [self.bot.settings.server(e.server) for e in events if not isinstance(e, Recovery)]
        buttons = [RestartButton(s.index, label=None if len(events) == 1 else s.name) for s in servers if s]
        if not buttons:
            return embed, None
        view = discord.ui.View(timeout=None)
        for button in buttons[:MAX_BUTTONS]:
            view.add_item(button)
        return embed, view


def _log_event(event: Event) -> None:
    if isinstance(event, Outage):
        log.warning("Outage: %s offline since %s (%s)", event.server, event.since.isoformat(), event.reason)
    elif isinstance(event, Reminder):
        log.warning("Still offline: %s since %s (%s)", event.server, event.since.isoformat(), event.reason)
    else:
        log.info("Recovery: %s online again after %s", event.server, duration(event.downtime))
