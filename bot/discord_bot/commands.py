"""The `/poracle` slash commands: status, restart, history, mute and unmute (and, from ProcessCommands,
processes and logs)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import ALL, ServerConfig, UnknownServer
from bot.discord_bot import limits, outgoing
from bot.discord_bot.access import is_admin, who
from bot.discord_bot.embeds import history_embeds, mute_embed
from bot.discord_bot.process_commands import ProcessCommands
from bot.discord_bot.status_answer import answer_status
from bot.discord_bot.views import confirm_restart, show_pages

if TYPE_CHECKING:
    from bot.discord_bot.client import PoracleBot

log = logging.getLogger(__name__)

HISTORY_LIMIT = 50  # entries read for /poracle history: five pages


@app_commands.guild_only()
class PoracleCommands(
    ProcessCommands, commands.GroupCog, group_name="poracle", group_description="PoracleJS server admin"
):
    def __init__(self, bot: PoracleBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # A failed check raises CheckFailure; the tree's error handler sends the refusal.
        return is_admin(interaction, self.bot.settings.discord_admin_role_ids)

    async def _servers(self, interaction: discord.Interaction, target: str) -> list[ServerConfig] | None:
        """The servers `target` names (a name or 'all'); None, after telling the admin, if it names none."""
        try:
            return self.bot.settings.select(target)
        except UnknownServer as exc:
            message = str(exc)  # not .capitalize(): it would lower-case the server names
            await outgoing.reply_privately(interaction, message[:1].upper() + message[1:])
            return None

    @app_commands.command(name="status", description="Show whether each PoracleJS server is online")
    async def status(self, interaction: discord.Interaction[PoracleBot]) -> None:
        # The last round's picture at once, then fresh checks edited in (hung ones take PORACLE_HEALTH_TIMEOUT).
        try:
            report = await answer_status(interaction)
        except Exception:  # told to the admin alone: the channel keeps the last picture shown
            log.exception("/poracle status failed for %s", who(interaction.user))
            await outgoing.reply_privately(interaction, "The status check failed; the error was logged.")
            return
        results = report.results
        log.info(
            "Status shown to %s: %d/%d online", who(interaction.user), sum(r.online for r in results), len(results)
        )

    @app_commands.command(name="restart", description="Restart a PoracleJS server over SSH (asks to confirm)")
    @app_commands.describe(
        server=f"The server to restart, or '{ALL}'", process="Only this pm2 process (servers with ACCESS=gate)"
    )
    @app_commands.autocomplete(process=ProcessCommands.process_names)
    async def restart(
        self, interaction: discord.Interaction[PoracleBot], server: str, process: str | None = None
    ) -> None:
        servers = await self._servers(interaction, server)
        if servers is None:
            return
        if process is not None and await self._process_refused(interaction, server, servers, process):
            return
        await confirm_restart(interaction, servers, process)

    @restart.autocomplete("server")
    async def server_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        # Checks do not run for autocomplete: an outsider must not even learn the server names.
        if not is_admin(interaction, self.bot.settings.discord_admin_role_ids):
            return []
        names = [server.name for server in self.bot.settings.servers] + [ALL]
        wanted = current.casefold()
        return limits.choices(name for name in names if wanted in name.casefold())

    @app_commands.command(name="history", description="The latest restarts and outages")
    @app_commands.describe(server=f"One server, or '{ALL}' (the default)")
    @app_commands.autocomplete(server=server_names)
    async def history(self, interaction: discord.Interaction[PoracleBot], server: str = ALL) -> None:
        servers = await self._servers(interaction, server)
        if servers is None:
            return
        name = None if server.strip().casefold() == ALL else servers[0].name
        entries = await asyncio.to_thread(self.bot.store.history, name, HISTORY_LIMIT)
        log.info("History of %s shown to %s: %d entries", name or ALL, who(interaction.user), len(entries))
        await show_pages(interaction, history_embeds(entries, name))

    @app_commands.command(name="mute", description="Hold back a server's alerts for maintenance (checks go on)")
    @app_commands.describe(server=f"The server to mute, or '{ALL}'", minutes="For how long: 1 to 10080 (a week)")
    @app_commands.autocomplete(server=server_names)
    async def mute(
        self, interaction: discord.Interaction[PoracleBot], server: str, minutes: app_commands.Range[int, 1, 10080]
    ) -> None:
        servers = await self._servers(interaction, server)
        if servers is None:
            return
        names = [s.name for s in servers]
        until = discord.utils.utcnow() + timedelta(minutes=minutes)
        await asyncio.to_thread(self.bot.store.mute, names, until, who(interaction.user))
        log.info("Muted %s until %s by %s", ", ".join(names), until.isoformat(), who(interaction.user))
        await outgoing.respond(interaction, embeds=[mute_embed(names, until, interaction.user)])

    @app_commands.command(name="unmute", description="Post a server's alerts again")
    @app_commands.describe(server=f"The server to unmute, or '{ALL}'")
    @app_commands.autocomplete(server=server_names)
    async def unmute(self, interaction: discord.Interaction[PoracleBot], server: str) -> None:
        servers = await self._servers(interaction, server)
        if servers is None:
            return
        names = [s.name for s in servers]
        unmuted = await asyncio.to_thread(self.bot.store.unmute, names, discord.utils.utcnow())
        if not unmuted:
            which = f"**{names[0]}** was not muted" if len(names) == 1 else "No server was muted"
            await outgoing.reply_privately(interaction, f"{which}: nothing to unmute.")
            return
        log.info("Unmuted %s by %s", ", ".join(unmuted), who(interaction.user))
        await outgoing.respond(interaction, embeds=[mute_embed(unmuted, None, interaction.user)])
