"""The Discord bot: wires the core (service, watchdog) to the Discord front (commands, buttons, channels)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import ConfigError, Settings
from bot.core.exporter import serving
from bot.core.service import PoracleService
from bot.core.store import Origin, Store, StoreError
from bot.core.watchdog import Watchdog
from bot.discord_bot import outgoing
from bot.discord_bot.access import REFUSAL, who
from bot.discord_bot.acknowledge import AckButton
from bot.discord_bot.alerts import AlertChannel
from bot.discord_bot.commands import PoracleCommands
from bot.discord_bot.connection import UNREACHABLE, DiscordLink, describe, stay_connected
from bot.discord_bot.embeds import restart_audit_embed
from bot.discord_bot.live_status import LiveStatus
from bot.discord_bot.outgoing import reply_privately
from bot.discord_bot.views import ConfirmView, RestartButton

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT = 60.0
PAGER_TIMEOUT = 300.0  # Previous / Next work this long; the interaction's token would last 15 min
REPLY_WAIT = 10.0  # once the restarts have ended, a stopping bot gives their messages this long to show it


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


class PoracleFront:
    """What outlives a connection to Discord: the service, the watchdog and the channels it posts in, the
    restart prompts in progress. Every connection attempt gets a fresh PoracleBot (see connection.py);
    the channels post through whichever is current."""

    def __init__(
        self, service: PoracleService, *, confirm_timeout: float = CONFIRM_TIMEOUT, pager_timeout: float = PAGER_TIMEOUT
    ) -> None:
        self.service = service
        self.settings = settings = service.settings
        self.store = service.store
        self.confirm_timeout = confirm_timeout
        self.pager_timeout = pager_timeout
        self.started = service.clock.now()
        self.link = DiscordLink(service.clock)
        self.alerts = AlertChannel(self)
        self.live_status = LiveStatus(self.link, self.store, settings.status_channel_id)
        self.watchdog = Watchdog(
            settings,
            self.store,
            service.check_all,
            self.alerts,
            service.clock,
            after_round=[self.live_status.update],
            read_processes=service.read_all_processes,
            restart=service.restart,
        )
        self.flows: set[asyncio.Task[Any]] = set()  # restart prompts and what follows them, until shown
        self.prompts: set[ConfirmView] = set()
        self._soon: set[asyncio.Task[None]] = set()

    def new_client(self) -> PoracleBot:
        """A fresh client; the channels post through the newest one."""
        self.link.client = client = PoracleBot(self)
        return client

    @contextlib.asynccontextmanager
    async def monitoring(self) -> AsyncIterator[None]:
        """The service open and the watchdog's rounds running, whether or not Discord is connected."""
        if not self.alerts.enabled:
            log.warning("DISCORD_ALERT_CHANNEL_ID is not set: outages are logged but not posted")
        async with self.service, contextlib.AsyncExitStack() as metrics:
            await self.service.end_cut_off_restarts((Origin.DISCORD, Origin.AUTOMATIC))
            await self.service.end_abandoned_restarts()  # a command line's, killed mid-restart
            address = self.settings.metrics_address
            if self.watchdog.metrics is not None and address is not None:
                await metrics.enter_async_context(serving(self.watchdog.metrics, *address))
            rounds = asyncio.create_task(self.watchdog.run_forever(), name="poracle-monitor")
            try:
                yield
            finally:
                for task in (rounds, *self._soon):
                    task.cancel()
                await asyncio.gather(rounds, *self._soon, return_exceptions=True)
                await self.watchdog.close()  # automatic restarts stop() did not wait out, a heartbeat push

    @contextlib.contextmanager
    def restart_flow(self, prompt: ConfirmView) -> Iterator[None]:
        """A restart prompt and what follows it, until the admin has seen the outcome: stop() waits for it."""
        task = asyncio.current_task()
        assert task is not None
        self.flows.add(task)
        self.prompts.add(prompt)
        try:
            yield
        finally:
            self.flows.discard(task)
            self.prompts.discard(prompt)

    def connected(self, client: PoracleBot) -> None:
        """`client` has connected: what waited for Discord goes out now, not at the next round."""
        if client is not self.link.client:  # a late event of a client already replaced
            return
        self.link.up()
        self._later(self.watchdog.flush(), "post the alerts that waited")
        self._later(self.show_unshown_restarts(), "edit the messages of restarts the last run did not show")

    def _later(self, work: Coroutine[Any, Any, None], what: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except UNREACHABLE as exc:
                log.warning("Could not %s (%s); trying again once connected", what, describe(exc))
            except Exception:
                log.exception("Could not %s", what)

        task = asyncio.create_task(guarded())
        self._soon.add(task)
        task.add_done_callback(self._soon.discard)

    async def show_unshown_restarts(self) -> None:
        """The prompts of restarts whose outcome the bot's last run never showed (it crashed, was killed, or
        lost Discord at the end) are edited to say how they ended, as the audit has it."""
        client = self.link.client
        if client is None:
            return
        unshown = await asyncio.to_thread(self.store.unshown_restarts, self.started)
        for reply, records in unshown.items():
            channel_id, message_id = (int(part) for part in reply.split("/"))
            message = client.get_partial_messageable(channel_id).get_partial_message(message_id)
            names = ", ".join(record.server for record in records)
            try:
                await outgoing.edit_post(message, embeds=[restart_audit_embed(records)])
                log.info("The message of the restart(s) of %s now shows how they ended", names)
            except (discord.NotFound, discord.Forbidden) as exc:  # deleted, or out of sight: nobody to tell
                log.info("Cannot edit the message of the restart(s) of %s: %s %s", names, exc.status, exc.text)
            await asyncio.to_thread(self.store.shown, reply)

    async def stop(self) -> None:
        """Take no new restarts, let the running ones finish within their budget and their messages show the
        outcome; what it cannot wait for ends as interrupted (`interrupt`, also for a second signal)."""
        service = self.service
        service.stop()
        for prompt in list(self.prompts):
            prompt.stop()
        budget = service.stop_budget
        if not service.idle:
            log.info("Stopping: waiting up to %.0f s for the running restart(s) to end", budget)
        if not await service.wait_restarts(budget):
            log.warning("Stopping: interrupting the restart(s) still running after %.0f s", budget)
            service.interrupt()
        if self.flows:
            _, late = await asyncio.wait(set(self.flows), timeout=REPLY_WAIT)
            for flow in late:
                flow.cancel()

    async def run(self, token: str) -> None:
        """Monitor and serve Discord until SIGTERM or SIGINT; then stop() and return. A second signal
        interrupts the restarts still running. Raises LoginFailure if Discord refuses the token."""
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()

        def on_signal(name: str) -> None:
            if not signalled.is_set():
                log.info("%s received: stopping", name)
                signalled.set()
            else:
                log.warning("%s received again: interrupting the running restarts", name)
                self.service.interrupt()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig.name)
        try:
            async with self.monitoring():
                connection = asyncio.create_task(stay_connected(self.link, self.new_client, token))
                stop = asyncio.create_task(signalled.wait())
                try:
                    await asyncio.wait({connection, stop}, return_when=asyncio.FIRST_COMPLETED)
                    await self.stop()
                finally:
                    for task in (connection, stop):
                        task.cancel()
                    await asyncio.gather(stop, return_exceptions=True)
                    with contextlib.suppress(asyncio.CancelledError):
                        await connection  # raises LoginFailure
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("Stopped")


class PoracleBot(commands.Bot):
    """One connection attempt to Discord (a discord.py client); what outlives it is the front's."""

    def __init__(self, front: PoracleFront) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),  # nothing privileged: roles arrive with each interaction
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=PoracleTree,
        )
        self.front = front
        self.service = front.service
        self.settings = front.settings
        self.store = front.store
        self.confirm_timeout = front.confirm_timeout
        self.pager_timeout = front.pager_timeout
        self.alerts = front.alerts
        self.watchdog = front.watchdog

    async def setup_hook(self) -> None:
        self.add_dynamic_items(RestartButton, AckButton)
        await self.add_cog(PoracleCommands(self))
        guild = discord.Object(self.settings.discord_guild_id) if self.settings.discord_guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        synced = await self.tree.sync(guild=guild)
        log.info("Synced %d command(s) %s", len(synced), f"to guild {guild.id}" if guild else "globally")

    # The gateway connection comes and goes; the healthcheck and the alert channel want to know whether it is there.
    async def on_connect(self) -> None:
        self.front.connected(self)

    async def on_resumed(self) -> None:
        self.front.connected(self)

    async def on_disconnect(self) -> None:
        if self.front.link.client is self:
            self.front.link.down()

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info("Connected to Discord as %s, watching %d server(s)", who(self.user), len(self.settings.servers))

    async def close(self) -> None:
        # discord.py fires 'ready' from a task of its own up to 2 s after READY, and close() leaves that task
        # running: a bot stopped meanwhile then dispatches into a closed client ("Task exception was never
        # retrieved", AttributeError on its loop). Cancelled, the task ends quietly (it expects that).
        ready = self._connection._ready_task
        if ready is not None:
            ready.cancel()
        await super().close()


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

    freeze_loaded()
    try:
        asyncio.run(PoracleFront(PoracleService(settings, store)).run(token))
    except discord.LoginFailure:
        raise ConfigError(
            ["DISCORD_TOKEN: Discord refused this token; copy it again from the developer portal"]
        ) from None
    finally:
        store.close()
