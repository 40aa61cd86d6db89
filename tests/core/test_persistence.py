"""Durability: a writer SIGKILLed mid-round loses nothing it reported, and the real bot, restarted over
the same data directory (through the Discord double, with real local health servers), neither repeats
nor loses alerts; servers that change in the same round share one alert."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.core.monitor import State
from bot.core.store import FILE_NAME, Store
from bot.discord_bot.client import PoracleBot
from tests.support.discord_double import DiscordDouble, Message
from tests.support.local_http import http_server, refused_port
from tests.support.world import discord_env, running_bot, server_env

ROOT = Path(__file__).resolve().parent.parent.parent
SERVERS = 20
OUTAGE_EVERY = 5  # the writer raises an outage event every 5th round

# The writer: rounds of SERVERS samples (one outage event every OUTAGE_EVERY rounds) as fast as it can,
# printing each round's number once record_round has returned. It resumes after the last committed round,
# which it reads back from the watches (every server's `successes` is the round number).
WRITER = f"""
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from bot.core.health import HealthResult
from bot.core.monitor import Outage, ServerWatch, State
from bot.core.store import Store

store = Store.open(Path(sys.argv[1]))
watches = store.load_watches()
n = watches["s0"].successes if watches else 0
base = datetime(2026, 1, 1, tzinfo=UTC)
while True:
    n += 1
    at = base + timedelta(seconds=10 * n)
    results = [HealthResult(f"s{{i}}", i % 7 != 3, at, 200, 20.0 + i) for i in range({SERVERS})]
    round_watches = {{f"s{{i}}": ServerWatch(State.UP, 0, n) for i in range({SERVERS})}}
    events = [Outage("s3", f"round {{n}}", at)] if n % {OUTAGE_EVERY} == 0 else []
    store.record_round(results, round_watches, events)
    print(n, flush=True)
"""


def kill_mid_write(data_dir: Path, lines: int) -> int:
    """Start the writer, read `lines` rounds, SIGKILL it; the highest round it reported as recorded."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data_dir)], stdout=subprocess.PIPE, env=env, cwd=ROOT, text=True
    )
    assert writer.stdout is not None
    reported = 0
    try:
        for _ in range(lines):
            line = writer.stdout.readline()
            assert line.endswith("\n"), f"the writer stopped (exit {writer.poll()})"
            reported = int(line)
    finally:
        writer.send_signal(signal.SIGKILL)
        rest, _ = writer.communicate(timeout=30)
    assert writer.returncode == -signal.SIGKILL  # killed, not finished
    # Rounds printed before the kill but not read yet were reported too.
    complete = [int(line) for line in rest.splitlines(keepends=True) if line.endswith("\n")]
    return max([reported, *complete])


def test_sigkill_during_writes_keeps_the_database_consistent_and_every_reported_round(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = random.Random(6)
    reported = 0
    for _ in range(5):
        now_reported = kill_mid_write(data, rng.randint(150, 400))
        assert now_reported > reported  # each writer resumed after the last round and went on
        reported = now_reported

        store = Store.open(data)  # recovers the WAL; would raise StoreError on a damaged file
        watches = store.load_watches()
        store.close()
        committed = watches["s0"].successes
        assert committed >= reported  # at most the one round being written when killed is not there
        assert {watch.successes for watch in watches.values()} == {committed}  # one round: all or nothing

        db = sqlite3.connect(data / FILE_NAME)
        try:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            per_server = "SELECT COUNT(*), MIN(at_ms), MAX(at_ms) FROM samples GROUP BY server_id"
            spans = set(db.execute(per_server).fetchall())
            assert len(spans) == 1  # every server has the same rounds
            ((count, low, high),) = spans
            assert count == committed and high - low == (committed - 1) * 10_000  # rounds 1..committed, no gaps
            # The hourly rollups were written in the same transactions as the samples they count.
            rollups = dict(db.execute("SELECT server_id, SUM(checks) FROM hourly GROUP BY server_id").fetchall())
            assert set(rollups.values()) == {committed}
            online = db.execute("SELECT SUM(online) FROM hourly").fetchone()[0]
            assert online == committed * sum(1 for i in range(SERVERS) if i % 7 != 3)
            # The events of every committed round, none of an uncommitted one, none twice.
            reasons = [reason for (reason,) in db.execute("SELECT reason FROM events ORDER BY id")]
            assert reasons == [f"round {n}" for n in range(OUTAGE_EVERY, committed + 1, OUTAGE_EVERY)]
        finally:
            db.close()
    assert reported > 600  # the writer really was busy writing when it was killed


# -- the real bot, restarted


class Switchable:
    """A local health server that can be taken down (connection refused) and brought back on the same port."""

    def __init__(self) -> None:
        self.port = refused_port()
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> None:
        assert self._stack is None
        self._stack = contextlib.AsyncExitStack()
        await self._stack.enter_async_context(http_server(port=self.port))

    async def down(self) -> None:
        assert self._stack is not None
        stack, self._stack = self._stack, None
        await stack.aclose()


@pytest.fixture
async def servers() -> AsyncIterator[Callable[[], Switchable]]:
    made: list[Switchable] = []

    def make() -> Switchable:
        made.append(Switchable())
        return made[-1]

    yield make
    for server in made:
        if server._stack is not None:
            await server.down()


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll state that has no event to wait on (the monitor's counters)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def counter(bot: PoracleBot, server: str, field: str) -> int:
    watch = bot.monitor.watches.get(server)
    return 0 if watch is None else int(getattr(watch, field))


async def rounds(bot: PoracleBot, server: str, field: str, count: int, timeout: float = 15) -> None:
    """Wait until the monitor has seen `count` more checks of `server` (`failures` or `successes` in a row)."""
    target = counter(bot, server, field) + count
    await wait_for(lambda: counter(bot, server, field) >= target, timeout, f"{count} more {field} of {server}")


def alerts(discord: DiscordDouble, word: str) -> list[Message]:
    return [m for m in discord.channel_messages(discord.channel_id) if word in m.text]


def field(message: Message, name: str) -> str:
    (embed,) = message.embeds
    return str(next(f["value"] for f in embed["fields"] if f["name"] == name))


def seconds(text: str) -> int:
    units = {"d": 86400, "h": 3600, "min": 60, "s": 1}
    return sum(int(n) * units[unit] for n, unit in re.findall(r"(\d+) (d|h|min|s)\b", text))


def bot_env(discord: DiscordDouble, data_dir: Path, interval: str = "0.2") -> dict[str, str]:
    return discord_env(discord, data_dir, PORACLE_HEALTH_INTERVAL=interval, PORACLE_DOWN_AFTER="1")


async def test_a_bot_restarted_during_an_outage_does_not_repeat_it_and_announces_the_recovery(
    discord_double: DiscordDouble, servers: Callable[[], Switchable], tmp_path: Path
) -> None:
    d = discord_double
    main = servers()
    await main.up()
    env = bot_env(d, tmp_path / "data") | server_env(1, "Main", main.url)
    async with running_bot(d, env) as bot:
        await rounds(bot, "Main", "successes", 1)  # the first round waits for on_ready
        await main.down()
        went_down = time.monotonic()
        outage = await d.wait_for_message(lambda m: "Main is offline" in m.text, timeout=10)
        await rounds(bot, "Main", "failures", 3)
    assert len(alerts(d, "offline")) == 1

    async with running_bot(d, env) as bot:
        assert bot.monitor.watches["Main"].state is State.DOWN  # restored before the first round
        await rounds(bot, "Main", "failures", 5)
        assert len(alerts(d, "offline")) == 1  # still down: nothing new to say
        await main.up()
        came_back = time.monotonic()
        recovery = await d.wait_for_message(lambda m: "Main is online again" in m.text, timeout=10)
        await rounds(bot, "Main", "successes", 3)
    assert len(alerts(d, "offline")) == 1
    assert len(alerts(d, "online again")) == 1
    assert len(d.channel_messages(d.channel_id)) == 2
    # The recovery names the outage's start, from before the restart, and the whole downtime.
    assert field(outage, "Down since").startswith(field(recovery, "Down since"))
    assert seconds(field(recovery, "Down for")) >= int(came_back - went_down) - 1


async def test_an_alert_that_could_not_be_posted_is_posted_once_after_a_restart(
    discord_double: DiscordDouble, servers: Callable[[], Switchable], tmp_path: Path
) -> None:
    d = discord_double
    main = servers()
    await main.up()
    env = bot_env(d, tmp_path / "data") | server_env(1, "Main", main.url)
    d.forbid_channel(d.channel_id)
    async with running_bot(d, env) as bot:
        await rounds(bot, "Main", "successes", 1)
        await main.down()
        refused = await d.wait_for_request("POST", f"/channels/{d.channel_id}/messages", timeout=10)
        assert refused.status == 403
        await rounds(bot, "Main", "failures", 3)  # tried again each round, refused each time
        assert len(d.requests_to("POST", f"/channels/{d.channel_id}/messages")) >= 3
    assert d.channel_messages(d.channel_id) == []

    d.forbid_channel(d.channel_id, forbidden=False)
    async with running_bot(d, env) as bot:
        outage = await d.wait_for_message(lambda m: "Main is offline" in m.text, timeout=10)
        await rounds(bot, "Main", "failures", 5)
    assert d.channel_messages(d.channel_id) == [outage]
    assert outage.buttons and outage.buttons[0]["label"] == "Restart"


async def test_an_outage_and_recovery_both_missed_are_posted_in_order_after_a_restart(
    discord_double: DiscordDouble, servers: Callable[[], Switchable], tmp_path: Path
) -> None:
    d = discord_double
    main = servers()
    await main.up()
    env = bot_env(d, tmp_path / "data") | server_env(1, "Main", main.url)
    d.forbid_channel(d.channel_id)
    async with running_bot(d, env) as bot:
        await rounds(bot, "Main", "successes", 1)
        await main.down()
        await rounds(bot, "Main", "failures", 2)
        await main.up()
        await rounds(bot, "Main", "successes", 2)
    assert d.channel_messages(d.channel_id) == []

    d.forbid_channel(d.channel_id, forbidden=False)
    async with running_bot(d, env) as bot:
        await d.wait_for_message(lambda m: "online again" in m.text, timeout=10)
        await rounds(bot, "Main", "successes", 3)
    titles = [m.embeds[0]["title"] for m in d.channel_messages(d.channel_id)]
    assert titles == ["🔴 Main is offline", "🟢 Main is online again"]


async def test_servers_down_in_the_same_round_share_one_alert_and_come_back_in_one(
    discord_double: DiscordDouble, servers: Callable[[], Switchable], tmp_path: Path
) -> None:
    d = discord_double
    alpha, beta, steady = servers(), servers(), servers()
    for server in (alpha, beta, steady):
        await server.up()
    env = bot_env(d, tmp_path / "data", interval="0.3")
    env |= server_env(1, "Alpha", alpha.url) | server_env(2, "Beta", beta.url) | server_env(3, "Steady", steady.url)
    async with running_bot(d, env) as bot:
        # Switch both right after the monitor has taken a round, long before the next one.
        await rounds(bot, "Steady", "successes", 1)
        await rounds(bot, "Steady", "successes", 1)
        await alpha.down()
        await beta.down()
        outage = await d.wait_for_message(lambda m: "Offline" in m.text or " is offline" in m.text, timeout=10)
        await rounds(bot, "Alpha", "failures", 2)
        await beta.up()
        await alpha.up()
        recovery = await d.wait_for_message(lambda m: "nline again" in m.text, timeout=10)
        await rounds(bot, "Steady", "successes", 3)

    assert d.channel_messages(d.channel_id) == [outage, recovery]
    (embed,) = outage.embeds
    assert embed["title"] == "🔴 Offline: Alpha, Beta"
    assert [f["name"] for f in embed["fields"]] == ["Alpha", "Beta"]
    assert all("connection refused" in f["value"] for f in embed["fields"])
    assert [b["label"] for b in outage.buttons] == ["Restart Alpha", "Restart Beta"]
    assert len({b["custom_id"] for b in outage.buttons}) == 2
    (embed,) = recovery.embeds
    assert embed["title"] == "🟢 Online again: Alpha, Beta"
    assert [f["name"] for f in embed["fields"]] == ["Alpha", "Beta"]
    assert all("down for" in f["value"] for f in embed["fields"])
    assert recovery.buttons == []


async def test_a_round_that_could_not_be_recorded_is_raised_again_not_lost(
    discord_double: DiscordDouble, servers: Callable[[], Switchable], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the database's write lock (an operator's sqlite3 shell, a backup) past the
    store's 10 s busy timeout while a server goes down: that round is lost, its outage alert must not be."""
    d = discord_double
    main = servers()
    await main.up()
    data = tmp_path / "data"
    env = bot_env(d, data) | server_env(1, "Main", main.url)
    async with running_bot(d, env) as bot:
        await rounds(bot, "Main", "successes", 1)
        blocker = sqlite3.connect(data / FILE_NAME, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            await main.down()
            await wait_for(
                lambda: any("Monitor round failed" in r.getMessage() for r in caplog.records), 20, "a failed round"
            )
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        outage = await d.wait_for_message(lambda m: "Main is offline" in m.text, timeout=10)
        await rounds(bot, "Main", "failures", 3)
    assert d.channel_messages(d.channel_id) == [outage]
