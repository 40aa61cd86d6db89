"""The one way out: every message the bot sends or edits in Discord goes through here, fitted to Discord's
limits (limits.fit) whatever names and outputs it holds. tests/discord_bot/test_outgoing.py checks that no
other module of the front calls discord.py's send or edit methods itself.

Nothing sent here pings anyone (the client's allowed_mentions are none, and posts say so again), except
the operator's alert role (DISCORD_ALERT_ROLE_ID) on the alerts that page: `post(..., ping_role=ID)`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord.utils import MISSING

from bot.discord_bot.limits import CONTENT, MODAL_TITLE, cut, file_bytes, file_name, fit

Channel = discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.StageChannel


@dataclass(frozen=True, slots=True)
class TextFile:
    """A text attached as a file (a log too long to show): cut to the attachment limit, its end kept."""

    name: str
    text: str

    def file(self) -> discord.File:
        return discord.File(io.BytesIO(file_bytes(self.text)), filename=file_name(self.name))


def _embeds(embeds: Sequence[discord.Embed] | None) -> Any:
    return MISSING if embeds is None else fit(None, embeds).embeds


async def respond(
    interaction: discord.Interaction,
    *,
    content: str | None = None,
    embeds: Sequence[discord.Embed] = (),
    view: discord.ui.View | None = None,
    ephemeral: bool = False,
) -> discord.InteractionCallbackResponse[Any]:
    """The first answer to an interaction; what Discord says of it (the message's id)."""
    fitted = fit(content, embeds)
    return await interaction.response.send_message(
        content=fitted.content, embeds=fitted.embeds, view=MISSING if view is None else view, ephemeral=ephemeral
    )


async def reply_privately(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer, whether or not the interaction was already answered."""
    content = cut(text, CONTENT)
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=True)
    else:
        await interaction.response.send_message(content, ephemeral=True)


async def edit_response(
    interaction: discord.Interaction,
    *,
    embeds: Sequence[discord.Embed] | None = None,
    view: Any = MISSING,
    attachment: TextFile | None = None,
) -> None:
    """Edit the interaction's first answer (its "thinking..." or its prompt); `view=None` removes the buttons."""
    files = MISSING if attachment is None else [attachment.file()]
    await interaction.edit_original_response(embeds=_embeds(embeds), view=view, attachments=files)


async def update_clicked(
    interaction: discord.Interaction, *, embeds: Sequence[discord.Embed] | None = None, view: Any = MISSING
) -> None:
    """Answer a button press by editing the message it was pressed on."""
    await interaction.response.edit_message(embeds=_embeds(embeds), view=view)


async def follow_up(interaction: discord.Interaction, *, embeds: Sequence[discord.Embed]) -> None:
    """One more message after the interaction's first answer."""
    await interaction.followup.send(embeds=fit(None, embeds).embeds)


async def open_form(interaction: discord.Interaction, modal: discord.ui.Modal) -> None:
    """Answer an interaction with a form; its title cut to Discord's 45 characters."""
    modal.title = cut(modal.title, MODAL_TITLE)
    await interaction.response.send_modal(modal)


async def post(
    channel: Channel,
    *,
    content: str | None = None,
    embeds: Sequence[discord.Embed] = (),
    view: discord.ui.View | None = None,
    ping_role: int | None = None,
) -> discord.Message:
    """A new message in a channel (alerts, announcements, the live status). `ping_role`: the message starts
    with that role's mention and pings it, and nothing else."""
    mentions = discord.AllowedMentions.none()
    if ping_role is not None:
        content = f"<@&{ping_role}>" + (f" {content}" if content else "")
        mentions.roles = [discord.Object(ping_role)]
    fitted = fit(content, embeds)
    return await channel.send(
        content=fitted.content,
        embeds=fitted.embeds,
        view=MISSING if view is None else view,
        allowed_mentions=mentions,
    )


async def edit_post(message: discord.PartialMessage, *, embeds: Sequence[discord.Embed]) -> None:
    """Edit a message the bot posted earlier (the live status)."""
    await message.edit(embeds=fit(None, embeds).embeds)
