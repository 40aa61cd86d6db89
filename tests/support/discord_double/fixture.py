"""pytest fixtures: a started :class:`DiscordDouble` with discord.py pointed at it.

Registered through ``pytest_plugins`` in ``tests/conftest.py``. Only the test process is patched
(``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY``, undone after each test);
the bot's production code has no test switch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord.gateway
import discord.http
import pytest
import yarl

from .driver import DiscordDouble

__all__ = ["discord_double", "point_discord_at"]


def point_discord_at(double: DiscordDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make discord.py's REST client and gateway use ``double`` for the rest of the test."""
    monkeypatch.setattr(discord.http.Route, "BASE", double.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(double.gateway_url))


@pytest.fixture
async def discord_double(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordDouble]:
    """A running double on a free 127.0.0.1 port, with discord.py pointed at it."""
    double = DiscordDouble()
    await double.start()
    point_discord_at(double, monkeypatch)
    try:
        yield double
    finally:
        await double.stop()
