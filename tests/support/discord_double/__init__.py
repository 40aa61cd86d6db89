"""A loopback test double of Discord's gateway and REST API for the unmodified discord.py client.

See README.md beside this file.
"""

from .driver import DiscordDouble
from .faults import DROP, Fault
from .fixture import discord_double, point_discord_at
from .model import Channel, InteractionRecord, Message, MessageVersion, RequestRecord, Role, User

__all__ = [
    "DROP",
    "Channel",
    "DiscordDouble",
    "Fault",
    "InteractionRecord",
    "Message",
    "MessageVersion",
    "RequestRecord",
    "Role",
    "User",
    "discord_double",
    "point_discord_at",
]
