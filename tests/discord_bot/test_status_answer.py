"""/poracle status through the Discord double: the last round's picture at once ("checking..." before any
round), then the same message edited as fresh checks come in, the last edit when the slowest is done, few
edits; a failure told to the admin alone. Timing bounds here are loose (a loaded 2-core box); the 100 ms
goals are measured by bench/status_10.py."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from bot.discord_bot.client import PoracleBot
from bot.discord_bot.status_answer import EDIT_GAP
from tests.support.discord_double import DiscordDouble, InteractionRecord, MessageVersion
from tests.support.local_http import delayed, http_server, hung_server
from tests.support.world import discord_env, final_status, rounds, running_bot, server_env

TIMEOUT = 2.0  # PORACLE_HEALTH_TIMEOUT: how long the hung server takes to count as offline

Start = Callable[[], AbstractAsyncContextManager[PoracleBot]]


@pytest.fixture
async def start(discord_double: DiscordDouble, tmp_path: Path) -> AsyncIterator[Start]:
    """The bot, watching Good (answers at once), Slow (after 0.5 s) and Hung (never); rounds driven by hand."""
    async with http_server() as good, http_server({"/health": delayed(0.5)}) as slow, hung_server() as hung:
        env = discord_env(discord_double, tmp_path / "data", PORACLE_HEALTH_TIMEOUT=str(TIMEOUT))
        env |= server_env(1, "Good", good.url) | server_env(2, "Slow", slow.url) | server_env(3, "Hung", hung.url)
        yield lambda: running_bot(discord_double, env, monitor=False)


@contextlib.asynccontextmanager
async def slow_servers(*delays: float) -> AsyncIterator[list[str]]:
    """Health servers answering after `delays` seconds each; their URLs."""
    async with contextlib.AsyncExitStack() as stack:
        made = [await stack.enter_async_context(http_server({"/health": delayed(d)})) for d in delays]
        yield [server.url for server in made]


def footer(version: MessageVersion) -> str:
    return str(version.embeds[0].get("footer", {}).get("text", ""))


def fields(version: MessageVersion) -> dict[str, str]:
    return {field["name"]: field["value"] for field in version.embeds[0]["fields"]}


async def ask(discord: DiscordDouble) -> tuple[InteractionRecord, float, float]:
    """alice's /poracle status: its record, and the seconds to the answer and to its final version."""
    started = time.monotonic()
    record = await discord.slash(discord.admins[0], "poracle", "status")
    answered = time.monotonic() - started
    await final_status(record, timeout=TIMEOUT + 5)
    return record, answered, time.monotonic() - started


async def test_the_last_round_at_once_then_the_fresh_checks_edited_in_few_times(
    discord_double: DiscordDouble, start: Start
) -> None:
    async with start() as bot:
        await rounds(bot, 1)
        record, answered, done = await ask(discord_double)
    message = record.original
    assert message is not None and not message.ephemeral
    first, *edits = message.versions
    assert answered < TIMEOUT / 2  # long before any check of this command could time out
    assert footer(first).startswith("as of ") and footer(first).endswith(" ago · checking...")
    assert all(value.endswith("⏳ checking...") for value in fields(first).values())
    assert "no answer within 2 s" in fields(first)["Hung"]  # the last round's finding, shown at once

    final = edits[-1]
    assert TIMEOUT <= done < TIMEOUT + 1.5  # waited for the hung check, and not much longer
    assert footer(final) == "Checked" and "checking" not in str(final.embeds)
    assert "online" in fields(final)["Good"] and "online" in fields(final)["Slow"]
    assert "offline" in fields(final)["Hung"] and "no answer within 2 s" in fields(final)["Hung"]
    assert final.embeds[0]["title"] == "PoracleJS servers: 2/3 online"

    # Good's answer edited in soon after; Slow's and Hung's only with the final edit (no edit between).
    assert len(edits) == 2, [footer(v) for v in message.versions]
    fresh, _ = edits
    assert not fields(fresh)["Good"].endswith("checking...") and fields(fresh)["Hung"].endswith("checking...")
    assert len(discord_double.requests_to("PATCH", "/webhooks/*/messages/@original")) == 2
    assert not discord_double.requests_to("POST", "/webhooks/*")  # no follow-up messages


async def test_before_any_round_the_answer_says_checking(discord_double: DiscordDouble, start: Start) -> None:
    async with start():
        record, answered, _ = await ask(discord_double)
    assert record.original is not None
    first, *_, final = record.original.versions
    assert answered < TIMEOUT / 2
    assert first.embeds[0]["title"] == "PoracleJS servers: checking..." and footer(first) == "checking..."
    assert fields(first) == dict.fromkeys(["Good", "Slow", "Hung"], "⏳ checking...")
    assert final.embeds[0]["title"] == "PoracleJS servers: 2/3 online" and footer(final) == "Checked"


async def test_edits_before_the_final_one_keep_their_distance(discord_double: DiscordDouble, tmp_path: Path) -> None:
    """Servers answering one after another over 4 s: edits no closer than EDIT_GAP, the final one at once."""
    async with slow_servers(*(0.4 + 0.6 * i for i in range(7))) as urls:
        env = discord_env(discord_double, tmp_path / "data", PORACLE_HEALTH_TIMEOUT="5")
        for number, url in enumerate(urls, 1):
            env |= server_env(number, f"S{number}", url)
        async with running_bot(discord_double, env, monitor=False):
            started = time.monotonic()
            record = await discord_double.slash(discord_double.admins[0], "poracle", "status")
            message = await final_status(record, timeout=10)
            done = time.monotonic() - started
    *edits, final = message.versions[1:]
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(edits)]
    assert all(gap >= EDIT_GAP for gap in gaps), gaps
    assert 1 <= len(edits) <= 3, gaps  # at most 3 edits in any 5 s, the final one making 4 of Discord's 5
    assert footer(final) == "Checked" and done < 4.0 + 1.5  # the slowest answered after 4 s


async def test_a_failure_is_told_to_the_admin_alone_and_logged(
    discord_double: DiscordDouble, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    discord_double.fail_next("PATCH", "/webhooks/*/messages/@original", 400, code=50035, times=5)
    async with start() as bot:
        await rounds(bot, 1)
        record = await discord_double.slash(discord_double.admins[0], "poracle", "status")
        told = await record.wait_followup(timeout=TIMEOUT + 5)
    alice = discord_double.admins[0]
    assert told.ephemeral and told.content == "The status check failed; the error was logged."
    public = [m for m in discord_double.messages if not m.ephemeral]
    assert [m.id for m in public] == [record.original_message_id]  # the answer, left as it was shown
    assert not any("wrong" in m.text or "failed" in m.text for m in public)
    (logged,) = [r for r in caplog.records if r.getMessage() == f"/poracle status failed for {alice.name} ({alice.id})"]
    assert logged.exc_info is not None
