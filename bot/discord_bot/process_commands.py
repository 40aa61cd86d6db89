"""The pm2 subcommands of /poracle (servers with ACCESS=gate): processes, logs, and the `process` option of
restart with its autocomplete. A mixin of PoracleCommands, so they are one group, behind its admin check.

Autocomplete skips that check (discord.py runs no checks for it): each autocomplete asks is_admin itself,
and an outsider learns no name, of a server or of a process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import ALL, Access, ServerConfig
from bot.core.gate_protocol import MAX_LOG_LINES
from bot.core.service import GateRequired, process_target, restart_request
from bot.discord_bot import limits, outgoing
from bot.discord_bot.access import is_admin, who
from bot.discord_bot.process_embeds import log_message, processes_embed

if TYPE_CHECKING:
    from bot.discord_bot.client import PoracleBot

log = logging.getLogger(__name__)

DEFAULT_LOG_LINES = 50
AUTOCOMPLETE_BUDGET = 2.0  # seconds for the live list: Discord waits 3 s for choices
LIVE_FOR = 15.0  # seconds one live list serves the autocomplete (it asks at every keystroke)


class ProcessCommands(commands.Cog):
    bot: PoracleBot

    def __init__(self) -> None:
        self._live: dict[str, tuple[float, list[str]]] = {}  # server -> (when read, its process names)
        super().__init__()

    async def _gate_server(self, interaction: discord.Interaction, name: str) -> ServerConfig | None:
        """The gate server called `name`; None, after telling the admin why not."""
        settings = self.bot.settings
        server = settings.server(name)
        if server is None:
            gated = ", ".join(s.name for s in settings.servers if s.access is Access.GATE) or "none"
            await outgoing.reply_privately(interaction, f"No server called {name!r}; servers with the gate: {gated}")
            return None
        if server.access is not Access.GATE:
            await outgoing.reply_privately(interaction, str(GateRequired(server)))
            return None
        return server

    async def _process_refused(
        self, interaction: discord.Interaction, target: str, servers: list[ServerConfig], process: str
    ) -> bool:
        """Whether a restart of only `process` on `target` (the `servers` it names) is refused, the admin told
        why: it needs one server, with the gate, and a name the gate accepts. Nothing is sent to find out."""
        try:
            if target.strip().casefold() == ALL:
                raise ValueError("restarting one pm2 process needs one server, not all")
            restart_request(servers[0], process)
        except (GateRequired, ValueError) as exc:
            message = str(exc)
            await outgoing.reply_privately(interaction, message[:1].upper() + message[1:])
            return True
        return False

    @app_commands.command(name="processes", description="A server's pm2 processes, through poracle-gate")
    @app_commands.describe(server="The server (one with ACCESS=gate)")
    async def processes(self, interaction: discord.Interaction[PoracleBot], server: str) -> None:
        chosen = await self._gate_server(interaction, server)
        if chosen is None:
            return
        await interaction.response.defer(thinking=True)  # an SSH login and pm2 may take a few seconds
        read = await self.bot.service.read_processes(chosen)
        report = self.bot.watchdog.crashes.report(read)
        await outgoing.edit_response(interaction, embeds=[processes_embed(chosen.name, report)])
        log.info("pm2 list of %s shown to %s: %s", chosen.name, who(interaction.user), report.summary())

    @app_commands.command(name="logs", description="The last lines of a pm2 process's log, redacted (only you see it)")
    @app_commands.describe(
        server="The server (one with ACCESS=gate)",
        process="The pm2 process",
        lines=f"How many lines, 1 to {MAX_LOG_LINES} (default {DEFAULT_LOG_LINES})",
    )
    async def logs(
        self,
        interaction: discord.Interaction[PoracleBot],
        server: str,
        process: str,
        lines: app_commands.Range[int, 1, MAX_LOG_LINES] = DEFAULT_LOG_LINES,
    ) -> None:
        chosen = await self._gate_server(interaction, server)
        if chosen is None:
            return
        try:
            process_target(process)
        except ValueError as exc:  # a name the gate would refuse: nothing is sent
            await outgoing.reply_privately(interaction, f"Cannot read that log: {exc}")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        tail = await self.bot.service.read_logs(chosen, process, lines)
        message = log_message(tail)
        await outgoing.edit_response(interaction, embeds=[message.embed], attachment=message.attachment)
        shown = "attached" if message.attachment else "shown"
        log.info("Log of %s on %s (%d lines) %s to %s", process, chosen.name, lines, shown, who(interaction.user))

    @processes.autocomplete("server")
    @logs.autocomplete("server")
    async def gate_server_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        if not is_admin(interaction, self.bot.settings.discord_admin_role_ids):
            return []
        wanted = current.casefold()
        names = (s.name for s in self.bot.settings.servers if s.access is Access.GATE)
        return limits.choices(name for name in names if wanted in name.casefold())

    @logs.autocomplete("process")
    async def process_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The processes of the server chosen so far, from its live list (the last round's when it cannot be
        read in time)."""
        if not is_admin(interaction, self.bot.settings.discord_admin_role_ids):
            return []
        server = self.bot.settings.server(str(interaction.namespace.server or ""))
        if server is None or server.access is not Access.GATE:
            return []
        wanted = current.casefold()
        return limits.choices(name for name in await self._live_names(server) if wanted in name.casefold())

    async def _live_names(self, server: ServerConfig) -> list[str]:
        clock = self.bot.service.clock
        cached = self._live.get(server.name)
        if cached is not None and clock.monotonic() - cached[0] < LIVE_FOR:
            return cached[1]
        read = await self.bot.service.read_processes(server, AUTOCOMPLETE_BUDGET)
        if read.processes is None:
            read = self.bot.watchdog.process_reads.get(server.name, read)
        names = sorted({process.name for process in read.processes or ()})
        if read.processes is not None:
            self._live[server.name] = (clock.monotonic(), names)
        return names
