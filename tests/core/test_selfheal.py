"""Automatic restarts in the monitor's round, driven directly: the scripted fleet, a real store, the recording
sink, a clock the test moves, and a restart that answers as the service does (each call recorded, ending as
the test says). The rails themselves are tested in test_autorestart.py; restarts over a real sshd through the
Discord double in tests/discord_bot/test_autorestart.py."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.config import ServerConfig
from bot.core.autorestart import AutoRestarted, NeedsHuman, Outcome
from bot.core.health import HealthResult
from bot.core.locks import Holder, Locked
from bot.core.monitor import outage_id
from bot.core.selfheal import AUTOMATIC, outcome
from bot.core.service import NOT_STARTED_REASON, STOPPED_REASON, Requester, RestartResult
from bot.core.ssh import CommandOutcome, CommandResult
from bot.core.store import FILE_NAME, Origin, RestartRecord, Store
from bot.core.watchdog import Watchdog
from tests.support.clock import START, FakeClock
from tests.support.fixtures import deliveries
from tests.support.pm2_lists import Pm2Lists, process
from tests.support.watchdog import INTERVAL, Fleet, Sink, settings_for

MINUTE = timedelta(minutes=1)


@dataclass
class Notices(Sink):
    """The recording sink; `notices`: the automatic restarts' notices it posted, through the outbox."""

    @property
    def notices(self) -> list[AutoRestarted]:
        return [event for alert in self.posted for event in alert.events if isinstance(event, AutoRestarted)]


@dataclass
class Restarts:
    """PoracleService.restart as the healer calls it: records each call; the server comes back after it when
    `brings_back`; the command ends with `command`; `hold` (when given) keeps each restart running until set;
    `busy` refuses the next calls as a lock held by a person would."""

    clock: FakeClock
    fleet: Fleet
    brings_back: bool = False
    command: CommandOutcome = CommandOutcome.SUCCEEDED
    hold: asyncio.Event | None = None
    busy: int = 0
    calls: list[tuple[str, Requester, str | None, datetime]] = field(default_factory=list)

    async def __call__(
        self, server: ServerConfig, requested_by: Requester, *, process: str | None = None
    ) -> RestartResult:
        self.calls.append((server.name, requested_by, process, self.clock.now()))
        if self.hold is not None:
            await self.hold.wait()
        if self.busy:
            self.busy -= 1
            holder = Holder("alice (1) in Discord", (server.name,), self.clock.now())
            return RestartResult(server.name, requested_by, None, locked=Locked("restart-root@127.0.0.1:22", holder))
        if self.command is CommandOutcome.SUCCEEDED and self.brings_back:
            self.fleet.up[server.name] = True
        up = self.fleet.up[server.name]
        health = HealthResult(server.name, up, self.clock.now(), 200 if up else None, reason=None if up else "refused")
        words = {CommandOutcome.SUCCEEDED: "exit code 0", CommandOutcome.TIMED_OUT: "timed out after 30 s"}
        command = CommandResult(self.command, words.get(self.command, "exit code 1"), duration_s=1.0)
        return RestartResult(server.name, requested_by, command, health, process=process)

    def minutes(self) -> list[float]:
        """When each restart was asked for, in minutes from START."""
        return [(at - START) / MINUTE for *_, at in self.calls]


class Healing:
    """A watchdog over `data_dir` whose Main has AUTO_RESTART=on (Backup not); `restart()` is the bot
    stopping and starting again."""

    def __init__(self, data_dir: Path, clock: FakeClock, **env: str) -> None:
        self.clock = clock
        self.fleet, self.sink = Fleet(clock, "Main", "Backup"), Notices()
        self.restarts = Restarts(clock, self.fleet)
        self.lists = Pm2Lists(clock)
        self.settings = settings_for(data_dir, "Main", "Backup", PORACLE_SERVER_1_AUTO_RESTART="on", **env)
        self.store = Store.open(data_dir)
        self.watchdog = self._watchdog()

    def _watchdog(self) -> Watchdog:
        return Watchdog(
            self.settings,
            self.store,
            self.fleet.check,
            self.sink,
            self.clock,
            read_processes=self.lists.read,
            restart=self.restarts,
        )

    async def rounds(self, count: int = 1, *, settle: bool = True) -> None:
        """`count` rounds a minute apart; with `settle`, each waits for the automatic restarts it started."""
        for _ in range(count):
            await self.watchdog.run_round()
            if settle:
                await self.watchdog.settled()
            self.clock.advance(INTERVAL)

    def restart(self) -> None:
        self.store.close()
        self.store = Store.open(self.settings.data_dir)
        self.watchdog = self._watchdog()

    def needs_human(self) -> list[NeedsHuman]:
        return [e for a in self.sink.posted for e in a.events if isinstance(e, NeedsHuman)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[Healing]:
    made = Healing(tmp_path / "data", clock)
    yield made
    made.store.close()


async def test_a_server_that_stays_down_gets_three_restarts_with_growing_gaps_then_one_call_for_a_human(
    world: Healing,
) -> None:
    world.fleet.up.update(Main=False, Backup=False)
    await world.rounds(120)
    assert world.restarts.minutes() == [5, 15, 35]  # 5 min after the first failed check, then 10, then 20
    assert {(name, who, process) for name, who, process, _ in world.restarts.calls} == {("Main", AUTOMATIC, None)}
    assert [(n.attempt, n.limit, n.word, n.trouble) for n in world.sink.notices] == [
        (number, 3, "restarted", "offline (refused)") for number in (1, 2, 3)
    ]
    notices = [("AutoRestarted", "Main")] * 3  # through the outbox, each when its restart ended: they page nobody
    kinds = [("Outage", "Main", "Backup"), *notices, ("NeedsHuman", "Main")]  # Backup: not opted in
    assert world.sink.kinds() == kinds
    assert [alert.pages for alert in world.sink.posted] == [True, False, False, False, True]
    (given_up,) = world.sink.posted[-1].events
    assert isinstance(given_up, NeedsHuman)
    assert given_up.reason == "3 automatic restart(s) in 6 h did not bring it back"
    assert given_up.since == START + 35 * MINUTE
    assert ("needs-human", "Main", "delivered") in deliveries(world.settings.data_dir)


async def test_one_that_comes_back_after_the_first_restart_gets_exactly_one(world: Healing) -> None:
    world.restarts.brings_back = True
    world.fleet.up["Main"] = False
    await world.rounds(60)
    assert world.restarts.minutes() == [5]
    (notice,) = world.sink.notices
    assert notice.answers is True
    assert world.sink.kinds() == [("Outage", "Main"), ("AutoRestarted", "Main"), ("Recovery", "Main")]


async def test_a_notice_discord_cannot_take_waits_and_is_posted_once_it_can(world: Healing) -> None:
    world.restarts.brings_back = True
    world.fleet.up["Main"] = False
    await world.rounds(4)
    world.sink.refusing = True  # Discord away when the restart of minute 5 ends
    await world.rounds(3)
    assert world.restarts.minutes() == [5] and world.sink.notices == []
    world.sink.refusing = False
    await world.rounds(3)
    (notice,) = world.sink.notices
    assert (notice.server, notice.word, notice.answers, notice.attempt) == ("Main", "restarted", True, 1)
    assert world.sink.kinds() == [("Outage", "Main"), ("AutoRestarted", "Main"), ("Recovery", "Main")]
    assert ("auto-restarted", "Main", "delivered") in deliveries(world.settings.data_dir)


async def test_the_limit_and_the_call_for_a_human_survive_bot_restarts(world: Healing) -> None:
    world.fleet.up["Main"] = False
    await world.rounds(20)
    assert world.restarts.minutes() == [5, 15]
    world.restart()
    await world.rounds(20)
    assert world.restarts.minutes() == [5, 15, 35]  # the back-off remembered: 20 min after the second
    assert len(world.needs_human()) == 1
    world.restart()
    await world.rounds(120)
    assert world.restarts.minutes() == [5, 15, 35] and len(world.needs_human()) == 1  # no repeat


async def test_the_rounds_keep_their_pace_while_a_restart_runs_and_start_no_second_one(
    world: Healing, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    world.restarts.hold = asyncio.Event()
    world.fleet.up["Main"] = False
    await world.rounds(20, settle=False)  # every round returns while the restart of minute 5 still runs
    assert world.fleet.checks == 20 and world.restarts.minutes() == [5]
    assert world.sink.notices == []
    assert caplog.text.count("Automatic restart of Main not now: an automatic restart of it is still running") == 1
    world.restarts.hold.set()
    await world.watchdog.settled()
    assert len(world.sink.notices) == 1
    await world.rounds(1)
    assert world.restarts.minutes() == [5, 20]  # 2 x AFTER after the first


@pytest.mark.parametrize("hold", ["muted", "acknowledged"])
async def test_a_muted_or_acknowledged_server_gets_no_automatic_restart(world: Healing, hold: str) -> None:
    if hold == "muted":
        world.store.mute(["Main"], START + timedelta(hours=3), "alice (1)")
    world.fleet.up["Main"] = False
    await world.rounds(2)
    if hold == "acknowledged":
        taken = await world.watchdog.acknowledge("Main", outage_id(START), "alice (1)", "on it")
        assert taken.recorded
    await world.rounds(100)
    assert world.restarts.calls == [] and world.sink.notices == [] and world.needs_human() == []


async def test_not_within_10_minutes_of_a_person_restarting_it(world: Healing) -> None:
    world.fleet.up["Main"] = False
    await world.rounds(3)
    person = RestartRecord("Main", world.clock.now(), Origin.DISCORD, "alice (1)", "restarted", "", 2.0, 0, False)
    world.store.record_restarts([person])
    await world.rounds(20)
    assert world.restarts.minutes() == [13]


async def test_a_call_for_a_human_raised_while_muted_is_posted_when_the_mute_ends(tmp_path: Path) -> None:
    world = Healing(tmp_path, FakeClock(), PORACLE_AUTO_RESTART_LIMIT="1")
    world.restarts.hold = asyncio.Event()
    world.fleet.up["Main"] = False
    await world.rounds(6, settle=False)  # the restart of minute 5 runs
    world.store.mute(["Main"], world.clock.now() + 30 * MINUTE, "alice (1)")
    world.restarts.hold.set()
    await world.watchdog.settled()
    assert world.needs_human() == [] and ("needs-human", "Main", "muted") in deliveries(tmp_path)
    await world.rounds(29)
    assert world.needs_human() == []
    await world.rounds(2)
    assert len(world.needs_human()) == 1 and world.restarts.minutes() == [5]
    world.store.close()


async def test_two_restarts_in_a_row_that_fail_call_a_human(world: Healing) -> None:
    world.restarts.command = CommandOutcome.TIMED_OUT
    world.fleet.up["Main"] = False
    await world.rounds(60)
    assert world.restarts.minutes() == [5, 15]
    (given_up,) = world.needs_human()
    assert given_up.reason == "2 automatic restarts in a row failed (timed out after 30 s)"
    assert [n.word for n in world.sink.notices] == ["timed out", "timed out"]


async def test_a_restart_refused_because_a_person_s_runs_is_not_counted_and_not_announced(world: Healing) -> None:
    world.restarts.busy = 1
    world.fleet.up["Main"] = False
    await world.rounds(17)
    assert world.restarts.minutes() == [5, 6, 16]  # refused at 5, so 6 is the first one: the back-off from 6
    assert [n.attempt for n in world.sink.notices] == [1, 2]


async def test_a_failing_pm2_process_is_restarted_alone(tmp_path: Path, clock: FakeClock) -> None:
    world = Healing(tmp_path, clock, PORACLE_SERVER_1_ACCESS="gate")
    world.lists.set("Main", [process("poracle"), process("broken", status="errored", pm_id=1)])
    await world.rounds(10)
    assert [(name, proc) for name, _, proc, _ in world.restarts.calls] == [("Main", "broken")]
    assert world.restarts.minutes() == [5]  # the crash loop's episode began at the first round
    (notice,) = world.sink.notices
    assert notice.trouble == "pm2 process broken: errored" and notice.process == "broken"
    world.store.close()


async def test_each_decision_is_logged_with_its_reason_a_repeat_at_debug(
    world: Healing, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.core.selfheal")
    world.fleet.up["Main"] = False
    await world.rounds(40)
    ours = [record for record in caplog.records if record.name == "bot.core.selfheal"]
    # Every round from the second (PORACLE_DOWN_AFTER=2: the first failed check is no outage yet) decided
    # something: a restart, or a skip with its reason.
    decisions = [r for r in ours if r.getMessage().startswith("Automatic restart of Main")]
    assert len(decisions) == 39
    assert {r.getMessage() for r in ours if r.levelno == logging.DEBUG} == {
        "Automatic restart of Main not now: in trouble since 12:00 UTC; restart at 12:05 UTC",
        "Automatic restart of Main not now: backing off; the next attempt at 12:15 UTC",
        "Automatic restart of Main not now: backing off; the next attempt at 12:35 UTC",
        "Automatic restart of Main not now: needs a human since 12:35 UTC: "
        "3 automatic restart(s) in 6 h did not bring it back",
    }
    assert [record.getMessage() for record in ours if record.levelno >= logging.INFO] == [
        "Automatic restart of Main not now: in trouble since 12:00 UTC; restart at 12:05 UTC",
        "Automatic restart of Main (attempt 1 of 3 in 6 h): offline (refused)",
        "Automatic restart of Main not now: backing off; the next attempt at 12:15 UTC",
        "Automatic restart of Main (attempt 2 of 3 in 6 h): offline (refused)",
        "Automatic restart of Main not now: backing off; the next attempt at 12:35 UTC",
        "Automatic restart of Main (attempt 3 of 3 in 6 h): offline (refused)",
        "Automatic restarts of Main stop until a person acts: it needs a human: "
        "3 automatic restart(s) in 6 h did not bring it back",
        "Automatic restart of Main not now: needs a human since 12:35 UTC: "
        "3 automatic restart(s) in 6 h did not bring it back",
    ]


async def test_a_decision_the_store_cannot_keep_is_not_carried_out_and_taken_again_next_round(world: Healing) -> None:
    world.fleet.up["Main"] = False
    await world.rounds(5)
    with sqlite3.connect(world.settings.data_dir / FILE_NAME) as db:  # the disk refuses the rails' writes
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON auto_restarts BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="disk trouble"):
        await world.rounds(1)
    assert world.restarts.calls == []  # decided, not kept: not run
    with sqlite3.connect(world.settings.data_dir / FILE_NAME) as db:
        db.execute("DROP TRIGGER refuse")
    world.clock.advance(INTERVAL)
    await world.rounds(1)
    assert world.restarts.minutes() == [6]
    assert [n.attempt for n in world.sink.notices] == [1]  # the refused decision was not counted


@pytest.mark.parametrize(
    ("command", "online", "expected"),
    [
        (CommandResult(CommandOutcome.SUCCEEDED, "exit code 0"), True, Outcome.FIXED),
        (CommandResult(CommandOutcome.SUCCEEDED, "exit code 0"), False, Outcome.NOT_FIXED),
        (CommandResult(CommandOutcome.FAILED, "exit code 1"), False, Outcome.FAILED),
        (CommandResult(CommandOutcome.TIMED_OUT, "timed out after 30 s"), False, Outcome.FAILED),
        (CommandResult(CommandOutcome.CONNECTION_ERROR, "SSH key rejected"), False, Outcome.FAILED),
        # The bot is stopping: nothing ran, so nothing counts; stopped mid-way: it ran, how it went is unknown.
        (CommandResult(CommandOutcome.CONNECTION_ERROR, NOT_STARTED_REASON), False, Outcome.REFUSED),
        (CommandResult(CommandOutcome.INTERRUPTED, STOPPED_REASON), False, Outcome.NOT_FIXED),
        (None, False, Outcome.REFUSED),  # another restart of it was running
    ],
)
def test_what_a_restart_result_means_to_the_rails(
    command: CommandResult | None, online: bool, expected: Outcome
) -> None:
    health = HealthResult("Main", online, START)
    assert outcome(RestartResult("Main", AUTOMATIC, command, health)) is expected
