"""Outage and recovery alerts end to end: the real bot with real aiohttp health servers that go down and come
back, posting through the Discord double, with Discord misbehaving in the ways it does.

The first test runs the watchdog's own loop in real time (rounds every 0.2 s; `counter`, a server that always
answers, counts them); the others drive the rounds themselves. The rules (thresholds, repeats, mutes, the
outbox) are tested fast against the core in tests/core/test_watchdog.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.discord_bot.client import PoracleBot
from tests.support.discord_double import DROP, DiscordDouble
from tests.support.fixtures import deliveries
from tests.support.local_http import HttpServer, SwitchableServer
from tests.support.sshd import SshServer
from tests.support.world import (
    alerts,
    ask_status,
    bot_front,
    discord_env,
    monitor_rounds,
    rounds,
    running_bot,
    server_env,
    ssh_env,
    wait_alert,
)

pytestmark = pytest.mark.usefixtures("token_stays_out_of_the_log")

DANGER = 4
SECONDARY = 2


@pytest.fixture
async def main_api(switchable: Callable[[], SwitchableServer]) -> SwitchableServer:
    api = switchable()
    await api.up()
    return api


def alert_env(discord: DiscordDouble, tmp_path: Path, main: SwitchableServer, counter: HttpServer) -> dict[str, str]:
    env = discord_env(
        discord, tmp_path / "data", PORACLE_HEALTH_INTERVAL="0.2", PORACLE_DOWN_AFTER="2", PORACLE_UP_AFTER="1"
    )
    return env | server_env(1, "Main", main.url) | server_env(2, "Clock", counter.url)


def driven_bot(
    discord: DiscordDouble, tmp_path: Path, main: SwitchableServer, counter: HttpServer
) -> contextlib.AbstractAsyncContextManager[PoracleBot]:
    """The bot watching Main and Clock, its rounds driven by the test."""
    return running_bot(discord, alert_env(discord, tmp_path, main, counter), monitor=False)


def timestamps(text: str) -> list[int]:
    """The Unix times of Discord timestamp markup (<t:1700000000:f>)."""
    return [int(t) for t in re.findall(r"<t:(\d+):[a-zA-Z]>", text)]


async def test_an_outage_and_its_recovery_are_announced_once_each(
    discord_double: DiscordDouble, main_api: SwitchableServer, counter: HttpServer, tmp_path: Path
) -> None:
    async with running_bot(discord_double, alert_env(discord_double, tmp_path, main_api, counter)):
        await monitor_rounds(counter, 3)
        assert alerts(discord_double) == []  # up at start-up: nothing to say

        went_down = time.time()
        await main_api.down()
        outage = await wait_alert(discord_double, "offline")
        await monitor_rounds(counter, 6)
        after_outage = alerts(discord_double)

        came_back = time.time()
        await main_api.up()
        recovery = await wait_alert(discord_double, "online")
        await monitor_rounds(counter, 6)
        after_recovery = alerts(discord_double)

    assert after_outage == [outage]  # no repeats while it stays down
    assert after_recovery == [outage, recovery]  # nor while it stays up
    assert outage.title == "🔴 Main is offline"
    assert outage.embeds[0]["footer"]["text"] == "offline"
    assert outage.fields["Reason"] == "connection refused"
    (since, _) = timestamps(outage.fields["Down since"])
    assert went_down - 1 <= since <= went_down + 1  # the first failed check, not the second
    restart, acknowledge = outage.buttons
    assert restart["label"] == "Restart" and restart["style"] == DANGER
    assert restart["custom_id"] == "poracle:restart:1"
    assert acknowledge["label"] == "Acknowledge" and acknowledge["style"] == SECONDARY
    assert acknowledge["custom_id"].startswith("poracle:ack:1:")  # and the outage, by its start in ms:
    assert int(acknowledge["custom_id"].rsplit(":", 1)[1]) // 1000 == since

    assert recovery.title == "🟢 Main is online again"
    assert recovery.embeds[0]["footer"]["text"] == "online"
    assert recovery.buttons == []
    down_for = recovery.fields["Down for"]
    assert re.fullmatch(r"\d+ s", down_for), down_for
    assert abs(int(down_for.split()[0]) - (came_back - went_down)) <= 2
    assert timestamps(recovery.fields["Down since"]) == [since]
    for message in discord_double.messages:
        assert not message.pings_everyone and message.pinged_role_ids == set() == message.pinged_user_ids


async def test_the_alerts_restart_button_asks_the_admin_and_refuses_others(
    discord_double: DiscordDouble,
    main_api: SwitchableServer,
    counter: HttpServer,
    sshd: SshServer,
    tmp_path: Path,
) -> None:
    marker = sshd.workdir / f"ran-{uuid.uuid4().hex}"
    env = alert_env(discord_double, tmp_path, main_api, counter) | ssh_env(sshd, tmp_path / "known_hosts")
    env |= server_env(1, "Main", main_api.url, sshd, f"echo ran >> {marker}")
    alice, bob = discord_double.admins
    carol = discord_double.member
    async with running_bot(discord_double, env, monitor=False) as bot:
        await main_api.down()
        await rounds(bot, 2)
        (outage,) = alerts(discord_double)

        refused = await discord_double.click(carol, outage, "Restart")
        refusal = await refused.wait_original()

        record = await discord_double.click(alice, outage, "Restart")
        prompt = await record.wait_original()
        (asked,) = prompt.embeds
        intruder = await discord_double.click(bob, prompt, "Confirm")
        not_yours = await intruder.wait_original()
        assert not marker.exists()

        await discord_double.click(alice, prompt, "Confirm")
        deadline = time.monotonic() + 10
        while not marker.exists():  # the restart command ran: the server comes back, as after a real one
            assert time.monotonic() < deadline, "the restart command never ran"
            await asyncio.sleep(0.02)
        await main_api.up()
        final = await record.wait_original(lambda m: m.title == "Main: restarted", timeout=15)
        await rounds(bot, 1)
        await wait_alert(discord_double, "online again")

    assert refusal.ephemeral and refusal.content == "Only Poracle admins can do that."
    assert not prompt.ephemeral
    assert asked["title"] == "Restart Main?"
    assert [b["label"] for b in prompt.versions[0].components[0]["components"]] == ["Confirm", "Cancel"]
    assert not_yours.ephemeral and not_yours.content == f"Only <@{alice.id}> can answer this prompt."
    assert marker.read_text().splitlines() == ["ran"]
    assert "Answers its health check again: **yes**" in final.fields["Main"]
    assert outage.buttons[0]["label"] == "Restart" and not outage.buttons[0].get("disabled")


async def test_after_a_dropped_gateway_commands_and_alerts_keep_working(
    discord_double: DiscordDouble, main_api: SwitchableServer, counter: HttpServer, tmp_path: Path
) -> None:
    async with driven_bot(discord_double, tmp_path, main_api, counter) as bot:
        await rounds(bot, 1)
        await discord_double.drop_gateway()
        await discord_double.wait_until_ready()
        assert discord_double.gateway.resumes == 1
        assert discord_double.gateway.identifies == 1  # resumed, not a new session

        status = await ask_status(discord_double)
        await main_api.down()
        await rounds(bot, 4)
    assert status.title == "PoracleJS servers: 2/2 online"
    (outage,) = alerts(discord_double)
    assert outage.title == "🔴 Main is offline"


async def test_alerts_that_waited_for_discord_go_out_as_soon_as_it_connects(
    discord_double: DiscordDouble, main_api: SwitchableServer, counter: HttpServer, tmp_path: Path
) -> None:
    # Rounds before the bot ever connected: the outage waits in the outbox, and goes out on connecting
    # rather than at the next round.
    env = alert_env(discord_double, tmp_path, main_api, counter)
    await main_api.down()
    async with bot_front(env) as front, front.service:
        await front.watchdog.run_round()
        await front.watchdog.run_round()
        assert deliveries(tmp_path / "data") == [("outage", "Main", "pending")]
        checks = len(counter.requests)
        async with discord_double.connected(front.new_client()):
            outage = await discord_double.wait_for_message(lambda m: "Main is offline" in m.text)
        assert len(counter.requests) == checks  # no round ran meanwhile
    assert deliveries(tmp_path / "data") == [("outage", "Main", "delivered")]
    assert alerts(discord_double) == [outage]


async def test_a_rate_limited_alert_still_lands_exactly_once(
    discord_double: DiscordDouble, main_api: SwitchableServer, counter: HttpServer, tmp_path: Path
) -> None:
    async with driven_bot(discord_double, tmp_path, main_api, counter) as bot:
        await rounds(bot, 1)
        fault = discord_double.fail_next("POST", "/channels/*/messages", 429, retry_after=0.05)
        await main_api.down()
        await rounds(bot, 5)
    assert fault.hits == 1
    (outage,) = alerts(discord_double)
    assert outage.title == "🔴 Main is offline"
    posts = discord_double.requests_to("POST", "/channels/*/messages")
    assert [r.status for r in posts] == [429, 200]


@pytest.mark.parametrize("trouble", ["dropped", "erroring"])
async def test_discord_not_answering_alert_posts_fails_no_round_and_is_logged_once(
    trouble: str,
    discord_double: DiscordDouble,
    main_api: SwitchableServer,
    counter: HttpServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The gateway stays up while the alert's post is cut off unanswered, or gets a 503: Discord away or
    # erroring, not refusing. No round fails; one line says so, one more when Discord answers again.
    status, error = {
        "dropped": (DROP, "ServerDisconnectedError: Server disconnected"),
        "erroring": (503, "DiscordServerError: 503 Service Unavailable (error code: 0): 503: Server Error"),
    }[trouble]
    async with driven_bot(discord_double, tmp_path, main_api, counter) as bot:
        await rounds(bot, 1)
        fault = discord_double.fail_next("POST", "/channels/*/messages", status, times=3)
        await main_api.down()
        await rounds(bot, 4)  # the outage from the second failed check on: three posts that fail
        assert fault.hits == 3 and alerts(discord_double) == []
        await rounds(bot, 1)
    (outage,) = alerts(discord_double)
    assert outage.title == "🔴 Main is offline"
    said = [r for r in caplog.records if r.name.startswith("bot.") and r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in said if "Discord" in r.getMessage()] == [
        f"Cannot reach Discord to post alerts ({error}); trying again later"
    ]
    assert all(r.exc_info is None for r in said)
    assert "Discord answers again: able to post alerts" in caplog.text


@pytest.mark.parametrize("trouble", ["forbidden", "missing"])
async def test_an_alert_channel_refusing_posts_is_logged_and_the_alert_delivered_once_it_works(
    discord_double: DiscordDouble,
    main_api: SwitchableServer,
    counter: HttpServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    trouble: str,
) -> None:
    channel = discord_double.channel_id
    complaint = {
        "forbidden": f"Cannot post alerts in channel {channel}: the bot needs View Channel, Send Messages and "
        "Embed Links there (DISCORD_ALERT_CHANNEL_ID)",
        "missing": f"Channel {channel} does not exist: check DISCORD_ALERT_CHANNEL_ID",
    }[trouble]
    async with driven_bot(discord_double, tmp_path, main_api, counter) as bot:
        elsewhere = await discord_double.add_channel("ops")
        await rounds(bot, 1)
        if trouble == "forbidden":
            discord_double.forbid_channel(channel)
        else:
            await discord_double.remove_channel(channel)
        await main_api.down()
        await rounds(bot, 4)
        status = await ask_status(discord_double, elsewhere.id)
        assert alerts(discord_double) == []
        if trouble == "forbidden":  # allowed again: the alert kept in the outbox goes out, once
            discord_double.forbid_channel(channel, False)
            await rounds(bot, 3)
    assert status.title == "PoracleJS servers: 1/2 online"
    complaints = [r for r in caplog.records if r.getMessage() == complaint]
    assert len(complaints) == 3  # tried again every round since the outage
    if trouble == "forbidden":
        (outage,) = alerts(discord_double)
        assert outage.title == "🔴 Main is offline"
    else:
        assert [m for m in discord_double.messages if m.embeds and m.interaction_metadata is None] == []


async def test_a_broken_answer_from_discord_fails_that_round_and_loses_nothing(
    discord_double: DiscordDouble, main_api: SwitchableServer, counter: HttpServer, tmp_path: Path
) -> None:
    # Discord answering the alert post with something that is not a message: discord.py raises KeyError
    # while reading it, which nothing in the bot expects. That round fails; the alert is neither lost nor
    # sent twice (the loop's handling of a failed round: tests/core/test_watchdog.py).
    fault = discord_double.fail_next("POST", "/channels/*/messages", 200, message="not a message")
    async with driven_bot(discord_double, tmp_path, main_api, counter) as bot:
        await rounds(bot, 1)
        await main_api.down()
        await rounds(bot, 1)
        with pytest.raises(KeyError):
            await rounds(bot, 1)
        await rounds(bot, 3)
    assert fault.hits == 1
    (outage,) = alerts(discord_double)
    assert outage.title == "🔴 Main is offline"


async def test_servers_down_in_the_same_round_share_one_alert_with_a_restart_button_each(
    discord_double: DiscordDouble, switchable: Callable[[], SwitchableServer], counter: HttpServer, tmp_path: Path
) -> None:
    alpha, beta = switchable(), switchable()
    env = discord_env(discord_double, tmp_path / "data", PORACLE_DOWN_AFTER="1")
    env |= server_env(1, "Alpha", alpha.url) | server_env(2, "Beta", beta.url) | server_env(3, "Steady", counter.url)
    async with running_bot(discord_double, env, monitor=False) as bot:
        await rounds(bot, 2)
        await alpha.up()
        await beta.up()
        await rounds(bot, 2)
    outage, recovery = alerts(discord_double)
    assert outage.title == "🔴 Offline: Alpha, Beta"
    assert list(outage.fields) == ["Alpha", "Beta"]
    assert all("connection refused" in value for value in outage.fields.values())
    labels = [[b["label"] for b in row["components"]] for row in outage.components]
    assert labels == [["Restart Alpha", "Acknowledge Alpha"], ["Restart Beta", "Acknowledge Beta"]]
    assert [b["custom_id"] for b in outage.buttons][::2] == ["poracle:restart:1", "poracle:restart:2"]
    assert recovery.title == "🟢 Online again: Alpha, Beta"
    assert list(recovery.fields) == ["Alpha", "Beta"]
    assert all("down for" in value for value in recovery.fields.values())
    assert recovery.buttons == []
