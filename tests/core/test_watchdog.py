"""The monitor's round in core, driven directly: a scripted fleet, a real store, a sink that records what it
is handed and can refuse, and a clock the test moves. Each case runs in milliseconds; the Discord tests
prove the wiring of the same behaviours once each."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core import heartbeat
from bot.core.health import Cause, HealthChecker, HealthResult
from bot.core.heartbeat import Heartbeat
from bot.core.monitor import Degraded, Healthy, Outage, Recovery, Reminder, outage_id
from bot.core.store import FILE_NAME, Store
from bot.core.watchdog import AckResult, Alert, StatusReport, Watchdog
from tests.support.clock import START, FakeClock
from tests.support.poracle_http import PoracleNgLike, poracle_ng
from tests.support.watchdog import INTERVAL, REFUSED, Fleet, Sink, World, run_rounds, settings_for


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    made = World(tmp_path / "data", clock, Fleet(clock, "Main", "Backup"), Sink())
    yield made
    made.store.close()


async def test_an_outage_and_its_recovery_are_handed_over_once_each_and_nothing_at_start_up(world: World) -> None:
    await world.rounds(3)
    assert world.sink.posted == []  # up at start-up: nothing to say
    world.fleet.up["Main"] = False
    first_failure = world.clock.now()
    await world.rounds(6)
    world.fleet.up["Main"] = True
    back = world.clock.now()
    await world.rounds(6)

    assert world.sink.kinds() == [("Outage", "Main"), ("Recovery", "Main")]
    (outage,), (recovery,) = (alert.events for alert in world.sink.posted)
    assert isinstance(outage, Outage) and isinstance(recovery, Recovery)
    assert outage.since == first_failure  # the first failed check, not the second that declared it
    assert outage.reason == "refused"
    assert recovery.down_since == first_failure and recovery.recovered_at == back
    assert world.deliveries() == [("outage", "Main", "delivered"), ("recovery", "Main", "delivered")]


async def test_servers_down_in_the_same_round_share_one_alert_and_come_back_in_one(world: World) -> None:
    await world.rounds(1)
    world.fleet.up.update(Main=False, Backup=False)
    await world.rounds(3)
    world.fleet.up.update(Main=True, Backup=True)
    await world.rounds(2)
    assert world.sink.kinds() == [("Outage", "Main", "Backup"), ("Recovery", "Main", "Backup")]


async def test_reminders_follow_every_so_many_minutes_while_down(tmp_path: Path, clock: FakeClock) -> None:
    world = World(tmp_path, clock, Fleet(clock, "Main"), Sink(), PORACLE_REMIND_EVERY="5")
    world.fleet.up["Main"] = False
    await world.rounds(2 + 11)  # declared down at the 2nd check; then 11 minutes
    assert world.sink.kinds() == [("Outage", "Main"), ("Reminder", "Main"), ("Reminder", "Main")]
    reminders = [alert.events[0] for alert in world.sink.posted[1:]]
    assert all(isinstance(r, Reminder) and r.since == clock.start for r in reminders)
    world.store.close()


async def test_a_refused_alert_stays_pending_and_is_handed_over_once_when_the_sink_takes_it(world: World) -> None:
    world.sink.refusing = True
    world.fleet.up["Main"] = False
    await world.rounds(5)
    assert world.sink.posted == [] and world.sink.tries == 4  # tried each round from the 2nd check on
    assert world.deliveries() == [("outage", "Main", "pending")]
    world.sink.refusing = False
    await world.rounds(3)
    assert world.sink.kinds() == [("Outage", "Main")]


@pytest.mark.parametrize("then", ["sink takes them", "bot restarts"])
async def test_alerts_held_back_go_out_once_and_in_order(world: World, then: str) -> None:
    world.sink.refusing = True  # a refusal stops the queue, so the recovery cannot overtake its outage
    world.fleet.up["Main"] = False
    await world.rounds(3)
    world.fleet.up["Main"] = True
    await world.rounds(2)
    if then == "bot restarts":
        world.restart(Sink())
    world.sink.refusing = False
    await world.rounds(3)
    assert world.sink.kinds() == [("Outage", "Main"), ("Recovery", "Main")]


async def test_a_sink_that_raises_fails_the_round_and_loses_nothing(world: World) -> None:
    calls = 0

    async def broken_once(alert: Alert) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("a Discord answer that is not a message")
        world.sink.posted.append(alert)
        return True

    world.sink.send = broken_once  # type: ignore[method-assign]
    world.fleet.up["Main"] = False
    await world.rounds(1)
    with pytest.raises(KeyError):
        await world.rounds(1)
    world.clock.advance(INTERVAL)
    await world.rounds(3)
    assert world.sink.kinds() == [("Outage", "Main")]  # not lost, not sent twice


@pytest.mark.parametrize(("trouble", "end"), [("outage", "recovery"), ("degraded", "healthy")])
async def test_without_an_alert_channel_alerts_are_settled_unposted_and_so_is_their_recovery(
    world: World, trouble: str, end: str
) -> None:
    world.sink.enabled = False
    world.fleet.up["Main"] = trouble != "outage"
    world.fleet.degraded = {"Main"} if trouble == "degraded" else set()
    await world.rounds(3)
    world.restart(Sink())  # a channel set later hears of no recovery from an outage it never heard of
    world.fleet.up["Main"], world.fleet.degraded = True, set()
    await world.rounds(2)
    assert world.sink.posted == []
    assert world.deliveries() == [(trouble, "Main", "off"), (end, "Main", "muted")]


async def test_a_muted_outage_is_recorded_but_not_handed_over_while_checks_go_on(world: World) -> None:
    world.store.mute(["Main"], world.clock.now() + timedelta(minutes=30), "alice (1)")
    world.fleet.up["Main"] = False
    await world.rounds(4)
    assert world.fleet.checks == 4
    assert world.sink.posted == []
    assert world.deliveries() == [("outage", "Main", "muted")]
    report = await world.watchdog.status(await world.fleet.check())
    assert "Main" in report.mutes and report.down_since["Main"] == world.clock.start


async def test_unmute_of_a_server_still_down_hands_over_its_outage_then_its_recovery(world: World) -> None:
    world.store.mute(["Main"], world.clock.now() + timedelta(minutes=30), "alice (1)")
    world.fleet.up["Main"] = False
    await world.rounds(3)
    world.store.unmute(["Main"], world.clock.now())
    await world.rounds(1)
    world.fleet.up["Main"] = True
    await world.rounds(1)
    assert world.sink.kinds() == [("Outage", "Main"), ("Recovery", "Main")]
    assert world.deliveries() == [("outage", "Main", "delivered"), ("recovery", "Main", "delivered")]


async def test_a_mute_ends_by_itself_and_a_server_still_down_is_announced_then(world: World) -> None:
    world.store.mute(["Main"], world.clock.now() + timedelta(minutes=4, seconds=30), "test")
    world.fleet.up["Main"] = False
    await world.rounds(5)
    assert world.sink.posted == []
    await world.rounds(1)  # the mute has ended
    assert world.sink.kinds() == [("Outage", "Main")]
    assert world.watchdog.store.mutes(world.clock.now()) == {}


async def test_a_server_back_before_its_mute_ends_is_never_announced(world: World) -> None:
    world.store.mute(["Main"], world.clock.now() + timedelta(minutes=30), "test")
    world.fleet.up["Main"] = False
    await world.rounds(3)
    world.fleet.up["Main"] = True
    await world.rounds(3)
    world.store.unmute(["Main"], world.clock.now())
    await world.rounds(3)
    assert world.sink.posted == []
    assert world.deliveries() == [("outage", "Main", "muted"), ("recovery", "Main", "muted")]


async def test_the_recovery_of_an_announced_outage_is_announced_even_when_muted_since(world: World) -> None:
    world.fleet.up["Main"] = False
    await world.rounds(3)  # announced
    world.store.mute(["Main"], world.clock.now() + timedelta(minutes=30), "alice (1)")  # to stop reminders, say
    await world.rounds(2)
    world.fleet.up["Main"] = True
    await world.rounds(2)
    assert world.sink.kinds() == [("Outage", "Main"), ("Recovery", "Main")]
    assert world.deliveries() == [("outage", "Main", "delivered"), ("recovery", "Main", "delivered")]


async def test_a_mute_outlasts_a_bot_restart(world: World) -> None:
    world.store.mute(["Main", "Backup"], world.clock.now() + timedelta(hours=1), "test")
    world.restart()
    world.fleet.up["Main"] = False
    await world.rounds(3)
    assert world.sink.posted == []
    assert set(world.store.mutes(world.clock.now())) == {"Main", "Backup"}


async def test_a_restart_during_an_outage_neither_repeats_it_nor_misses_the_recovery(world: World) -> None:
    world.fleet.up["Main"] = False
    await world.rounds(3)
    world.restart()
    await world.rounds(5)
    assert world.sink.kinds() == [("Outage", "Main")]
    world.fleet.up["Main"] = True
    await world.rounds(2)
    assert world.sink.kinds() == [("Outage", "Main"), ("Recovery", "Main")]
    recovery = world.sink.posted[1].events[0]
    assert isinstance(recovery, Recovery) and recovery.down_since == world.clock.start  # from before the restart


async def test_a_round_that_could_not_be_recorded_is_raised_again_not_lost(tmp_path: Path, clock: FakeClock) -> None:
    """Another process holds the write lock (an operator's sqlite3 shell, a backup) past the store's busy
    timeout while a server goes down: that round is lost, its outage must not be."""
    data = tmp_path / "data"
    fleet, sink = Fleet(clock, "Main"), Sink()
    settings = settings_for(data, "Main", PORACLE_DOWN_AFTER="1")
    store = Store.open(data, busy_timeout=0.05)
    watchdog = Watchdog(settings, store, fleet.check, sink, clock)
    await watchdog.run_round()
    blocker = sqlite3.connect(data / FILE_NAME, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    fleet.up["Main"] = False
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await watchdog.run_round()
    blocker.execute("ROLLBACK")
    blocker.close()
    await watchdog.run_round()
    await watchdog.run_round()
    store.close()
    assert [type(a.events[0]) for a in sink.posted] == [Outage]


def round_starts(world: World, second_round: Callable[[], None]) -> list[float]:
    """When each round started (clock seconds); `second_round` runs as the second round checks."""
    starts: list[float] = []

    async def check() -> list[HealthResult]:
        starts.append(world.clock.monotonic())
        if len(starts) == 2:
            second_round()
        return await world.fleet.check()

    world.watchdog.check = check
    return starts


def boom() -> None:
    raise RuntimeError("boom")


async def test_a_failing_round_is_logged_and_the_next_ones_run_on_schedule(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    starts = round_starts(world, boom)
    await run_until(world, lambda: len(starts) >= 4)
    failures = [r for r in caplog.records if r.getMessage().startswith("Monitor round failed")]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert failures[0].getMessage() == "Monitor round failed; trying again in 60 s"
    assert starts == [0, 60, 120, 180]


async def test_after_a_round_that_overran_the_interval_missed_rounds_are_skipped_not_caught_up(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    starts = round_starts(world, lambda: world.clock.advance(150))  # a locked store, a slow Discord: 2.5 rounds
    await run_until(world, lambda: len(starts) >= 4)
    assert starts == [0, 60, 240, 300]  # on the next slot, not three rounds back to back
    assert "longer than PORACLE_HEALTH_INTERVAL (60 s): 2 round(s) skipped" in caplog.text


async def test_each_round_hands_its_status_to_the_hooks_and_writes_the_heartbeat(world: World) -> None:
    reports: list[StatusReport] = []

    async def hook(report: StatusReport) -> None:
        reports.append(report)

    world.watchdog.after_round = (hook,)
    world.fleet.up["Main"] = False
    world.sink.connected = False
    await world.rounds(2)
    assert [[r.online for r in report.results] for report in reports] == [[False, True], [False, True]]
    assert reports[-1].down_since == {"Main": world.clock.start}
    beat = heartbeat.read(world.settings.data_dir)
    assert beat is not None and not beat.connected
    assert beat.round_completed_at == world.clock.start + timedelta(seconds=INTERVAL)


async def test_while_discord_is_away_the_heartbeat_says_since_when_and_how_many_alerts_wait(world: World) -> None:
    world.sink.connected, world.sink.away_since, world.sink.refusing = False, world.clock.start, True
    world.fleet.up["Main"] = False
    await world.rounds(2)  # the second round declares the outage; the sink cannot post it
    last_round = world.clock.start + timedelta(seconds=INTERVAL)
    assert heartbeat.read(world.settings.data_dir) == Heartbeat(last_round, False, world.clock.start, 1)

    world.sink.connected, world.sink.away_since, world.sink.refusing = True, None, False
    checks = world.fleet.checks
    await world.watchdog.flush()  # the sink is back: the outbox goes out now, not at the next round
    assert world.sink.kinds() == [("Outage", "Main")]
    assert world.fleet.checks == checks
    assert heartbeat.read(world.settings.data_dir) == Heartbeat(last_round, True, None, 0)


async def run_until(world: World, done: Callable[[], bool]) -> None:
    """Run the watchdog's own loop until `done()` holds (the fake clock makes its sleeps instant)."""
    task = asyncio.create_task(world.watchdog.run_forever())
    for _ in range(10_000):
        if done():
            break
        await asyncio.sleep(0.001)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert done(), "the loop did not get there"


# -- maintenance windows: held like a mute, announced at the end if still down

SUNDAY_NOON = START  # the fake clock's start, 2026-03-01 12:00 UTC, is a Sunday


def windowed(tmp_path: Path, start: datetime, *names: str, **env: str) -> World:
    clock = FakeClock(start)
    return World(tmp_path / "data", clock, Fleet(clock, *names), Sink(), **env)


async def test_an_outage_in_a_window_is_held_and_announced_when_the_window_ends_still_down(tmp_path: Path) -> None:
    world = windowed(tmp_path, SUNDAY_NOON, "Main", PORACLE_MAINTENANCE="sun 11:30-12:10")
    world.fleet.up["Main"] = False
    await world.rounds(9)  # 12:00 to 12:08
    report = await world.watchdog.status(await world.fleet.check())
    assert report.maintenance == {"Main": SUNDAY_NOON + timedelta(minutes=10)}
    await world.rounds(1)
    assert world.fleet.checks == 11 and world.sink.posted == []
    assert world.deliveries() == [("outage", "Main", "muted")]
    await world.rounds(1)  # 12:10: the window is over
    assert world.sink.kinds() == [("Outage", "Main")]
    assert world.sink.posted[0].pages
    assert world.deliveries() == [("outage", "Main", "delivered")]
    world.store.close()


async def test_a_server_back_before_its_window_ends_is_never_announced(tmp_path: Path) -> None:
    world = windowed(tmp_path, SUNDAY_NOON, "Main", PORACLE_MAINTENANCE="sun 11:30-12:10")
    world.fleet.up["Main"] = False
    await world.rounds(5)
    world.fleet.up["Main"] = True
    await world.rounds(10)
    assert world.sink.posted == []
    assert world.deliveries() == [("outage", "Main", "muted"), ("recovery", "Main", "muted")]
    world.store.close()


async def test_outside_its_window_and_for_a_server_that_opts_out_alerts_go_out(tmp_path: Path) -> None:
    world = windowed(
        tmp_path,
        SUNDAY_NOON,
        "Main",
        "Backup",
        "Spare",
        PORACLE_MAINTENANCE="sun 11:30-12:30",
        PORACLE_SERVER_2_MAINTENANCE="none",
        PORACLE_SERVER_3_MAINTENANCE="sun 13:00-14:00",
    )
    world.fleet.up.update(Main=False, Backup=False, Spare=False)
    await world.rounds(3)
    assert world.sink.kinds() == [("Outage", "Backup", "Spare")]
    world.store.close()


async def test_a_window_crossing_midnight_holds_until_its_end_the_next_day(tmp_path: Path) -> None:
    saturday = datetime(2026, 2, 28, 23, 50, tzinfo=UTC)
    world = windowed(tmp_path, saturday, "Main", PORACLE_MAINTENANCE="sat 23:30-00:20")
    world.fleet.up["Main"] = False
    await world.rounds(30)  # 23:50 to 00:19 on Sunday
    assert world.sink.posted == []
    await world.rounds(1)
    assert world.sink.kinds() == [("Outage", "Main")]
    world.store.close()


@pytest.mark.parametrize(
    "start",
    [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # clocks forward: 02:00-03:00 is skipped, the window is 03:00-04:00
        datetime(2026, 10, 25, 0, 0, tzinfo=UTC),  # clocks back: from the first 02:00 to the second
    ],
    ids=["spring forward", "fall back"],
)
async def test_on_the_days_the_clocks_change_a_window_holds_alerts_for_its_hour(
    tmp_path: Path, start: datetime
) -> None:
    world = windowed(tmp_path, start, "Main", PORACLE_MAINTENANCE="sun 02:00-03:00", PORACLE_TIMEZONE="Europe/Berlin")
    world.fleet.up["Main"] = False
    await world.rounds(60)
    assert world.sink.posted == []
    await world.rounds(1)  # one hour of real time later
    assert world.sink.kinds() == [("Outage", "Main")]
    world.store.close()


# -- acknowledgements


async def acknowledge(world: World, by: str, reason: str = "") -> AckResult:
    since = world.watchdog.monitor.down_since("Main")
    assert since is not None
    return await world.watchdog.acknowledge("Main", outage_id(since), by, reason)


async def test_an_acknowledged_outage_gets_no_reminders_and_its_recovery_names_who(
    tmp_path: Path, clock: FakeClock
) -> None:
    world = World(tmp_path, clock, Fleet(clock, "Main"), Sink(), PORACLE_REMIND_EVERY="5")
    world.fleet.up["Main"] = False
    await world.rounds(2)
    result = await acknowledge(world, "alice (1)", "on it")
    assert result.recorded and result.ack is not None
    assert (result.ack.by, result.ack.reason, result.ack.since) == ("alice (1)", "on it", clock.start)
    await world.rounds(12)
    world.fleet.up["Main"] = True
    await world.rounds(1)
    assert world.sink.kinds() == [("Outage", "Main"), ("Recovery", "Main")]
    assert world.sink.posted[1].acknowledged == {"Main": result.ack}
    assert not world.sink.posted[1].pages
    assert [d for d in world.deliveries() if d[0] == "reminder"] == [("reminder", "Main", "acked")] * 2
    world.store.close()


async def test_the_first_acknowledgement_is_kept_and_the_recovery_clears_it(tmp_path: Path, clock: FakeClock) -> None:
    world = World(tmp_path, clock, Fleet(clock, "Main"), Sink(), PORACLE_REMIND_EVERY="5")
    world.fleet.up["Main"] = False
    await world.rounds(2)
    first = await acknowledge(world, "alice (1)")
    since = world.watchdog.monitor.down_since("Main")
    assert since is not None
    second = await world.watchdog.acknowledge("Main", outage_id(since), "bob (2)", "me too")
    assert not second.recorded and second.ack == first.ack  # says who was first
    assert (await world.watchdog.ack_state("Main", outage_id(since))).ack == first.ack
    world.fleet.up["Main"] = True
    await world.rounds(1)
    over = await world.watchdog.acknowledge("Main", outage_id(since), "bob (2)")
    assert over.over and over.ack is None
    assert (await world.watchdog.ack_state("Main", outage_id(since))).over
    world.fleet.up["Main"] = False  # a new outage starts unacknowledged, and its reminders go out
    await world.rounds(2 + 6)
    again = world.watchdog.monitor.down_since("Main")
    assert again is not None and again != since
    assert (await world.watchdog.ack_state("Main", outage_id(again))) == AckResult()
    assert world.sink.kinds()[-2:] == [("Outage", "Main"), ("Reminder", "Main")]
    world.store.close()


async def test_an_acknowledgement_outlasts_a_bot_restart(world: World) -> None:
    world.fleet.up["Main"] = False
    await world.rounds(2)
    result = await acknowledge(world, "alice (1)", "on it")
    world.restart(Sink())
    since = world.watchdog.monitor.down_since("Main")
    assert since is not None
    assert (await world.watchdog.ack_state("Main", outage_id(since))).ack == result.ack
    world.fleet.up["Main"] = True
    await world.rounds(1)
    assert world.sink.kinds() == [("Recovery", "Main")]
    assert world.sink.posted[0].acknowledged == {"Main": result.ack}


async def test_only_outages_page(world: World) -> None:
    world.settings = settings_for(world.settings.data_dir, "Main", PORACLE_REMIND_EVERY="1")
    world.watchdog = Watchdog(world.settings, world.store, world.fleet.check, world.sink, world.clock)
    world.fleet.up["Main"] = False
    await world.rounds(3)
    world.fleet.up["Main"] = True
    await world.rounds(1)
    assert world.sink.kinds() == [("Outage", "Main"), ("Reminder", "Main"), ("Recovery", "Main")]
    assert [alert.pages for alert in world.sink.posted] == [True, False, False]


# -- the status at once, then fresh


async def results_of(fleet: Fleet, *names: str) -> AsyncIterator[HealthResult]:
    """Fresh results in the order given, as a streaming check yields them (fastest first)."""
    fresh = {result.server: result for result in await fleet.check()}
    for name in names:
        yield fresh[name]


async def test_status_updates_show_the_last_round_at_once_then_each_fresh_result(world: World) -> None:
    before = [report async for report in world.watchdog.status_updates(results_of(world.fleet, "Backup", "Main"))]
    assert [(r.pending, r.age) for r in before] == [(("Main", "Backup"), None), (("Main",), None), ((), None)]
    assert [[x.server for x in r.results] for r in before] == [[], ["Backup"], ["Main", "Backup"]]

    world.fleet.up["Main"] = False
    await world.rounds(1)  # the last round: Main down; a minute later Main is back
    world.fleet.up["Main"] = True
    first, fresher, final = [r async for r in world.watchdog.status_updates(results_of(world.fleet, "Backup", "Main"))]
    assert first.pending == ("Main", "Backup") and first.age == timedelta(seconds=INTERVAL)
    assert [(x.server, x.online) for x in first.results] == [("Main", False), ("Backup", True)]
    assert fresher.pending == ("Main",)
    assert [(x.server, x.online, x.checked_at) for x in final.results] == [
        ("Main", True, world.clock.now()),
        ("Backup", True, world.clock.now()),
    ]
    assert final.pending == ()


# -------------------------------------------------------------------------------------------- degraded


async def test_a_degraded_spell_and_its_end_are_handed_over_once_each(world: World) -> None:
    await world.rounds(2)
    world.fleet.degraded.add("Main")
    first = world.clock.now()
    await world.rounds(6)
    world.fleet.degraded.clear()
    back = world.clock.now()
    await world.rounds(4)
    assert world.sink.kinds() == [("Degraded", "Main"), ("Healthy", "Main")]
    (degraded,), (healthy,) = (alert.events for alert in world.sink.posted)
    assert degraded == Degraded("Main", REFUSED, first, Cause.REFUSED)
    assert healthy == Healthy("Main", first, back)
    assert world.deliveries() == [("degraded", "Main", "delivered"), ("healthy", "Main", "delivered")]


async def test_servers_degraded_in_one_round_share_an_alert_apart_from_an_outage_of_the_same_round(
    tmp_path: Path, clock: FakeClock
) -> None:
    world = World(tmp_path, clock, Fleet(clock, "A", "B", "C"), Sink())
    world.fleet.degraded |= {"A", "B"}
    world.fleet.up["C"] = False
    await world.rounds(3)
    world.store.close()
    assert world.sink.kinds() == [("Degraded", "A", "B"), ("Outage", "C")]


async def test_a_muted_degradation_goes_out_when_the_mute_ends_and_one_that_ended_meanwhile_never(
    world: World,
) -> None:
    world.store.mute(["Main", "Backup"], world.clock.now() + timedelta(minutes=4, seconds=30), "test")
    world.fleet.degraded |= {"Main", "Backup"}
    await world.rounds(3)
    world.fleet.degraded.discard("Backup")
    await world.rounds(2)
    assert world.sink.posted == []
    await world.rounds(2)  # the mute has ended: Main is still degraded
    assert world.sink.kinds() == [("Degraded", "Main")]
    assert world.deliveries() == [
        ("degraded", "Main", "delivered"),
        ("degraded", "Backup", "muted"),
        ("healthy", "Backup", "muted"),
    ]


async def test_a_bot_restart_during_a_degraded_spell_neither_repeats_it_nor_misses_its_end(world: World) -> None:
    world.sink.refusing = True  # held back: both go out after the restart, in order
    world.fleet.degraded.add("Main")
    await world.rounds(3)
    world.restart(Sink())
    await world.rounds(3)
    world.fleet.degraded.clear()
    await world.rounds(2)
    assert world.sink.kinds() == [("Degraded", "Main"), ("Healthy", "Main")]
    healthy = world.sink.posted[1].events[0]
    assert isinstance(healthy, Healthy) and healthy.degraded_since == world.clock.start


async def test_the_status_shows_degraded_time_apart_from_uptime_and_since_when(world: World) -> None:
    world.fleet.degraded.add("Main")
    await world.rounds(3)
    world.fleet.degraded.clear()
    await world.rounds(1)
    world.fleet.degraded.add("Main")
    await world.rounds(2)
    report = await world.watchdog.status(await world.fleet.check())
    main, backup = report.histories["Main"], report.histories["Backup"]
    assert (main.uptime_24h, main.degraded_24h, main.degraded_7d) == (1.0, 5 / 6, 5 / 6)
    assert (backup.uptime_24h, backup.degraded_24h) == (1.0, 0.0)
    assert report.degraded_since == {"Main": world.clock.start + timedelta(minutes=4)}  # the second spell's start


# ------------------------------------------------------------------- a stuck PoracleNG, over real HTTP


def ng_watchdog(data_dir: Path, url: str, checker: HealthChecker, sink: Sink) -> tuple[Store, Watchdog]:
    """A watchdog over the real health checks of one PoracleNG with METRICS=on (the bot, started afresh)."""
    settings = settings_for(
        data_dir, "NG", PORACLE_SERVER_1_API=url, PORACLE_SERVER_1_METRICS="on", PORACLE_QUEUE_LIMIT="200"
    )
    store = Store.open(data_dir)
    clock = checker.clock
    return store, Watchdog(settings, store, lambda: checker.check_all(settings.servers), sink, clock)


async def test_a_poracleng_whose_queue_grows_then_whose_webhooks_stop_is_degraded_each_time(
    tmp_path: Path, clock: FakeClock
) -> None:
    fake, sink = PoracleNgLike(queue=5), Sink()
    async with poracle_ng(fake) as http, HealthChecker(2, clock) as checker:
        store, watchdog = ng_watchdog(tmp_path / "data", http.url, checker, sink)
        fake.webhooks = {"pokemon": 100}
        await run_rounds(watchdog, clock, 2)
        for depth in (150, 250, 350, 420):  # the backlog grows: above 200 from the second
            fake.queue = depth
            fake.webhooks["pokemon"] += 50
            await run_rounds(watchdog, clock, 1)
        assert sink.kinds() == [("Degraded", "NG")]  # DOWN_AFTER=2: at 350, the second check above
        fake.queue = 0
        await run_rounds(watchdog, clock, 1)
        assert sink.kinds()[-1] == ("Healthy", "NG")

        await run_rounds(watchdog, clock, 9)  # the counter stopped: the 9th check sees 10 minutes without ...
        assert len(sink.posted) == 2
        await run_rounds(watchdog, clock, 1)  # ... and the next one makes DOWN_AFTER=2 such checks
        assert sink.kinds()[-1] == ("Degraded", "NG")
        store.close()

        # The bot restarts during the silence: it still knows since when, so no false "fully online".
        store, watchdog = ng_watchdog(tmp_path / "data", http.url, checker, sink)
        await run_rounds(watchdog, clock, 3)
        assert len(sink.posted) == 3
        fake.webhooks["raid"] = 1
        await run_rounds(watchdog, clock, 1)
        store.close()
    assert sink.kinds() == [("Degraded", "NG"), ("Healthy", "NG"), ("Degraded", "NG"), ("Healthy", "NG")]
    queue, _, silence, _ = (alert.events[0] for alert in sink.posted)
    assert isinstance(queue, Degraded) and (queue.cause, queue.reason) == (Cause.QUEUE, "delivery queue 350 > 200")
    assert isinstance(silence, Degraded) and silence.cause is Cause.SILENCE
    assert silence.reason == "no webhooks for 11 min"


async def test_a_poracleng_that_never_had_a_webhook_is_silent_after_the_window_from_the_bots_start(
    tmp_path: Path, clock: FakeClock
) -> None:
    """No webhooks series yet (missing means 0): the window starts with the bot's first check."""
    fake, sink = PoracleNgLike(), Sink()
    async with poracle_ng(fake) as http, HealthChecker(2, clock) as checker:
        store, watchdog = ng_watchdog(tmp_path / "data", http.url, checker, sink)
        await run_rounds(watchdog, clock, 11)
        assert sink.posted == []
        await run_rounds(watchdog, clock, 1)
        store.close()
    assert sink.kinds() == [("Degraded", "NG")]
    assert fake.metrics_asked == 12
