"""The Acknowledge button on outage alerts: an admin takes the outage on, optionally saying why in a form.

The core keeps the acknowledgement (the first one of each outage), stops the outage's reminders and names
who acknowledged in its recovery; here the press is checked (admin role, outage still on, not taken yet),
the form asked for, and the alert edited to show who took it. The button is dynamic, like Restart: its
custom id names the server and the outage, so it works after the bot restarts. The form itself lives only
in this process: one left open across a restart is answered by Discord with an error; press again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeGuard

import discord

from bot.config import ServerConfig, Settings
from bot.core.monitor import Event, Outage, Reminder, outage_id, restart_may_help
from bot.core.output import clean_output
from bot.core.watchdog import AckResult
from bot.discord_bot import outgoing
from bot.discord_bot.access import who
from bot.discord_bot.embeds import ack_words, acknowledged_embed
from bot.discord_bot.limits import BUTTON_LABEL, cut
from bot.discord_bot.views import RestartButton, ServerButton, admins_only

if TYPE_CHECKING:
    from bot.discord_bot.client import PoracleBot

log = logging.getLogger(__name__)

ACKNOWLEDGE = "Acknowledge"
ACKNOWLEDGED = "Acknowledged"
REASON_LABEL = "Reason (optional)"  # Discord: at most 45 characters
REASON_LENGTH = 200
FORM_TIMEOUT = 600.0  # seconds the form waits to be sent
ROWS = 5  # Discord: five rows of at most five buttons
MAX_SERVERS = 12  # a Restart and an Acknowledge button each: 24 of the 25 buttons a message may hold


def alert_view(settings: Settings, events: Sequence[Event]) -> discord.ui.View | None:
    """Per server an alert names: Restart where a restart may help, Acknowledge for an outage; one row per
    server while they fit."""
    wanted = [
        (server, event)
        for event in events
        if (restart_may_help(event) or _acknowledgeable(event)) and (server := settings.server(event.server))
    ]
    if not wanted:
        return None
    view = discord.ui.View(timeout=None)
    named = len(events) > 1
    for number, (server, event) in enumerate(wanted[:MAX_SERVERS]):
        row = number if len(wanted) <= ROWS else None
        label = server.name if named else None
        if restart_may_help(event):
            view.add_item(RestartButton(server.index, label=label, row=row))
        if _acknowledgeable(event):
            view.add_item(AckButton(server.index, outage_id(event.since), label=label, row=row))
    return view


def _acknowledgeable(event: Event) -> TypeGuard[Outage | Reminder]:
    return isinstance(event, Outage | Reminder)


class AckButton(
    ServerButton,
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"poracle:ack:(?P<index>\d+):(?P<outage>\d+)",
):
    """Acknowledge one server's outage: the form, for admins, while the outage lasts and nobody took it."""

    action = ACKNOWLEDGE

    def __init__(self, index: int, outage: int, label: str | None = None, row: int | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=cut(f"{ACKNOWLEDGE} {label}", BUTTON_LABEL) if label else ACKNOWLEDGE,
                style=discord.ButtonStyle.secondary,
                custom_id=f"poracle:ack:{index}:{outage}",
            ),
            row=row,
        )
        self.index = index
        self.outage = outage

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[discord.ui.View], match: re.Match[str]
    ) -> AckButton:
        return cls(int(match["index"]), int(match["outage"]))

    async def pressed(self, interaction: discord.Interaction[PoracleBot], server: ServerConfig) -> None:
        state = await interaction.client.watchdog.ack_state(server.name, self.outage)
        if not await _refused(interaction, server, state):
            await outgoing.open_form(interaction, AckForm(server, self.outage, self.custom_id))


async def _refused(interaction: discord.Interaction, server: ServerConfig, state: AckResult) -> bool:
    """Tell the admin (privately) why this outage cannot be acknowledged, if it cannot."""
    if state.over:
        await outgoing.reply_privately(interaction, f"**{server.name}**'s outage is over: nothing to acknowledge.")
    elif state.ack is not None and not state.recorded:
        await outgoing.reply_privately(
            interaction, f"**{server.name}**'s outage was already acknowledged by {ack_words(state.ack)}"
        )
    else:
        return False
    return True


class AckForm(discord.ui.Modal):
    """The form behind Acknowledge: an optional reason. Sending it records the acknowledgement and edits the
    alert it was opened from."""

    def __init__(self, server: ServerConfig, outage: int, button_id: str) -> None:
        super().__init__(title=f"{ACKNOWLEDGE} {server.name}", timeout=FORM_TIMEOUT)
        self.server = server
        self.outage = outage
        self.button_id = button_id
        self.reason: discord.ui.TextInput[AckForm] = discord.ui.TextInput(
            required=False, max_length=REASON_LENGTH, placeholder="e.g. on it, the database is being moved"
        )
        self.add_item(discord.ui.Label(text=REASON_LABEL, component=self.reason))

    async def interaction_check(self, interaction: discord.Interaction[PoracleBot]) -> bool:  # type: ignore[override]
        return await admins_only(interaction)  # again: roles may have changed while the form was open

    async def on_submit(self, interaction: discord.Interaction[PoracleBot]) -> None:  # type: ignore[override]
        # One line, no terminal codes: the reason goes into the log and the alert as typed otherwise.
        typed = self.reason.value
        reason = " ".join(clean_output(typed, len(typed) + 1).split())[:REASON_LENGTH]
        watchdog = interaction.client.watchdog
        result = await watchdog.acknowledge(self.server.name, self.outage, who(interaction.user), reason)
        if await _refused(interaction, self.server, result) or result.ack is None:
            return
        alert = interaction.message
        if alert is None or not alert.embeds:  # the alert was deleted meanwhile: the acknowledgement stands
            await outgoing.reply_privately(interaction, f"Acknowledged **{self.server.name}**'s outage.")
            return
        view, named = acknowledged_view(alert, self.button_id)
        embed = acknowledged_embed(alert.embeds[0], result.ack, named=named)
        await outgoing.update_clicked(interaction, embeds=[embed, *alert.embeds[1:]], view=view)

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        log.error("Acknowledging %s failed", self.server.name, exc_info=error)
        await outgoing.reply_privately(interaction, "Something went wrong; the error was logged.")


def acknowledged_view(alert: discord.Message, done: str) -> tuple[discord.ui.View, bool]:
    """The alert's buttons as they are, the Acknowledge button `done` (its custom id) disabled; and whether
    the buttons name their servers (an alert about several)."""
    view = discord.ui.View(timeout=None)
    named = False
    for row, component in enumerate(alert.components):
        for child in getattr(component, "children", ()):
            item = _alert_button(child, row)
            if item is None:
                continue
            if isinstance(item, AckButton):
                named = named or item.item.label != ACKNOWLEDGE
                if item.custom_id == done:
                    item.item.disabled = True
                    item.item.label = cut(f"{ACKNOWLEDGED}{(item.item.label or '')[len(ACKNOWLEDGE) :]}", BUTTON_LABEL)
            view.add_item(item)
    return view, named


def _alert_button(child: object, row: int) -> RestartButton | AckButton | None:
    """An alert's button, from the message, as the dynamic item it was sent as (label and state kept)."""
    if not isinstance(child, discord.Button) or child.custom_id is None:
        return None
    item: RestartButton | AckButton
    if match := RestartButton.__discord_ui_compiled_template__.fullmatch(child.custom_id):
        item = RestartButton(int(match["index"]), row=row)
    elif match := AckButton.__discord_ui_compiled_template__.fullmatch(child.custom_id):
        item = AckButton(int(match["index"]), int(match["outage"]), row=row)
    else:
        return None
    item.item.label = child.label
    item.item.disabled = child.disabled
    return item
