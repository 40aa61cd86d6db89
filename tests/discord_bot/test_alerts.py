"""Outage and recovery alerts end to end: the real monitor loop with real aiohttp health servers that go
down and come back, posting through the Discord double, with Discord misbehaving in the ways it does.

The monitor's first round waits for discord.py's on_ready, which fires 2 s after the connection; the
tests wait for rounds with generous timeouts rather than touch the bot's internals. One extra server,
"Clock", always answers: every round checks it once, so its request count counts rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.discord_double import DiscordDouble, Message
from tests.support.local_http import HttpServer, http_server
from tests.support.sshd import SshServer
from tests.support.world import discord_env, running_bot, server_env, ssh_env

pytestmark = pytest.mark.usefixtures("token_stays_out_of_the_log")

FIRST_ROUND = 10.0  # on_ready (2 s after connecting) + a round, with a wide margin
DANGER = 4


class SwitchableApi:
    """A health server that can be taken down (its port then refuses) and brought back on the same port."""

    def __init__(self) -> None:
        self.port = 0
        self._running: contextlib.AsyncExitStack | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> None:
        assert self._running is None
        stack = contextlib.AsyncExitStack()
        server = await stack.enter_async_context(http_server(port=self.port))
        self.port, self._running = server.port, stack

    async def down(self) -> None:
        assert self._running is not None
        await self._running.aclose()
        self._running = None


@pytest.fixture
async def main_api() -> AsyncIterator[SwitchableApi]:
    api = SwitchableApi()
    await api.up()
    yield api
    with contextlib.suppress(AssertionError):
        await api.down()


@pytest.fixture
async def clock() -> AsyncIterator[HttpServer]:
    async with http_server() as server:
        yield server


def alert_env(discord: DiscordDouble, tmp_path: Path, main: SwitchableApi, clock: HttpServer) -> dict[str, str]:
    env = discord_env(
        discord,
        tmp_path / "data",
        PORACLE_HEALTH_INTERVAL="0.2",
        PORACLE_DOWN_AFTER="2",
        PORACLE_UP_AFTER="1",
    )
    return env | server_env(1, "Main", main.url) | server_env(2, "Clock", clock.url)


async def rounds(clock: HttpServer, count: int, timeout: float = FIRST_ROUND) -> None:
    """Wait until the monitor has started `count` more rounds."""
    target = len(clock.requests) + count
    deadline = time.monotonic() + timeout
    while len(clock.requests) < target:
        assert time.monotonic() < deadline, f"only {len(clock.requests)} of {target} rounds in {timeout} s"
        await asyncio.sleep(0.02)


def alerts(discord: DiscordDouble) -> list[Message]:
    """What the bot posted in the alert channel with an embed (alerts; not prompts or announcements)."""
    return [
        m
        for m in discord.channel_messages()
        if m.author.id == discord.bot_user.id and m.embeds and m.interaction_metadata is None
    ]


def title(message: Message) -> str:
    return str(message.embeds[0].get("title", ""))


def fields(message: Message) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message.embeds[0].get("fields", [])}


async def wait_alert(discord: DiscordDouble, words: str, timeout: float = 5.0) -> Message:
    return await discord.wait_for_message(
        lambda m: m in alerts(discord) and words in title(m), timeout=timeout, channel_id=discord.channel_id
    )


async def wait_log(caplog: pytest.LogCaptureFixture, predicate: Callable[[str], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(predicate(r.getMessage()) for r in caplog.records):
        assert time.monotonic() < deadline, "no such log line"
        await asyncio.sleep(0.02)


def timestamps(text: str) -> list[int]:
    """The Unix times of Discord timestamp markup (<t:1700000000:f>)."""
    return [int(t) for t in re.findall(r"<t:(\d+):[a-zA-Z]>", text)]


async def test_an_outage_and_its_recovery_are_announced_once_each(
    discord_double: DiscordDouble, main_api: SwitchableApi, clock: HttpServer, tmp_path: Path
) -> None:
    async with running_bot(discord_double, alert_env(discord_double, tmp_path, main_api, clock)):
        await rounds(clock, 3)
        assert alerts(discord_double) == []  # up at start-up: nothing to say

        went_down = time.time()
        await main_api.down()
        outage = await wait_alert(discord_double, "offline")
        await rounds(clock, 6)
        after_outage = alerts(discord_double)

        came_back = time.time()
        await main_api.up()
        recovery = await wait_alert(discord_double, "online")
        await rounds(clock, 6)
        after_recovery = alerts(discord_double)

    assert after_outage == [outage]  # no repeats while it stays down
    assert after_recovery == [outage, recovery]  # nor while it stays up
    assert title(outage) == "🔴 Main is offline"
    assert outage.embeds[0]["footer"]["text"] == "offline"
    assert fields(outage)["Reason"] == "connection refused"
    (since, _) = timestamps(fields(outage)["Down since"])
    assert went_down - 1 <= since <= went_down + 1  # the first failed check, not the second
    (button,) = outage.buttons
    assert button["label"] == "Restart" and button["style"] == DANGER
    assert button["custom_id"] == "poracle:restart:1"

    assert title(recovery) == "🟢 Main is online again"
    assert recovery.embeds[0]["footer"]["text"] == "online"
    assert recovery.buttons == []
    down_for = fields(recovery)["Down for"]
    assert re.fullmatch(r"\d+ s", down_for), down_for
    assert abs(int(down_for.split()[0]) - (came_back - went_down)) <= 2
    assert timestamps(fields(recovery)["Down since"]) == [since]
    for message in discord_double.messages:
        assert not message.pings_everyone and message.pinged_role_ids == set() == message.pinged_user_ids


async def test_the_alerts_restart_button_asks_the_admin_and_refuses_others(
    discord_double: DiscordDouble,
    main_api: SwitchableApi,
    clock: HttpServer,
    sshd: SshServer,
    tmp_path: Path,
) -> None:
    marker = sshd.workdir / f"ran-{uuid.uuid4().hex}"
    env = alert_env(discord_double, tmp_path, main_api, clock) | ssh_env(sshd, tmp_path / "known_hosts")
    env |= server_env(1, "Main", main_api.url, sshd, f"echo ran >> {marker}")
    alice, bob = discord_double.admins
    carol = discord_double.member
    async with running_bot(discord_double, env):
        await rounds(clock, 1)
        await main_api.down()
        outage = await wait_alert(discord_double, "offline")

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
        final = await record.wait_original(lambda m: title(m) == "Main: restarted", timeout=15)
        await wait_alert(discord_double, "online again")

    assert refusal.ephemeral and refusal.content == "Only Poracle admins can do that."
    assert not prompt.ephemeral
    assert asked["title"] == "Restart Main?"
    assert [b["label"] for b in prompt.versions[0].components[0]["components"]] == ["Confirm", "Cancel"]
    assert not_yours.ephemeral and not_yours.content == f"Only <@{alice.id}> can answer this prompt."
    assert marker.read_text().splitlines() == ["ran"]
    assert "Answers its health check again: **yes**" in fields(final)["Main"]
    assert outage.buttons[0]["label"] == "Restart" and not outage.buttons[0].get("disabled")


async def test_after_a_dropped_gateway_commands_and_alerts_keep_working(
    discord_double: DiscordDouble, main_api: SwitchableApi, clock: HttpServer, tmp_path: Path
) -> None:
    async with running_bot(discord_double, alert_env(discord_double, tmp_path, main_api, clock)):
        await rounds(clock, 1)
        await discord_double.drop_gateway()
        await discord_double.wait_until_ready()
        assert discord_double.gateway.resumes == 1
        assert discord_double.gateway.identifies == 1  # resumed, not a new session

        record = await discord_double.slash(discord_double.admins[0], "poracle", "status")
        status = await record.wait_original(lambda m: not m.loading)
        await main_api.down()
        outage = await wait_alert(discord_double, "offline")
        await rounds(clock, 3)
        posted = alerts(discord_double)
    assert title(status) == "PoracleJS servers: 2/2 online"
    assert title(outage) == "🔴 Main is offline"
    assert posted == [outage]


async def test_a_rate_limited_alert_still_lands_exactly_once(
    discord_double: DiscordDouble, main_api: SwitchableApi, clock: HttpServer, tmp_path: Path
) -> None:
    async with running_bot(discord_double, alert_env(discord_double, tmp_path, main_api, clock)):
        await rounds(clock, 1)
        fault = discord_double.fail_next("POST", "/channels/*/messages", 429, retry_after=0.05)
        await main_api.down()
        outage = await wait_alert(discord_double, "offline")
        await rounds(clock, 5)
        posted = alerts(discord_double)
    assert fault.hits == 1
    assert posted == [outage]
    posts = discord_double.requests_to("POST", "/channels/*/messages")
    assert [r.status for r in posts] == [429, 200]


async def test_a_forbidden_alert_channel_is_logged_and_the_alert_delivered_once_allowed(
    discord_double: DiscordDouble,
    main_api: SwitchableApi,
    clock: HttpServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = discord_double.channel_id
    complaint = (
        f"Cannot post in alert channel {channel}: the bot needs View Channel, Send Messages and Embed Links there"
    )
    async with running_bot(discord_double, alert_env(discord_double, tmp_path, main_api, clock)):
        await rounds(clock, 1)
        discord_double.forbid_channel(channel)
        await main_api.down()
        await wait_log(caplog, lambda line: line == complaint)
        await rounds(clock, 3)
        complaints = [r for r in caplog.records if r.getMessage() == complaint]

        record = await discord_double.slash(discord_double.admins[0], "poracle", "status")
        status = await record.wait_original(lambda m: not m.loading)
        assert alerts(discord_double) == []

        discord_double.forbid_channel(channel, False)
        outage = await wait_alert(discord_double, "offline")
        await rounds(clock, 5)
        posted = alerts(discord_double)
    assert len(complaints) >= 2 and all(r.levelno == logging.ERROR for r in complaints)  # retried every round
    assert title(status) == "PoracleJS servers: 1/2 online"
    assert posted == [outage]
    assert title(outage) == "🔴 Main is offline"


async def test_a_missing_alert_channel_is_logged_and_the_bot_keeps_working(
    discord_double: DiscordDouble,
    main_api: SwitchableApi,
    clock: HttpServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = discord_double.channel_id
    complaint = f"Alert channel {channel} does not exist: check DISCORD_ALERT_CHANNEL_ID"
    async with running_bot(discord_double, alert_env(discord_double, tmp_path, main_api, clock)):
        elsewhere = await discord_double.add_channel("ops")
        await rounds(clock, 1)
        await discord_double.remove_channel(channel)
        await main_api.down()
        await wait_log(caplog, lambda line: line == complaint)
        await rounds(clock, 3)
        record = await discord_double.slash(discord_double.admins[0], "poracle", "status", channel_id=elsewhere.id)
        status = await record.wait_original(lambda m: not m.loading)
    assert title(status) == "PoracleJS servers: 1/2 online"
    assert len([r for r in caplog.records if r.getMessage() == complaint]) >= 2  # still trying every round
    assert [m for m in discord_double.messages if m.embeds and m.interaction_metadata is None] == []


async def test_a_failing_round_does_not_stop_the_monitor(
    discord_double: DiscordDouble,
    main_api: SwitchableApi,
    clock: HttpServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Discord answering the alert post with something that is not a message: discord.py raises KeyError
    # while reading it, which nothing in the bot expects. The round fails; the next ones must still run.
    fault = discord_double.fail_next("POST", "/channels/*/messages", 200, message="not a message")
    async with running_bot(discord_double, alert_env(discord_double, tmp_path, main_api, clock)):
        await rounds(clock, 1)
        await main_api.down()
        await wait_log(caplog, lambda line: line.startswith("Monitor round failed"))
        outage = await wait_alert(discord_double, "offline")
        await rounds(clock, 5)
        posted = alerts(discord_double)
    failures = [r for r in caplog.records if r.getMessage().startswith("Monitor round failed")]
    assert fault.hits == 1
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert failures[0].getMessage() == "Monitor round failed; trying again in 0.2 s"
    assert posted == [outage]  # the failed round's alert was not lost, nor sent twice
