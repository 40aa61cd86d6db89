"""The Discord bot: wires the core (service, watchdog) to the Discord front (commands, buttons, channels)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import ConfigError, Settings
from bot.core.service import PoracleService
from bot.core.store import Store, StoreError
from bot.core.watchdog import Watchdog
from bot.discord_bot.access import REFUSAL, who
from bot.discord_bot.acknowledge import AckButton
from bot.discord_bot.alerts import AlertChannel
from bot.discord_bot.commands import PoracleCommands
from bot.discord_bot.live_status import LiveStatus
from bot.discord_bot.outgoing import reply_privately
from bot.discord_bot.views import RestartButton

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT = 60.0
PAGER_TIMEOUT = 300.0  # Previous / Next work this long; the interaction's token would last 15 min


class PoracleTree(app_commands.CommandTree["PoracleBot"]):
    async def on_error(self, interaction: discord.Interaction[PoracleBot], error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CheckFailure):
            log.warning("Refused /%s for %s: not an admin", _command_name(interaction), who(interaction.user))
            await reply_privately(interaction, REFUSAL)
            return
        log.error("/%s failed for %s", _command_name(interaction), who(interaction.user), exc_info=error)
        await reply_privately(interaction, "Something went wrong; the error was logged.")


def _command_name(interaction: discord.Interaction) -> str:
    return interaction.command.qualified_name if interaction.command else "?"


class PoracleBot(commands.Bot):
    def __init__(
        self, service: PoracleService, *, confirm_timeout: float = CONFIRM_TIMEOUT, pager_timeout: float = PAGER_TIMEOUT
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),  # nothing privileged: roles arrive with each interaction
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=PoracleTree,
        )
        self.service = service
        self.settings = settings = service.settings
        self.store = service.store
        self.confirm_timeout = confirm_timeout
        self.pager_timeout = pager_timeout
        self.alerts = AlertChannel(self, settings.discord_alert_channel_id)
        self.live_status = LiveStatus(self, settings.status_channel_id)
        self.watchdog = Watchdog(
            settings,
            self.store,
            service.check_all,
            self.alerts,
            service.clock,
            after_round=[self.live_status.update],
            read_processes=service.read_all_processes,
        )
        self.connected = False

    @contextlib.asynccontextmanager
    async def monitoring(self) -> AsyncIterator[None]:
        """The service open and the watchdog's rounds running, whether or not Discord is connected."""
        if not self.alerts.enabled:
            log.warning("DISCORD_ALERT_CHANNEL_ID is not set: outages are logged but not posted")
        async with self.service:
            rounds = asyncio.create_task(self.watchdog.run_forever(), name="poracle-monitor")
            try:
                yield
            finally:
                rounds.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await rounds

    async def setup_hook(self) -> None:
        self.add_dynamic_items(RestartButton, AckButton)
        await self.add_cog(PoracleCommands(self))
        guild = discord.Object(self.settings.discord_guild_id) if self.settings.discord_guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        synced = await self.tree.sync(guild=guild)
        log.info("Synced %d command(s) %s", len(synced), f"to guild {guild.id}" if guild else "globally")

    # The gateway connection comes and goes; the healthcheck wants to know whether it is there now.
    async def on_connect(self) -> None:
        self.connected = True

    async def on_resumed(self) -> None:
        self.connected = True

    async def on_disconnect(self) -> None:
        self.connected = False

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info("Connected to Discord as %s, watching %d server(s)", who(self.user), len(self.settings.servers))


def freeze_loaded() -> None:
    """What is loaded by now (discord.py, aiohttp, asyncssh, pydantic: some 75,000 objects) lives as long as the
    process: out of the garbage collector's full passes, which otherwise scan it for ~60 ms in a monitor round."""
    gc.freeze()


def run_bot(settings: Settings) -> None:
    """Run until stopped. A token Discord refuses is a configuration error, not a traceback."""
    settings.require_discord()
    assert settings.discord_token is not None
    token = settings.discord_token.get_secret_value()
    try:
        store = Store.open(settings.data_dir)
    except StoreError as exc:
        raise ConfigError([str(exc)]) from None

    async def main() -> None:
        async with PoracleBot(PoracleService(settings, store)) as bot, bot.monitoring():
            await bot.start(token)

    freeze_loaded()
    try:
        asyncio.run(main())
    except discord.LoginFailure:
        raise ConfigError(
            ["DISCORD_TOKEN: Discord refused this token; copy it again from the developer portal"]
        ) from None
    finally:
        store.close()
