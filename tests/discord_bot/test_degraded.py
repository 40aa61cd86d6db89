"""Degraded servers end to end: the real bot watching a PoracleJS-like server whose IP allow-list refuses it
and a PoracleNG-like one that gets stuck, posting through the Discord double. The rules (thresholds, mutes,
the outbox, the stuck tracker) are tested fast in tests/core; here the wiring, once each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.clock import FakeClock
from tests.support.discord_double import DiscordDouble, Message
from tests.support.local_http import HttpServer
from tests.support.poracle_http import PoracleJsLike, PoracleNgLike, poracle_js, poracle_ng
from tests.support.world import ask_status, discord_env, rounds, running_bot, server_env

pytestmark = pytest.mark.usefixtures("token_stays_out_of_the_log")

DANGER = 4
WHITELIST = "ip 127.0.0.1 not in whitelist"


def alerts(discord: DiscordDouble) -> list[Message]:
    """The bot's embeds in the alert channel, prompts and answers to commands left out."""
    return [
        m
        for m in discord.channel_messages(discord.channel_id)
        if m.author.id == discord.bot_user.id and m.embeds and m.interaction_metadata is None
    ]


async def test_a_poraclejs_refusing_the_bot_is_announced_degraded_once_and_fully_online_once(
    discord_double: DiscordDouble, counter: HttpServer, tmp_path: Path
) -> None:
    live = (await discord_double.add_channel("poracle-status")).id
    js = PoracleJsLike(refusing=WHITELIST)
    async with poracle_js(js) as http:
        env = discord_env(discord_double, tmp_path / "data", PORACLE_STATUS_CHANNEL_ID=str(live))
        env |= server_env(1, "Main", http.url) | server_env(2, "Clock", counter.url)
        async with running_bot(discord_double, env, monitor=False) as bot:
            await rounds(bot, 1)
            assert alerts(discord_double) == []  # PORACLE_DOWN_AFTER=2: one refusal is not yet a degradation
            await rounds(bot, 4)
            (degraded,) = alerts(discord_double)
            status = await ask_status(discord_double)
            js.refusing = None
            await rounds(bot, 3)
    degraded_again, healthy = alerts(discord_double)
    assert degraded_again == degraded

    assert degraded.title == "🟡 Main is degraded"
    assert degraded.embeds[0]["footer"]["text"] == "degraded"
    assert degraded.fields["Reason"] == f"online, refuses the bot: {WHITELIST}"
    assert "server.ipWhitelist" in degraded.fields["What to do"]
    assert degraded.buttons == []  # a restart does not change an IP allow-list
    assert healthy.title == "🟢 Main is fully online again" and healthy.buttons == []

    assert status.title == "PoracleJS servers: 1/2 online, 1 degraded"
    assert status.fields["Main"].startswith(f"🟡 **online, refuses the bot: {WHITELIST}** · HTTP 200 · ")
    assert "uptime 24 h 100 % · 7 d 100 % · degraded 24 h 100 % · 7 d 100 %" in status.fields["Main"]
    (message,) = discord_double.channel_messages(live)
    during = [version for version in message.versions if "degraded" in version.embeds[0]["title"]]
    assert during and "online, refuses the bot" in str(during[-1].embeds[0]["fields"][0]["value"])
    assert message.versions[-1].embeds[0]["title"] == "PoracleJS servers: 2/2 online"


async def test_a_stuck_poracleng_is_announced_with_a_restart_button_for_its_queue_then_its_silence(
    discord_double: DiscordDouble, tmp_path: Path
) -> None:
    ng, clock = PoracleNgLike(queue=20, webhooks={"pokemon": 10}), FakeClock()
    async with poracle_ng(ng) as http:
        env = discord_env(discord_double, tmp_path / "data", PORACLE_QUEUE_LIMIT="200")
        env |= server_env(1, "NG", http.url) | {"PORACLE_SERVER_1_METRICS": "on"}
        async with running_bot(discord_double, env, monitor=False, clock=clock) as bot:
            await rounds(bot, 1, clock)
            for depth in (190, 260, 390):
                ng.queue, ng.webhooks["pokemon"] = depth, ng.webhooks["pokemon"] + 5
                await rounds(bot, 1, clock)
            ng.queue = 0
            await rounds(bot, 1, clock)  # the counter stopped at the last round
            await rounds(bot, 10, clock)  # ten minutes after it, and one more check
            status = await ask_status(discord_double)
    queue, drained, silent = alerts(discord_double)
    assert queue.title == "🟡 NG is degraded"
    assert queue.fields["Reason"] == "online, delivery queue 390 > 200"
    (button,) = queue.buttons
    assert button["label"] == "Restart" and button["style"] == DANGER
    assert drained.title == "🟢 NG is fully online again"
    assert silent.fields["Reason"] == "online, no webhooks for 11 min"  # the second such check declares it
    assert [b["label"] for b in silent.buttons] == ["Restart"]
    assert status.fields["NG"].startswith("🟡 **online, no webhooks for 12 min** · HTTP 200 · ")  # a minute on
    assert ng.metrics_asked == 16  # each round, and the status
