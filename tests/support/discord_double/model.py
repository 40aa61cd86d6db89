"""What the double's Discord knows: a guild with roles, channels and members, the messages the bot
posted (with their edit history), the synced commands, the interactions in flight and the request log.

Everything here is plain data plus JSON payload builders shaped like Discord's API v10. Waiting is
done through :meth:`DiscordState.wait_until`, which sleeps on an :class:`asyncio.Event` that is set
whenever the state changes (no polling).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")
JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1420070400000
_FIXED_EPOCH_MS = 1704067200000  # 2024-01-01: the stable ids of the seeded world are minted from here

EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_EMBEDS = 1 << 2
SUPPRESS_NOTIFICATIONS = 1 << 12

# Permission bits the seeded roles use.
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
ADMINISTRATOR = 1 << 3
DEFAULT_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | READ_MESSAGE_HISTORY | USE_APPLICATION_COMMANDS


def fixed_snowflake(n: int) -> int:
    """A stable snowflake for seeded objects (same value in every run)."""
    return ((_FIXED_EPOCH_MS - DISCORD_EPOCH_MS) << 22) | n


class SnowflakeFactory:
    """Mints increasing snowflakes whose timestamp is now (so ``created_at`` looks right)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._last = 0

    def __call__(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (next(self._counter) & 0xFFF)
        self._last = value = max(value, self._last + 1)
        return value


def iso(dt: datetime) -> str:
    return dt.isoformat()


def now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- guild objects


@dataclass(eq=False)
class User:
    id: int
    name: str
    bot: bool = False
    joined_at: datetime = field(default_factory=now)
    role_ids: list[int] = field(default_factory=list)

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.name.capitalize(),
            "avatar": None,
            "public_flags": 0,
        }
        if self.bot:
            data["bot"] = True
        return data

    def __repr__(self) -> str:
        return f"User({self.name!r}, id={self.id})"


@dataclass(eq=False)
class Role:
    id: int
    name: str
    permissions: int = 0
    position: int = 0
    color: int = 0
    mentionable: bool = False

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass(eq=False)
class Channel:
    """A guild text channel. ``post_error`` makes message posts fail like Discord would."""

    id: int
    name: str
    guild_id: int
    position: int = 0
    post_error: tuple[int, int, str] | None = None  # (HTTP status, Discord code, message)

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }


@dataclass(eq=False)
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, User] = field(default_factory=dict)

    def permissions_of(self, user: User) -> int:
        perms = self.roles[self.id].permissions  # @everyone has the guild's id
        for role_id in user.role_ids:
            perms |= self.roles[role_id].permissions
        if perms & ADMINISTRATOR or user.id == self.owner_id:
            return (1 << 53) - 1
        return perms

    def member_payload(self, user: User, *, with_user: bool = True, with_permissions: bool = False) -> JSON:
        data: JSON = {
            "roles": [str(r) for r in user.role_ids],
            "nick": None,
            "avatar": None,
            "banner": None,
            "joined_at": iso(user.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = user.payload()
        if with_permissions:
            data["permissions"] = str(self.permissions_of(user))
        return data

    def payload(self) -> JSON:
        """The GUILD_CREATE payload. ``member_count == len(members)`` so discord.py never chunks."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [r.payload() for r in self.roles.values()],
            "channels": [c.payload() for c in self.channels.values()],
            "threads": [],
            "members": [self.member_payload(u) for u in self.members.values()],
            "member_count": len(self.members),
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "large": False,
            "unavailable": False,
            "lazy": True,
            "joined_at": iso(now()),
            "max_members": 500000,
            "application_id": None,
            "nsfw": False,
        }


# --------------------------------------------------------------------------- messages

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


class Mentions:
    """Who Discord notifies of a message's content, given its ``allowed_mentions`` (the version posted is
    what notifies: an edit never pings anew)."""

    content: str
    allowed_mentions: JSON | None

    @property
    def pinged_user_ids(self) -> set[int]:
        """Users the content mentions that Discord would notify, given ``allowed_mentions``."""
        ids = {int(m) for m in _USER_MENTION.findall(self.content)}
        am = self.allowed_mentions
        if am is None:
            return ids
        if "users" in am.get("parse", []):
            return ids
        return ids & {int(u) for u in am.get("users", [])}

    @property
    def pinged_role_ids(self) -> set[int]:
        ids = {int(m) for m in _ROLE_MENTION.findall(self.content)}
        am = self.allowed_mentions
        if am is None or "roles" in am.get("parse", []):
            return ids
        return ids & {int(r) for r in am.get("roles", [])}

    @property
    def pings_everyone(self) -> bool:
        if "@everyone" not in self.content and "@here" not in self.content:
            return False
        am = self.allowed_mentions
        return am is None or "everyone" in am.get("parse", [])


@dataclass(frozen=True)
class MessageVersion(Mentions):
    """One state of a message as Discord showed it (the original post or the result of an edit)."""

    content: str
    embeds: tuple[JSON, ...]
    components: tuple[JSON, ...]
    flags: int
    allowed_mentions: JSON | None
    at: datetime


@dataclass(eq=False)
class Message(Mentions):
    """A message as Discord would show it. ``history`` holds earlier versions, oldest first."""

    id: int
    channel_id: int
    guild_id: int
    author: User
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    flags: int = 0
    allowed_mentions: JSON | None = None
    attachments: list[JSON] = field(default_factory=list)
    type: int = 0
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: JSON | None = None
    interaction: JSON | None = None
    created_at: datetime = field(default_factory=now)
    edited_at: datetime | None = None
    deleted: bool = False
    history: list[MessageVersion] = field(default_factory=list)
    # When this version appeared (time.monotonic()): a person cannot press its buttons before seeing it.
    shown_monotonic: float = field(default_factory=time.monotonic)

    # -- reading helpers for tests
    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while a deferred ("thinking...") response has not been filled in."""
        return bool(self.flags & LOADING)

    @property
    def versions(self) -> list[MessageVersion]:
        """Every state of the message in order, the current one last."""
        return [*self.history, self.snapshot()]

    @property
    def text(self) -> str:
        """Content plus embed titles, descriptions, field names/values and footers, for searching."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title", ""), embed.get("description", "")]
            for f in embed.get("fields", []):
                parts += [f.get("name", ""), f.get("value", "")]
            parts.append(embed.get("footer", {}).get("text", ""))
        return "\n".join(p for p in parts if p)

    @property
    def title(self) -> str:
        """The first embed's title ("" without one)."""
        return str(self.embeds[0].get("title", "")) if self.embeds else ""

    @property
    def fields(self) -> dict[str, str]:
        """The first embed's fields, name -> value."""
        return {f["name"]: f["value"] for f in self.embeds[0].get("fields", [])} if self.embeds else {}

    @property
    def buttons(self) -> list[JSON]:
        return [c for c in iter_components(self.components) if c.get("type") == 2]

    def button(self, label: str) -> JSON:
        found = [b for b in self.buttons if b.get("label") == label]
        if not found:
            labels = [b.get("label") for b in self.buttons]
            raise LookupError(f"no button labelled {label!r} on message {self.id}; buttons: {labels}")
        return found[0]

    # -- state changes
    def snapshot(self) -> MessageVersion:
        return MessageVersion(
            content=self.content,
            embeds=tuple(self.embeds),
            components=tuple(self.components),
            flags=self.flags,
            allowed_mentions=self.allowed_mentions,
            at=self.edited_at or self.created_at,
        )

    def apply_edit(self, body: JSON) -> None:
        """Apply a PATCH body the way Discord does: only the fields present change."""
        self.history.append(self.snapshot())
        self.shown_monotonic = time.monotonic()
        if "content" in body:
            self.content = body["content"] or ""
        if "embeds" in body:
            self.embeds = list(body["embeds"] or [])
        if "components" in body:
            self.components = list(body["components"] or [])
        if "allowed_mentions" in body:
            self.allowed_mentions = body["allowed_mentions"]
        if "attachments" in body and body["attachments"] is not None:
            self.attachments = list(body["attachments"])
        if "flags" in body and body["flags"] is not None:
            # Only SUPPRESS_EMBEDS (and the like) can change; ephemeral is fixed at creation.
            self.flags = (self.flags & EPHEMERAL) | (int(body["flags"]) & ~(EPHEMERAL | LOADING))
        self.flags &= ~LOADING  # any edit fills in a deferred response
        self.edited_at = now()

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at) if self.edited_at else None,
            "tts": False,
            "mention_everyone": self.pings_everyone,
            "mentions": [],
            "mention_roles": [str(r) for r in self.pinged_role_ids],
            "attachments": self.attachments,
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
        }
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        if self.interaction is not None:
            data["interaction"] = self.interaction
        return data

    def __repr__(self) -> str:
        flags = " ephemeral" if self.ephemeral else ""
        return f"Message(id={self.id}, channel={self.channel_id}{flags}, text={self.text[:60]!r})"


def iter_components(components: list[JSON]) -> Iterator[JSON]:
    """Every component, depth first (action rows, containers, sections and a form's labels included)."""
    for comp in components:
        yield comp
        yield from iter_components(comp.get("components", []))
        for key in ("accessory", "component"):
            if isinstance(comp.get(key), dict):
                yield from iter_components([comp[key]])


# --------------------------------------------------------------------------- interactions


@dataclass(eq=False)
class InteractionRecord:
    """An interaction the double sent to the bot, and how the bot answered it.

    ``response_type`` is the callback type the bot used (4, 5, 6, 7, 8 or 9). ``original`` is the
    message ``@original`` refers to: the response message for types 4/5, or the clicked message for 6/7.
    ``modal`` is the form the bot answered with (type 9).
    """

    id: int
    token: str
    type: int  # 2 command, 3 component, 4 autocomplete, 5 form submitted
    user: User
    channel_id: int
    data: JSON
    payload: JSON
    created_monotonic: float
    state: DiscordState
    source_message_id: int | None = None
    response_type: int | None = None
    response_data: JSON | None = None
    responded_monotonic: float | None = None  # when the bot's callback arrived
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)

    @property
    def responded(self) -> bool:
        return self.response_type is not None

    @property
    def modal(self) -> JSON | None:
        return self.response_data if self.response_type == 9 else None

    @property
    def choices(self) -> list[JSON] | None:
        """Autocomplete choices the bot answered with (callback type 8)."""
        if self.response_type != 8 or self.response_data is None:
            return None
        return list(self.response_data.get("choices", []))

    @property
    def original(self) -> Message | None:
        if self.original_message_id is None:
            return None
        return self.state.messages.get(self.original_message_id)

    @property
    def followups(self) -> list[Message]:
        return [self.state.messages[i] for i in self.followup_ids]

    async def wait_response(self, timeout: float = 3.0) -> InteractionRecord:
        """Wait until the bot has called back (what Discord demands within 3 seconds)."""
        await self.state.wait_until(
            lambda: self if self.responded else None,
            timeout,
            f"a response to interaction {self.id} (Discord would show 'The application did not respond')",
        )
        return self

    async def wait_original(self, predicate: Callable[[Message], bool] | None = None, timeout: float = 3.0) -> Message:
        """Wait until ``@original`` exists (and matches ``predicate``, e.g. ``lambda m: not m.loading``)."""

        def check() -> Message | None:
            msg = self.original
            if msg is None or (predicate is not None and not predicate(msg)):
                return None
            return msg

        return await self.state.wait_until(check, timeout, f"the original response of interaction {self.id}")

    async def wait_followup(self, predicate: Callable[[Message], bool] | None = None, timeout: float = 3.0) -> Message:
        def check() -> Message | None:
            return next((m for m in self.followups if predicate is None or predicate(m)), None)

        return await self.state.wait_until(check, timeout, f"a follow-up to interaction {self.id}")

    def __repr__(self) -> str:
        return f"InteractionRecord(id={self.id}, type={self.type}, response_type={self.response_type})"


@dataclass
class RequestRecord:
    """One REST request the bot made, as received."""

    method: str
    path: str  # relative to /api/v10, e.g. "/channels/123/messages"
    query: dict[str, str]
    json: Any
    status: int = 0


# --------------------------------------------------------------------------- the whole state


class DiscordState:
    """The double's world. All mutation goes through here so waiters are woken up."""

    def __init__(self) -> None:
        self._changed: asyncio.Event | None = None
        self.new_id = SnowflakeFactory()
        self.token = "poracle-double.bot-token"
        self.bot_user = User(fixed_snowflake(1), "poracle-bot", bot=True)
        self.application_id = self.bot_user.id
        self.users: dict[int, User] = {}
        everyone = Role(fixed_snowflake(10), "@everyone", permissions=DEFAULT_PERMISSIONS)
        self.guild = Guild(id=everyone.id, name="Poracle Test Guild", owner_id=fixed_snowflake(31))
        self.guild.roles[everyone.id] = everyone
        self.admin_role = Role(fixed_snowflake(11), "Poracle Admin", position=1, color=0xE67E22)
        self.guild.roles[self.admin_role.id] = self.admin_role
        self.alert_channel = Channel(fixed_snowflake(20), "poracle-alerts", self.guild.id)
        self.guild.channels[self.alert_channel.id] = self.alert_channel
        self.add_member(self.bot_user)
        self.alice = self.add_member(User(fixed_snowflake(31), "alice", role_ids=[self.admin_role.id]))
        self.bob = self.add_member(User(fixed_snowflake(32), "bob", role_ids=[self.admin_role.id]))
        self.carol = self.add_member(User(fixed_snowflake(33), "carol"))

        self.messages: dict[int, Message] = {}
        self.global_commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.requests: list[RequestRecord] = []
        self.uploads: dict[str, bytes] = {}  # what was uploaded, by attachment url

    # -- change notification
    def changed(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_until(self, check: Callable[[], T | None], timeout: float, what: str | Callable[[], str]) -> T:
        """Return ``check()`` once it is not None, waking on every state change; TimeoutError after."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what if isinstance(what, str) else what()}"
                )
            if self._changed is None:
                self._changed = asyncio.Event()
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    # -- guild
    def add_member(self, user: User) -> User:
        self.users[user.id] = user
        self.guild.members[user.id] = user
        self.changed()
        return user

    def add_channel(self, name: str) -> Channel:
        channel = Channel(self.new_id(), name, self.guild.id, position=len(self.guild.channels))
        self.guild.channels[channel.id] = channel
        self.changed()
        return channel

    # -- messages
    def add_message(self, message: Message) -> Message:
        self.messages[message.id] = message
        self.changed()
        return message

    def live_messages(self, channel_id: int | None = None) -> list[Message]:
        return [
            m for m in self.messages.values() if not m.deleted and (channel_id is None or m.channel_id == channel_id)
        ]

    # -- commands
    def commands_for(self, guild_id: int | None) -> list[JSON]:
        if guild_id is None:
            return self.global_commands
        return self.guild_commands.setdefault(guild_id, [])

    def find_command(self, name: str, guild_id: int) -> JSON | None:
        """A chat-input command the way a user's client would see it: guild commands first."""
        for cmd in [*self.guild_commands.get(guild_id, []), *self.global_commands]:
            if cmd["name"] == name and cmd.get("type", 1) == 1:
                return cmd
        return None
