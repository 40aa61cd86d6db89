"""The `/poracle` slash commands: status and restart."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.access import is_admin, reply_privately
from bot.config import ALL
from bot.embeds import status_embeds
from bot.service import UnknownServer
from bot.views import confirm_restart, who

if TYPE_CHECKING:
    from bot.client import PoracleBot

log = logging.getLogger(__name__)


@app_commands.guild_only()
class PoracleCommands(commands.GroupCog, group_name="poracle", group_description="PoracleJS server admin"):
    def __init__(self, bot: PoracleBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # A failed check raises CheckFailure; the tree's error handler sends the refusal.
        return is_admin(interaction, self.bot.settings.discord_admin_role_ids)

    @app_commands.command(name="status", description="Show whether each PoracleJS server is online")
    async def status(self, interaction: discord.Interaction[PoracleBot]) -> None:
        # Hung servers take up to PORACLE_HEALTH_TIMEOUT; Discord wants an answer within 3 s.
        await interaction.response.defer(thinking=True)
        results = await self.bot.service.check_all()
        first, *rest = status_embeds(results, self.bot.monitor.down_since)
        await interaction.edit_original_response(embed=first)
        for embed in rest:
            await interaction.followup.send(embed=embed)
        log.info(
            "Status shown to %s: %d/%d online", who(interaction.user), sum(r.online for r in results), len(results)
        )

    @app_commands.command(name="restart", description="Restart a PoracleJS server over SSH (asks to confirm)")
    @app_commands.describe(server=f"The server to restart, or '{ALL}'")
    async def restart(self, interaction: discord.Interaction[PoracleBot], server: str) -> None:
        try:
            servers = self.bot.service.resolve(server)
        except UnknownServer as exc:
            message = str(exc)  # not .capitalize(): it would lower-case the server names
            await reply_privately(interaction, message[:1].upper() + message[1:])
            return
        await confirm_restart(interaction, servers)

    @restart.autocomplete("server")
    async def server_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        # Checks do not run for autocomplete: an outsider must not even learn the server names.
        if not is_admin(interaction, self.bot.settings.discord_admin_role_ids):
            return []
        names = [server.name for server in self.bot.settings.servers] + [ALL]
        wanted = current.casefold()
        return [app_commands.Choice(name=name, value=name) for name in names if wanted in name.casefold()][:25]
