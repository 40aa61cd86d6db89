"""Crash-loop alerts in the monitor's round, driven directly: a scripted fleet (its HTTP answers) and scripted
pm2 lists, a real store, the recording sink and a clock the test moves. The alerts take the outages' path:
one per round and kind, mutes, held across bot restarts, a round that could not be recorded raised again."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.crashloop import CrashLoop, ProcessEvent, ProcessRecovery
from bot.core.monitor import Event
from bot.core.store import FILE_NAME, Store
from bot.core.watchdog import Watchdog
from tests.support.clock import FakeClock
from tests.support.fixtures import deliveries
from tests.support.pm2_lists import Pm2Lists, process
from tests.support.watchdog import INTERVAL, Fleet, Sink, settings_for


class Bot:
    """A watchdog over `data_dir` reading `lists` each round; `restart()` is the bot stopping and starting."""

    def __init__(self, data_dir: Path, clock: FakeClock, *servers: str, busy_timeout: float = 10.0, **env: str) -> None:
        self.clock = clock
        self.fleet, self.sink, self.lists = Fleet(clock, *servers), Sink(), Pm2Lists(clock)
        self.settings = settings_for(data_dir, *servers, **env)
        self.busy_timeout = busy_timeout
        self.store = Store.open(data_dir, busy_timeout=busy_timeout)
        self.watchdog = self._watchdog()

    def _watchdog(self) -> Watchdog:
        return Watchdog(
            self.settings, self.store, self.fleet.check, self.sink, self.clock, read_processes=self.lists.read
        )

    async def rounds(self, count: int = 1, bump: tuple[str, str] | None = None) -> None:
        """`count` rounds, a minute apart; `bump` (server, process) restarts once before each."""
        for _ in range(count):
            if bump is not None:
                self.lists.bump(*bump)
            await self.watchdog.run_round()
            self.clock.advance(INTERVAL)

    def restart(self) -> None:
        self.store.close()
        self.store = Store.open(self.settings.data_dir, busy_timeout=self.busy_timeout)
        self.watchdog = self._watchdog()

    def alerts(self) -> list[tuple[str, ...]]:
        """Each alert as its kind and subjects: "process on server", or the server of an outage."""
        return [(type(a.events[0]).__name__, *map(subject, a.events)) for a in self.sink.posted]


def subject(event: Event | ProcessEvent) -> str:
    return f"{event.process} on {event.server}" if isinstance(event, CrashLoop | ProcessRecovery) else event.server


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    made = Bot(tmp_path / "data", FakeClock(), "Main", "Backup")
    made.lists.set("Main", [process("poracle", restarts=4), process("helper", pm_id=1)])
    made.lists.set("Backup", [process("poracle")])
    yield made
    made.store.close()


async def test_a_crash_loop_is_announced_while_http_answers_and_its_recovery_once(bot: Bot) -> None:
    await bot.rounds(2)
    await bot.rounds(3, bump=("Main", "poracle"))
    assert bot.alerts() == [("CrashLoop", "poracle on Main")]
    assert all(result.online for result in await bot.fleet.check())  # HTTP answered all along
    (loop,) = bot.sink.posted[0].events
    assert isinstance(loop, CrashLoop) and loop.reason == "3 restarts in 10 min"
    await bot.rounds(10, bump=("Main", "poracle"))
    await bot.rounds(12)
    assert bot.alerts() == [("CrashLoop", "poracle on Main"), ("ProcessRecovery", "poracle on Main")]
    assert deliveries(bot.settings.data_dir) == [
        ("crash-loop", "Main", "delivered"),
        ("process-recovery", "Main", "delivered"),
    ]


async def test_processes_in_trouble_in_one_round_share_an_alert_apart_from_the_outages(bot: Bot) -> None:
    await bot.rounds(1)
    bot.lists.bump("Main", "helper", by=0, status="errored")
    bot.lists.bump("Backup", "poracle", by=0, status="stopped")
    bot.fleet.up["Backup"] = False
    await bot.rounds(2)
    assert bot.alerts() == [("CrashLoop", "helper on Main", "poracle on Backup"), ("Outage", "Backup")]


async def test_a_muted_servers_crash_loop_is_held_back_and_announced_if_still_on_when_the_mute_ends(
    bot: Bot,
) -> None:
    bot.store.mute(["Main"], bot.clock.now() + timedelta(minutes=4, seconds=30), "alice (1)")
    bot.lists.bump("Main", "helper", by=0, status="errored")
    await bot.rounds(5)
    assert bot.sink.posted == []
    assert deliveries(bot.settings.data_dir) == [("crash-loop", "Main", "muted")]
    await bot.rounds(1)  # the mute has ended, helper is still errored
    assert bot.alerts() == [("CrashLoop", "helper on Main")]


async def test_a_crash_loop_over_before_its_mute_ends_is_never_announced(bot: Bot) -> None:
    bot.store.mute(["Main"], bot.clock.now() + timedelta(hours=1), "alice (1)")
    bot.lists.bump("Main", "helper", by=0, status="errored")
    await bot.rounds(2)
    bot.lists.bump("Main", "helper", status="online")
    await bot.rounds(12)
    bot.store.unmute(["Main"], bot.clock.now())
    await bot.rounds(2)
    assert bot.sink.posted == []
    assert deliveries(bot.settings.data_dir) == [("crash-loop", "Main", "muted"), ("process-recovery", "Main", "muted")]


async def test_the_recovery_of_a_crash_loop_announced_before_a_mute_is_announced_too(bot: Bot) -> None:
    bot.lists.bump("Main", "helper", by=0, status="errored")
    await bot.rounds(1)
    bot.store.mute(["Main"], bot.clock.now() + timedelta(hours=1), "alice (1)")
    bot.lists.bump("Main", "helper", status="online")
    await bot.rounds(11)
    assert bot.alerts() == [("CrashLoop", "helper on Main"), ("ProcessRecovery", "helper on Main")]


async def test_a_crash_loop_in_a_maintenance_window_is_held_like_an_outage(tmp_path: Path) -> None:
    bot = Bot(tmp_path / "data", FakeClock(), "Main", PORACLE_MAINTENANCE="sun 11:30-12:05")  # it is 12:00 on a Sunday
    bot.lists.set("Main", [process("poracle", status="errored")])
    await bot.rounds(5)
    assert bot.sink.posted == []
    await bot.rounds(1)  # the window is over, poracle still errored
    assert bot.alerts() == [("CrashLoop", "poracle on Main")]
    bot.store.close()


async def test_a_list_that_cannot_be_read_is_a_reason_in_the_status_not_an_alert(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await bot.rounds(1)
    bot.lists.failing["Main"] = "no process list within 5 s"
    await bot.rounds(10)
    assert bot.sink.posted == []
    report = await bot.watchdog.status(await bot.fleet.check())
    assert report.processes["Main"].summary() == "unknown: no process list within 5 s"
    assert report.processes["Backup"].summary() == "1/1 online"
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "pm2 list of Main" in r.getMessage()]
    assert [r.getMessage() for r in warned] == ["Cannot read the pm2 list of Main: no process list within 5 s"]
    del bot.lists.failing["Main"]
    await bot.rounds(1)
    assert "The pm2 list of Main can be read again" in caplog.text


async def test_the_status_has_the_last_rounds_list_with_the_hours_restarts(bot: Bot) -> None:
    await bot.rounds(1)
    await bot.rounds(2, bump=("Main", "poracle"))
    report = await bot.watchdog.status(await bot.fleet.check())
    assert report.processes["Main"].summary() == "2/2 online · poracle 2 restarts in 1 h"


async def test_a_bot_restarted_mid_episode_neither_repeats_the_alert_nor_misses_the_recovery(bot: Bot) -> None:
    bot.lists.bump("Main", "helper", by=0, status="errored")
    await bot.rounds(2)
    bot.restart()
    await bot.rounds(3)
    assert bot.alerts() == [("CrashLoop", "helper on Main")]
    bot.lists.bump("Main", "helper", status="online")
    bot.restart()
    await bot.rounds(11)
    assert bot.alerts() == [("CrashLoop", "helper on Main"), ("ProcessRecovery", "helper on Main")]
    recovery = bot.sink.posted[1].events[0]
    assert isinstance(recovery, ProcessRecovery) and recovery.since == bot.clock.start  # from before the restarts


async def test_a_round_that_could_not_be_recorded_raises_its_crash_loop_again(tmp_path: Path) -> None:
    bot = Bot(tmp_path / "data", FakeClock(), "Main", busy_timeout=0.05)
    bot.lists.set("Main", [process("poracle")])
    await bot.rounds(1)
    blocker = sqlite3.connect(bot.settings.data_dir / FILE_NAME, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    bot.lists.bump("Main", "poracle", by=0, status="errored")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await bot.rounds(1)
    blocker.execute("ROLLBACK")
    blocker.close()
    await bot.rounds(2)
    bot.store.close()
    assert bot.alerts() == [("CrashLoop", "poracle on Main")]
