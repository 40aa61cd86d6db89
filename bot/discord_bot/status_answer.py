"""The answer to /poracle status: the last round's picture at once, then the same message edited as fresh
checks come in, the last edit as soon as the slowest check is done.

How often to edit: Discord does not document per-route rate limits (it sends them in X-RateLimit headers);
edits of an interaction's messages go to its webhook route, whose bucket allows 5 per 5 s per interaction
token. The answer itself is the interaction callback, another route. So the answer is edited once the
servers that answer at once have answered (FIRST_EDIT, one edit for all of them), then at most every
EDIT_GAP while results keep coming, and never in the QUIET time before the checks' deadline
(PORACLE_HEALTH_TIMEOUT), so that the final edit never waits behind another or for the bucket: at most 3
edits in any 5 s, and the final one makes 4. With the usual picture (most servers answer in milliseconds,
the hung ones all time out together) that is the answer, one edit and the final edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import discord

from bot.core.watchdog import StatusReport
from bot.discord_bot import outgoing
from bot.discord_bot.embeds import status_embeds

if TYPE_CHECKING:
    from bot.discord_bot.client import PoracleBot

FIRST_EDIT = 0.25  # seconds after the command: the fast answers, shown together
EDIT_GAP = 2.0  # seconds between two edits before the final one
QUIET = 0.5  # seconds before the checks' deadline in which only the final edit is made


async def answer_status(interaction: discord.Interaction[PoracleBot]) -> StatusReport:
    """Answer, edit, finish; return the final report. Raises whatever Discord or the store raised."""
    bot = interaction.client
    started = time.monotonic()
    deadline = started + bot.settings.health_timeout
    checks = bot.service.check_each()  # under way from now on
    async with contextlib.aclosing(checks), contextlib.aclosing(bot.watchdog.status_updates(checks)) as updates:
        report = await anext(updates)
        await outgoing.respond(interaction, embeds=status_embeds(report)[:1])
        report = await _edit_while_checking(interaction, updates, report, started + FIRST_EDIT, deadline)
    first, *rest = status_embeds(report)
    await outgoing.edit_response(interaction, embeds=[first])
    for embed in rest:
        await outgoing.follow_up(interaction, embeds=[embed])
    return report


async def _edit_while_checking(
    interaction: discord.Interaction,
    updates: AsyncIterator[StatusReport],
    report: StatusReport,
    next_edit: float,
    deadline: float,
) -> StatusReport:
    """Show newer reports at the pace above; return the final one (nothing pending), not yet shown."""
    shown = report
    coming = asyncio.ensure_future(_next(updates))
    try:
        while True:
            wait = None
            if report is not shown and next_edit < deadline - QUIET:
                wait = max(0.0, next_edit - time.monotonic())
            done, _ = await asyncio.wait({coming}, timeout=wait)
            if coming in done:
                newer = coming.result()
                if newer is None or not newer.pending:
                    return newer or report
                report = newer
                coming = asyncio.ensure_future(_next(updates))
                continue
            await outgoing.edit_response(interaction, embeds=status_embeds(report)[:1])
            shown, next_edit = report, time.monotonic() + EDIT_GAP
    finally:
        if not coming.done():  # an edit failed: stop the stream before it is closed
            coming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await coming


async def _next(updates: AsyncIterator[StatusReport]) -> StatusReport | None:
    return await anext(updates, None)
