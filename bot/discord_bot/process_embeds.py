"""Pure builders for the pm2 messages: /poracle processes, /poracle logs and the crash-loop alerts.

pm2's process names and logs are remote text: names are escaped (no Markdown, no line breaks), lists and
logs go in code blocks, and nothing can ping anyone (allowed_mentions none, and embeds never ping).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import discord
from discord.utils import format_dt

from bot.core.crashloop import CrashLoop, ProcessEvent, ProcessRecovery
from bot.core.output import clean_output, format_table
from bot.core.processes import LogTail, ProcessReport
from bot.discord_bot.embeds import GREEN, ORANGE, RED, code_block, duration
from bot.discord_bot.limits import CHOICE, DESCRIPTION, FIELDS
from bot.discord_bot.outgoing import TextFile

TROUBLE = "🟠"
STABLE = "🟢"
GONE = "⚪"
FENCES = len(code_block(""))


def name(text: str) -> str:
    """A pm2 name as embed text: one line, no Markdown."""
    return discord.utils.escape_markdown(clean_output(text, CHOICE).replace("\n", " "))


def processes_embed(server: str, report: ProcessReport) -> discord.Embed:
    """The server's pm2 list as a table in a code block; the compact table when the full one is too wide
    for the room, then as many rows as fit (the command line lists them all)."""
    read = report.read
    if read.processes is None:
        return discord.Embed(title=f"pm2 on {server}: not read", description=read.reason, colour=RED, timestamp=read.at)
    online = sum(process.status == "online" for process in read.processes)
    colour = GREEN if online == len(read.processes) else RED if online == 0 else ORANGE
    embed = discord.Embed(title=f"pm2 on {server}: {report.summary()}", colour=colour, timestamp=read.at)
    room = DESCRIPTION - FENCES
    rows = report.table()
    if len(format_table(rows)) > room:
        rows = report.table(compact=True)
    shown = len(rows)
    while shown > 1 and len(format_table(rows[:shown])) > room:
        shown -= 1
    embed.description = code_block(format_table(rows[:shown]), DESCRIPTION) if read.processes else "No processes."
    footer = "restarts: pm2's count (and in the last hour, from the bot's rounds)"
    if shown < len(rows):
        footer = f"{len(rows) - shown} more not shown: `poracle-bot processes` lists them all · " + footer
    embed.set_footer(text=footer)
    return embed


@dataclass(frozen=True, slots=True)
class LogMessage:
    embed: discord.Embed
    attachment: TextFile | None = None


def log_message(tail: LogTail) -> LogMessage:
    """A log tail: in a code block when it fits the message, else an attached .txt file."""
    shown = tail.name if tail.name is not None else tail.process
    if tail.reason is not None:
        embed = discord.Embed(title=f"Log of {name(shown)} on {tail.server}: not read", colour=RED)
        embed.description = tail.reason
        return LogMessage(embed)
    counts = f"{len(tail.lines)} out, {len(tail.error_lines)} error line(s)"
    embed = discord.Embed(
        title=f"Log of {name(shown)} (id {tail.pm_id}) on {tail.server}", colour=discord.Colour.blurple()
    )
    embed.set_footer(text=f"last {tail.requested} lines asked · {counts} · redacted")
    text = tail.text
    if len(text) <= DESCRIPTION - FENCES:
        embed.description = code_block(text, DESCRIPTION)
        return LogMessage(embed)
    attachment = TextFile(f"{tail.server}-{shown}-log.txt", text + "\n")
    embed.description = f"{len(text):,} characters: too long to show here, attached as a text file."
    return LogMessage(embed, attachment)


def process_alert_embed(events: Sequence[ProcessEvent]) -> discord.Embed:
    """One alert for the process events of one kind raised in one round."""
    first = events[0]
    if len(events) == 1:
        return _crash_embed(first) if isinstance(first, CrashLoop) else _recovery_embed(first)
    subjects = ", ".join(f"{name(e.process)} on {e.server}" for e in events)
    if isinstance(first, CrashLoop):
        embed = discord.Embed(title=f"{TROUBLE} pm2 processes in trouble: {subjects}", colour=ORANGE)
    else:
        embed = discord.Embed(title=f"{STABLE} pm2 processes stable again: {subjects}", colour=GREEN)
    for event in events[:FIELDS]:
        if isinstance(event, CrashLoop):
            value = f"**{event.reason}** · since {format_dt(event.since, 'R')}"
        else:
            value = f"**{event.note or 'stable again'}** · in trouble for {duration(event.duration)}"
        embed.add_field(name=f"{name(event.process)} on {event.server}", value=value, inline=False)
    embed.set_footer(text="crash loop" if isinstance(first, CrashLoop) else "stable")
    return embed


def _crash_embed(event: CrashLoop) -> discord.Embed:
    title = f"{TROUBLE} pm2 process {name(event.process)} on {event.server}: {event.reason}"
    embed = discord.Embed(title=title, colour=ORANGE, timestamp=event.since)
    embed.description = "pm2 keeps restarting it, or has given up on it; its HTTP may well still answer."
    options = f"server:{event.server} process:{clean_output(event.process, CHOICE).replace('`', '')}"
    embed.add_field(name="Why", value=f"`/poracle logs {options}`", inline=False)
    embed.add_field(name="Restart only it", value=f"`/poracle restart {options}`")
    embed.set_footer(text="crash loop")
    return embed


def _recovery_embed(event: ProcessRecovery) -> discord.Embed:
    process = name(event.process)
    if event.note is not None:
        title = f"{GONE} pm2 process {process} on {event.server}: {event.note}"
    else:
        title = f"{STABLE} pm2 process {process} on {event.server} is stable again"
    embed = discord.Embed(title=title, colour=GREEN, timestamp=event.recovered_at)
    embed.add_field(name="In trouble for", value=duration(event.duration))
    embed.add_field(name="Since", value=format_dt(event.since, "f"))
    embed.set_footer(text="stable")
    return embed
