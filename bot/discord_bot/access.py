"""Who may use the bot (members holding one of DISCORD_ADMIN_ROLE_IDS, checked on every interaction), and
how the log and the audit name them."""

from __future__ import annotations

import discord

from bot.core.service import Requester
from bot.core.store import Origin

REFUSAL = "Only Poracle admins can do that."


def who(user: discord.abc.User) -> str:
    """How the log names a Discord user: readable and unambiguous."""
    return f"{user.name} ({user.id})"


def requester(user: discord.abc.User, reply: str | None = None) -> Requester:
    """`reply`: the message where the user watches the outcome, as `channel_id/message_id`."""
    return Requester(Origin.DISCORD, who(user), reply)


def is_admin(interaction: discord.Interaction, admin_role_ids: frozenset[int]) -> bool:
    """Decided from the member data Discord sends with this very interaction, never from a cache of old ones."""
    user = interaction.user
    return isinstance(user, discord.Member) and any(role.id in admin_role_ids for role in user.roles)
