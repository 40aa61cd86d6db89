"""Discord's size limits, and how a message is made to fit them whatever names and outputs went in.

Discord rejects an oversized message with HTTP 400, so the action that sent it fails. The builders in
embeds.py aim to fit (compact lines, shared room for outputs); `fit` is the guarantee: bot/discord_bot/outgoing.py
passes every message through it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import discord

CONTENT = 2000
EMBEDS = 10
EMBED_TOTAL = 6000  # all the embeds of one message together
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
AUTHOR = 256
BUTTON_LABEL = 80
CHOICES = 25
CHOICE = 100  # an autocomplete choice's name and value
MODAL_TITLE = 45
INPUT_LABEL = 45
ATTACHMENT = 8 * 1024 * 1024  # bytes of one file: the smallest upload limit Discord has given bots
FILE_NAME = 100  # characters of an attachment's name, kept short and plain

ELLIPSIS = "…"


def cut(text: str, limit: int) -> str:
    """`text`, or its start and an ellipsis when longer than `limit`."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def cut_tail(text: str, limit: int) -> str:
    """`text`, or an ellipsis and its end (where command output shows the error)."""
    return text if len(text) <= limit else ELLIPSIS + text[-(limit - len(ELLIPSIS)) :]


@dataclass(frozen=True, slots=True)
class Fitted:
    content: str | None
    embeds: list[discord.Embed]


_NOTE_ROOM = 40  # kept free for the footer note that says what was left out


def fit(
    content: str | None = None, embeds: Sequence[discord.Embed] = (), *, left_out: str = "{n} more not shown"
) -> Fitted:
    """The message cut to Discord's limits: content, each embed's parts, at most 10 embeds and 6000 characters
    across them. The first embed is shortened to fit; a later one goes whole or not at all, and `left_out`
    (with {n}, how many) is said in the last embed's footer. The caller's embeds are not changed."""
    kept: list[discord.Embed] = []
    room = EMBED_TOTAL
    for embed in embeds[:EMBEDS]:
        fitted = fit_embed(embed.copy(), room if not kept else EMBED_TOTAL)
        if kept and len(fitted) > room - _NOTE_ROOM:
            break
        kept.append(fitted)
        room -= len(fitted)
    if kept and len(kept) < len(embeds):
        _note(kept[-1], left_out.format(n=len(embeds) - len(kept)), room + len(kept[-1]))
    return Fitted(None if content is None else cut(content, CONTENT), kept)


def fit_embed(embed: discord.Embed, room: int = EMBED_TOTAL) -> discord.Embed:
    """Each part of `embed` cut to its limit, at most 25 fields, then fields dropped from the end (and the
    description shortened) until the whole takes at most `room` characters. Changes and returns `embed`."""
    if embed.title:
        embed.title = cut(embed.title, TITLE)
    if embed.description:
        embed.description = cut(embed.description, DESCRIPTION)
    if embed.author.name:
        embed.set_author(name=cut(embed.author.name, AUTHOR), url=embed.author.url, icon_url=embed.author.icon_url)
    if embed.footer.text:
        embed.set_footer(text=cut(embed.footer.text, FOOTER), icon_url=embed.footer.icon_url)
    fields = [
        (cut(f.name or "\u200b", FIELD_NAME), cut(f.value or "\u200b", FIELD_VALUE), f.inline) for f in embed.fields
    ]
    embed.clear_fields()
    for name, value, inline in fields[:FIELDS]:
        embed.add_field(name=name, value=value, inline=inline)
    dropped = len(fields) - len(embed.fields)
    while len(embed) > room and embed.fields:
        embed.remove_field(-1)
        dropped += 1
    if dropped:
        _note(embed, f"{dropped} more not shown", room)
    if len(embed) > room and embed.description:
        embed.description = cut(embed.description, max(1, len(embed.description) - (len(embed) - room)))
    return embed


def _note(embed: discord.Embed, note: str, room: int) -> None:
    """Say in the footer that something was left out, keeping the embed within `room`."""
    separator = " · "
    before = cut(embed.footer.text, FOOTER - len(note) - len(separator)) + separator if embed.footer.text else ""
    embed.set_footer(text=before + note)
    while len(embed) > room and embed.fields:
        embed.remove_field(-1)


def choices(names: Iterable[str]) -> list[discord.app_commands.Choice[str]]:
    """Autocomplete choices: at most 25, each name and value at most 100 characters."""
    return [discord.app_commands.Choice(name=cut(name, CHOICE), value=name[:CHOICE]) for name in names][:CHOICES]


def file_bytes(text: str) -> bytes:
    """`text` as UTF-8, its end kept (a log's newest lines) when longer than an attachment may be."""
    data = text.encode()
    return data if len(data) <= ATTACHMENT else data[-ATTACHMENT:].decode(errors="ignore").encode()


def file_name(name: str) -> str:
    """A name Discord shows as it is: letters, digits, `.`, `_` and `-` (others become `_`), at most 100."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._") or "file"
    return plain[-FILE_NAME:]
