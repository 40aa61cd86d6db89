"""Pure functions from results to `discord.Embed`: no I/O, so every message can be tested on its own.

Discord's limits (bot/discord_bot/limits.py) shape them: they aim to fit (compact lines past 25 servers,
outputs sharing the room left); outgoing.py's `fit` makes sure of it whatever the names and outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import discord
from discord.utils import format_dt

from bot.config import ServerConfig
from bot.core.autorestart import AutoRestarted, NeedsHuman
from bot.core.diagnosis import hints
from bot.core.health import Condition, HealthResult, fix
from bot.core.monitor import Degraded, Event, Healthy, Outage, Recovery, Reminder
from bot.core.processes import ProcessReport
from bot.core.service import CUT_OFF_REASON, INTERRUPTED, RestartResult, restart_request
from bot.core.store import (
    Acknowledgement,
    DegradedRecord,
    HistoryEntry,
    NeedsHumanRecord,
    Origin,
    RestartRecord,
    ServerHistory,
)
from bot.core.watchdog import StatusReport
from bot.discord_bot.limits import DESCRIPTION, EMBED_TOTAL, FIELD_VALUE, FIELDS

GREEN = discord.Colour.green()
ORANGE = discord.Colour.orange()
RED = discord.Colour.red()
GREY = discord.Colour.light_grey()
GOLD = discord.Colour.gold()
BLURPLE = discord.Colour.blurple()

ONLINE = "🟢"
OFFLINE = "🔴"
DEGRADED = "🟡"
MUTED = "🔇"
RESTART = "🔁"
PM2 = "⚙️"
HINT = "💡"
MAINTENANCE = "🛠️"
CHECKING = "⏳ checking..."
ACKNOWLEDGED = "👀"
HUMAN = "🆘"
PROCESSES_LIMIT = 400  # of a restart result's field: the gate's list of restarted processes


def duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    text = " ".join(part for part in parts if part)
    return text if days or hours else f"{text} {seconds} s".strip()


def code_block(text: str, limit: int = FIELD_VALUE) -> str:
    """Remote output as a code block: cannot break out of it, and never longer than `limit`."""
    text = text.replace("```", "`\u200b``")
    room = limit - len("```\n\n```")
    if len(text) > room:
        text = "…" + text[-(room - 1) :]
    return f"```\n{text}\n```"


def _status_line(result: HealthResult, down_since: datetime | None, degraded_since: datetime | None) -> str:
    answer = f"HTTP {result.status} · {result.latency_ms or 0:.0f} ms"
    if result.condition is Condition.ONLINE:
        detail = f" · {escape(result.detail)}" if result.detail else ""
        return f"{ONLINE} **online** · {answer}{detail}"
    if result.condition is Condition.DEGRADED:
        since = degraded_since or result.checked_at
        return (
            f"{DEGRADED} **online, {escape(result.reason or '')}** · {answer} · degraded since {format_dt(since, 'R')}"
        )
    since = down_since or result.checked_at
    return f"{OFFLINE} **offline** · {result.reason} · down since {format_dt(since, 'R')}"


def escape(text: str) -> str:
    """A server's own words (a refusal's reason, its version) as plain text, not Markdown."""
    return discord.utils.escape_markdown(text)


def _percent(fraction: float) -> str:
    # Never round a failure up to "100 %": 99.96 % shows as 99.9 %.
    return "100 %" if fraction >= 1 else f"{min(fraction * 100, 99.9):.1f} %"


def _share(fraction: float) -> str:
    # Never round a degraded spell down to nothing (0.04 % shows as 0.1 %), nor up to all the time.
    return "100 %" if fraction >= 1 else f"{min(max(fraction * 100, 0.1), 99.9):.1f} %"


def _restart_words(record: RestartRecord) -> str:
    if record.origin is Origin.AUTOMATIC:
        return f"{format_dt(record.at, 'R')} automatically: **{record.outcome}**"
    by = discord.utils.escape_markdown(record.requested_by)
    if record.origin is Origin.CLI:
        by += " (command line)"
    return f"{format_dt(record.at, 'R')} by {by}: **{record.outcome}**"


def _history_parts(
    history: ServerHistory | None, muted_until: datetime | None, maintenance_until: datetime | None = None
) -> list[str]:
    """The extra lines of one server's status: uptime and median latency, last restart, mute, maintenance."""
    parts = []
    if history is not None:
        uptimes = [
            f"{label} {_percent(value)}"
            for label, value in (("24 h", history.uptime_24h), ("7 d", history.uptime_7d))
            if value is not None
        ]
        figures = ["uptime " + " · ".join(uptimes)] if uptimes else []
        degraded = [
            f"{label} {_share(value)}"
            for label, value in (("24 h", history.degraded_24h), ("7 d", history.degraded_7d))
            if value
        ]
        if degraded:
            figures.append("degraded " + " · ".join(degraded))
        if history.median_latency_ms is not None:
            figures.append(f"median {history.median_latency_ms:.0f} ms")
        if figures:
            parts.append(" · ".join(figures))
        if history.last_restart is not None:
            parts.append(f"last restart {_restart_words(history.last_restart)}")
    if muted_until is not None:
        parts.append(f"{MUTED} muted until {format_dt(muted_until, 'R')}")
    if maintenance_until is not None:
        parts.append(f"{MAINTENANCE} in maintenance until {format_dt(maintenance_until, 't')}")
    return parts


def _process_parts(result: HealthResult, report: ProcessReport | None) -> list[str]:
    """A gate server's pm2 line from the last round, and the hints it and the health check give together."""
    if report is None:
        return []
    escape = discord.utils.escape_markdown
    offline = None if result.online else result.reason or "no answer"
    return [f"{PM2} pm2 {escape(report.summary())}", *(f"{HINT} {hint}" for hint in hints(report, offline, escape))]


def _status_colour(results: Sequence[HealthResult]) -> discord.Colour:
    if not results:
        return BLURPLE
    if all(result.condition is Condition.ONLINE for result in results):
        return GREEN
    return ORANGE if any(result.online for result in results) else RED


def status_embeds(report: StatusReport) -> list[discord.Embed]:
    """One embed with a field per server; over 25 servers, compact lines split over several embeds.

    The report's histories (uptime, latency, last restart), mutes and maintenance windows (until when) add a
    line each when known. Servers still being checked (`report.pending`) say "checking...", and the footer
    how old the last round's results shown for them are."""
    results, histories, mutes = report.results, report.histories, report.mutes
    pending = set(report.pending)
    # Servers being checked that have no result yet (before the first round): "checking..." alone.
    unknown = [name for name in report.pending if name not in {result.server for result in results}]
    online = sum(result.condition is Condition.ONLINE for result in results)
    degraded = sum(result.condition is Condition.DEGRADED for result in results)
    total = len(results) + len(unknown)
    title = (
        f"PoracleJS servers: {online}/{total} online" + (f", {degraded} degraded" if degraded else "")
        if results
        else "PoracleJS servers: checking..."
    )
    colour = _status_colour(results)
    checked = min((result.checked_at for result in results), default=None)

    def parts(result: HealthResult) -> list[str]:
        now = _status_line(result, report.down_since.get(result.server), report.degraded_since.get(result.server))
        pm2 = _process_parts(result, report.processes.get(result.server))
        extra = _history_parts(
            histories.get(result.server), mutes.get(result.server), report.maintenance.get(result.server)
        )
        return [now, *pm2, *extra, *([CHECKING] if result.server in pending else [])]

    rows = [(r.server, parts(r)) for r in results] + [(name, [CHECKING]) for name in unknown]
    if not pending:
        footer = "Checked"
    elif report.age is not None and len(unknown) < len(pending):
        footer = f"as of {duration(report.age)} ago · checking..."
    else:
        footer = "checking..."
    embed = discord.Embed(title=title, colour=colour, timestamp=checked)
    if len(rows) <= FIELDS:
        for name, lines in rows:
            embed.add_field(name=name, value="\n".join(lines), inline=False)
    # Fields while they fit (25 of them, 6000 characters in all), else compact lines.
    if len(rows) <= FIELDS and len(embed) + len(footer) <= EMBED_TOTAL:
        embeds = [embed]
    else:
        compact = [f"**{name}**: {' · '.join(lines)}" for name, lines in rows]
        embeds = [
            discord.Embed(title=title if i == 0 else None, description=chunk, colour=colour, timestamp=checked)
            for i, chunk in enumerate(_chunks(compact, DESCRIPTION))
        ]
    embeds[-1].set_footer(text=footer)
    if pending:  # the answer to /poracle status shows only the first embed until every check is in
        embeds[0].set_footer(text=footer)
    return embeds


def _chunks(lines: Sequence[str], limit: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for line in lines:
        line = line[:limit]
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    return [*chunks, current] if current else chunks


def _targets(servers: Sequence[ServerConfig], process: str | None = None) -> str:
    names = ", ".join(server.name for server in servers)
    return names if process is None else f"{process} on {names}"


def restart_prompt_embed(servers: Sequence[ServerConfig], timeout: float, process: str | None = None) -> discord.Embed:
    embed = discord.Embed(
        title=f"Restart {_targets(servers, process)}?",
        description=f"Press **Confirm** within {timeout:.0f} s to run the restart command over SSH.",
        colour=ORANGE,
    )
    for server in servers[:FIELDS]:
        request = code_block(restart_request(server, process), 500)
        embed.add_field(name=server.name, value=f"`{server.ssh_target}`\n{request}", inline=False)
    if len(servers) > FIELDS:
        embed.set_footer(text=f"…and {len(servers) - FIELDS} more")
    return embed


def restart_state_embed(
    servers: Sequence[ServerConfig], state: str, colour: discord.Colour, process: str | None = None
) -> discord.Embed:
    """The prompt after it was answered or ignored: `restarting...`, `cancelled`, `expired`."""
    return discord.Embed(title=f"Restart {_targets(servers, process)}: {state}", colour=colour)


def _result_value(result: RestartResult, output_room: int) -> str:
    lines = [f"**{result.word}** · {result.reason}"]
    if result.command is not None:
        lines[0] += f" · {result.command.duration_s:.1f} s"
    if result.health is not None:
        answer = "yes" if result.health.online else f"no ({result.health.reason})"
        lines.append(f"Answers its health check again: **{answer}**")
    value = "\n".join(lines)
    processes = result.process_lines()
    if processes and output_room > 50:  # pm2 names are remote text: shown as code, a long list cut
        block = code_block("\n".join(processes), min(PROCESSES_LIMIT, output_room))
        value += "\n" + block
        output_room -= len(block)
    elif processes:  # no room left by the other servers' results: how many, at least
        value += f"\n{len(processes)} pm2 process(es) restarted"
    if result.command is not None and result.command.output and output_room > 50:
        value += "\n" + code_block(result.command.output, min(FIELD_VALUE - len(value) - 1, output_room))
    return value


def restart_result_embed(results: Sequence[RestartResult]) -> discord.Embed:
    succeeded = sum(result.succeeded for result in results)
    colour = GREEN if succeeded == len(results) else RED if succeeded == 0 else ORANGE
    if len(results) == 1:
        subject = results[0].server if results[0].process is None else f"{results[0].process} on {results[0].server}"
        title = f"{subject}: {results[0].word}"
    else:
        title = f"Restart of {len(results)} servers: {succeeded} restarted"
    embed = discord.Embed(title=title, colour=colour, timestamp=discord.utils.utcnow())
    shown = results[:FIELDS]
    # Share what is left of the 6000 characters between the outputs, so `all` still fits one embed.
    output_room = (EMBED_TOTAL - 500 - 200 * len(shown)) // max(1, len(shown))
    for result in shown:
        embed.add_field(name=result.server, value=_result_value(result, output_room), inline=False)
    if len(results) > FIELDS:
        embed.set_footer(text=f"…and {len(results) - FIELDS} more; see the log")
    return embed


def restart_audit_embed(records: Sequence[RestartRecord]) -> discord.Embed:
    """A prompt whose outcome the bot could not show before it stopped (it crashed, was killed, or lost
    Discord at the end), as the audit has it: the restarts it cut off, those that ended."""
    names = ", ".join(record.server for record in records)
    if all(record.reason == CUT_OFF_REASON for record in records):
        return discord.Embed(title=f"Restart {names}: {INTERRUPTED}: {CUT_OFF_REASON}", colour=GREY)
    restarted = sum(record.outcome == "restarted" for record in records)
    if len(records) == 1:
        title = f"{records[0].server}: {records[0].outcome}"
    else:
        title = f"Restart of {len(records)} servers: {restarted} restarted"
    colour = GREEN if restarted == len(records) else RED if restarted == 0 else ORANGE
    embed = discord.Embed(title=title, colour=colour)
    for record in records[:FIELDS]:
        value = f"**{record.outcome}** · {record.reason}"
        if record.duration_s is not None:
            value += f" · {record.duration_s:.1f} s"
        embed.add_field(name=record.server, value=value, inline=False)
    return embed


def restart_announcement(results: Sequence[RestartResult], user: discord.abc.User) -> str:
    """The alert channel's line, e.g. `Main restarted by @alice: restarted`."""
    return "\n".join(
        f"{'' if r.process is None else f'pm2 process `{r.process}` of '}**{r.server}** restarted by {user.mention}: "
        f"{r.word}"
        for r in results
    )


def auto_restart_notice(done: AutoRestarted) -> str:
    """The alert channel's line after an automatic restart, e.g. `🔁 Main restarted automatically: restarted
    (answers again: yes)`, and on a second line which attempt it was and why."""
    subject = f"**{done.server}**" if done.process is None else f"pm2 process `{done.process}` of **{done.server}**"
    why = f", {escape(done.why)}" if done.why else ""
    answer = "not checked" if done.answers is None else "yes" if done.answers else "no"
    return (
        f"{RESTART} {subject} restarted automatically: {done.word}{why} (answers again: {answer})\n"
        f"Attempt {done.attempt} of {done.limit} in 6 h · {escape(done.trouble)}"
    )


def needs_human_embed(events: Sequence[NeedsHuman]) -> discord.Embed:
    """The bot gave up restarting these servers on its own: someone has to look."""
    first = events[0]
    names = ", ".join(event.server for event in events)
    title = f"{HUMAN} {first.server} needs a human" if len(events) == 1 else f"{HUMAN} Need a human: {names}"
    embed = discord.Embed(title=title, colour=RED, timestamp=first.since)
    embed.description = (
        "No more automatic restarts until someone restarts it (the button below, or `/poracle restart`) or it recovers."
    )
    for event in events[:FIELDS]:
        embed.add_field(name=event.server if len(events) > 1 else "Why", value=escape(event.reason), inline=False)
    embed.set_footer(text="needs a human")
    return embed


def outage_embed(event: Outage | Reminder) -> discord.Embed:
    still = "still " if isinstance(event, Reminder) else ""
    embed = discord.Embed(title=f"{OFFLINE} {event.server} is {still}offline", colour=RED, timestamp=event.since)
    embed.add_field(name="Reason", value=event.reason, inline=False)
    embed.add_field(name="Down since", value=f"{format_dt(event.since, 'f')} ({format_dt(event.since, 'R')})")
    embed.set_footer(text="offline")
    return embed


def ack_words(ack: Acknowledgement) -> str:
    """Who acknowledged, when, and why: `alice (123) 5 minutes ago: on it`."""
    words = f"{discord.utils.escape_markdown(ack.by)} {format_dt(ack.at, 'R')}"
    return f"{words}: {discord.utils.escape_markdown(ack.reason)}" if ack.reason else words


def recovery_embed(event: Recovery, ack: Acknowledgement | None = None) -> discord.Embed:
    embed = discord.Embed(title=f"{ONLINE} {event.server} is online again", colour=GREEN, timestamp=event.recovered_at)
    embed.add_field(name="Down for", value=duration(event.downtime))
    embed.add_field(name="Down since", value=format_dt(event.down_since, "f"))
    if ack is not None:
        embed.add_field(name="Acknowledged by", value=ack_words(ack), inline=False)
    embed.set_footer(text="online")
    return embed


def acknowledged_embed(alert: discord.Embed, ack: Acknowledgement, *, named: bool) -> discord.Embed:
    """The alert `alert` once `ack` is recorded; `named`: the alert is about several servers."""
    embed = alert.copy()
    name = f"{ACKNOWLEDGED} Acknowledged" + (f": {ack.server}" if named else "")
    embed.add_field(name=name, value=f"by {ack_words(ack)}", inline=False)
    return embed


def degraded_embed(event: Degraded) -> discord.Embed:
    embed = discord.Embed(title=f"{DEGRADED} {event.server} is degraded", colour=GOLD, timestamp=event.since)
    embed.add_field(name="Reason", value=f"online, {escape(event.reason)}", inline=False)
    embed.add_field(name="Degraded since", value=f"{format_dt(event.since, 'f')} ({format_dt(event.since, 'R')})")
    embed.add_field(name="What to do", value=fix(event.cause), inline=False)
    embed.set_footer(text="degraded")
    return embed


def healthy_embed(event: Healthy) -> discord.Embed:
    title = f"{ONLINE} {event.server} is fully online again"
    embed = discord.Embed(title=title, colour=GREEN, timestamp=event.healthy_at)
    embed.add_field(name="Degraded for", value=duration(event.duration))
    embed.add_field(name="Degraded since", value=format_dt(event.degraded_since, "f"))
    embed.set_footer(text="online")
    return embed


def _single_embed(event: Event, ack: Acknowledgement | None) -> discord.Embed:
    if isinstance(event, Recovery):
        return recovery_embed(event, ack)
    if isinstance(event, Degraded):
        return degraded_embed(event)
    if isinstance(event, Healthy):
        return healthy_embed(event)
    return outage_embed(event)


def _alert_value(event: Event, ack: Acknowledgement | None) -> str:
    """One server's line in an alert for several."""
    if isinstance(event, Recovery):
        acknowledged = f" · acknowledged by {ack_words(ack)}" if ack else ""
        return f"**online** · down for {duration(event.downtime)}{acknowledged}"
    if isinstance(event, Healthy):
        return f"**online** · degraded for {duration(event.duration)}"
    if isinstance(event, Degraded):
        return f"**online, {escape(event.reason)}** · degraded since {format_dt(event.since, 'R')}"
    return f"**offline** · {event.reason} · down since {format_dt(event.since, 'R')}"


def alert_embed(events: Sequence[Event], acknowledged: Mapping[str, Acknowledgement] | None = None) -> discord.Embed:
    """One alert for events of one kind raised in the same round: a whole host going down is one message.
    Recoveries name who had acknowledged their outage (`acknowledged`, by server)."""
    acks = acknowledged or {}
    first = events[0]
    if len(events) == 1:
        return _single_embed(first, acks.get(first.server))
    names = ", ".join(event.server for event in events)
    if isinstance(first, Recovery):
        embed = discord.Embed(title=f"{ONLINE} Online again: {names}", colour=GREEN, timestamp=first.recovered_at)
        embed.set_footer(text="online")
    elif isinstance(first, Healthy):
        embed = discord.Embed(title=f"{ONLINE} Fully online again: {names}", colour=GREEN, timestamp=first.healthy_at)
        embed.set_footer(text="online")
    elif isinstance(first, Degraded):
        embed = discord.Embed(title=f"{DEGRADED} Degraded: {names}", colour=GOLD, timestamp=first.since)
        embed.set_footer(text="degraded")
    else:
        still = "Still offline" if isinstance(first, Reminder) else "Offline"
        embed = discord.Embed(title=f"{OFFLINE} {still}: {names}", colour=RED, timestamp=first.since)
        embed.set_footer(text="offline")
    for event in events[:FIELDS]:
        embed.add_field(name=event.server, value=_alert_value(event, acks.get(event.server)), inline=False)
    return embed


HISTORY_PAGE = 10  # entries a page: each line is at most HISTORY_LINE long, so a page fits a description
HISTORY_LINE = DESCRIPTION // HISTORY_PAGE - 1


def _history_line(entry: HistoryEntry) -> str:
    when = format_dt(entry.at, "f")
    if isinstance(entry, RestartRecord):
        of = "" if entry.process is None else f" of `{entry.process}`"
        line = f"{RESTART} {when} **{entry.server}** restart{of} {_restart_words(entry)} · {entry.reason}"
    elif isinstance(entry, NeedsHumanRecord):
        line = f"{HUMAN} {when} **{entry.server}** needs a human · {escape(entry.reason)}"
    elif isinstance(entry, DegradedRecord):
        spell = "still degraded" if entry.until is None else f"degraded for {duration(entry.until - entry.since)}"
        line = f"{DEGRADED} {when} **{entry.server}** {spell} · online, {escape(entry.reason)}"
    elif entry.until is None:
        line = f"{OFFLINE} {when} **{entry.server}** offline, still down · {entry.reason}"
    else:
        line = f"{OFFLINE} {when} **{entry.server}** offline for {duration(entry.until - entry.since)} · {entry.reason}"
    return line if len(line) <= HISTORY_LINE else line[: HISTORY_LINE - 1] + "…"


def history_embeds(entries: Sequence[HistoryEntry], server: str | None) -> list[discord.Embed]:
    """The restarts and outages, newest first, as pages of HISTORY_PAGE entries (at least one page)."""
    title = f"History of {server}" if server else "History of all servers"
    lines = [_history_line(entry) for entry in entries]
    pages = [lines[i : i + HISTORY_PAGE] for i in range(0, len(lines), HISTORY_PAGE)] or [[]]
    embeds = []
    for number, page in enumerate(pages, 1):
        embed = discord.Embed(title=title, colour=BLURPLE, description="\n".join(page) or "Nothing recorded yet.")
        embed.set_footer(text=f"Page {number}/{len(pages)} · newest first")
        embeds.append(embed)
    return embeds


def mute_embed(servers: Sequence[str], until: datetime | None, by: discord.abc.User) -> discord.Embed:
    """The answer to /poracle mute (`until` set) and /poracle unmute (`until` None)."""
    names = ", ".join(servers)
    if until is None:
        embed = discord.Embed(title=f"🔔 Alerts on again: {names}", colour=GREEN)
        embed.description = f"Unmuted by {by.mention}."
    else:
        embed = discord.Embed(title=f"{MUTED} Muted: {names}", colour=GREY)
        embed.description = (
            f"No alerts until {format_dt(until, 'f')} ({format_dt(until, 'R')}), or `/poracle unmute`; "
            f"the checks go on. Muted by {by.mention}."
        )
    return embed
