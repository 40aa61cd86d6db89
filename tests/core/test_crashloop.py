"""The crash-loop tracker, driven directly with pm2 lists the test writes and a clock it moves: errored and
stopped processes, restart counts rising past the threshold within the window (and not, more slowly),
stable again, a process that disappears, counters reset by `pm2 reset` or a new daemon, a list that could
not be read, and the bot restarted mid-episode (the watches held in the store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from bot.config import load_settings
from bot.core.crashloop import GONE, CrashLoop, CrashTracker, ProcessEvent, ProcessRecovery
from bot.core.gate_protocol import Pm2Process
from bot.core.processes import ProcessRead
from bot.core.store import Store
from tests.support.clock import FakeClock
from tests.support.pm2_lists import bumped, process

ROUND = 60  # seconds between rounds, as PORACLE_HEALTH_INTERVAL's default
WINDOW = timedelta(minutes=10)


@dataclass
class Host:
    """A server's pm2 as the test sets it; each round reads it at the clock's time."""

    clock: FakeClock
    tracker: CrashTracker = field(default_factory=lambda: CrashTracker(3, WINDOW))
    processes: dict[str, Pm2Process] = field(default_factory=dict)
    events: list[ProcessEvent] = field(default_factory=list)

    def set(self, *processes: Pm2Process) -> None:
        self.processes = {p.name: p for p in processes}

    def bump(self, name: str, by: int = 1, **changes: object) -> None:
        self.processes[name] = bumped(self.processes[name], by, **changes)

    def read(self) -> ProcessRead:
        return ProcessRead("Main", self.clock.now(), tuple(self.processes.values()))

    def round(self, read: ProcessRead | None = None) -> list[ProcessEvent]:
        found = self.tracker.observe([read or self.read()])
        self.events += found
        self.clock.advance(ROUND)
        return found

    def rounds(self, count: int, bump: str | None = None, every: int = 1) -> list[ProcessEvent]:
        """`count` rounds; `bump` restarts once every `every` rounds, before the round reads it."""
        found = []
        for number in range(count):
            if bump is not None and number % every == 0:
                self.bump(bump)
            found += self.round()
        return found


def kinds(events: list[ProcessEvent]) -> list[tuple[str, str, str | None]]:
    return [(type(e).__name__, e.process, e.reason if isinstance(e, CrashLoop) else e.note) for e in events]


def host() -> Host:
    return Host(FakeClock())


def test_a_healthy_process_raises_nothing_even_restarted_now_and_then() -> None:
    main = host()
    main.set(process("poracle", restarts=41), process("helper", pm_id=1))
    assert main.rounds(30, bump="poracle", every=10) == []  # a restart every 10 min: 1 in the window


def test_errored_is_one_alert_and_stable_again_only_after_a_whole_window_without_a_restart() -> None:
    main = host()
    main.set(process("poracle", restarts=15, status="errored", exit_code=1), process("helper", pm_id=1))
    errored_at = main.clock.now()
    assert kinds(main.round()) == [("CrashLoop", "poracle", "errored (exit code 1)")]
    assert main.events[0] == CrashLoop("Main", "poracle", "errored (exit code 1)", errored_at)
    assert main.rounds(5) == []  # still errored: nothing new
    main.bump("poracle", status="online", exit_code=1)  # an admin restarted it: pm2 counts that too
    restarted_at = main.clock.now()
    assert main.rounds(10) == []  # online, but restarted within the window
    (recovery,) = main.round()
    assert recovery == ProcessRecovery("Main", "poracle", errored_at, restarted_at + WINDOW)
    assert main.rounds(20) == []


def test_stopped_is_trouble_too() -> None:
    main = host()
    main.set(process("poracle"))
    main.round()
    main.bump("poracle", by=0, status="stopped", exit_code=0)
    assert kinds(main.round()) == [("CrashLoop", "poracle", "stopped (exit code 0)")]


def test_restarts_rising_past_the_threshold_within_the_window_are_a_crash_loop_while_it_reads_online() -> None:
    main = host()
    main.set(process("poracle", restarts=7), process("helper", pm_id=1))
    main.round()
    assert main.rounds(2, bump="poracle") == []  # 2 restarts in 2 min: under the threshold of 3
    looping_at = main.clock.now()
    assert kinds(main.rounds(1, bump="poracle")) == [("CrashLoop", "poracle", "3 restarts in 10 min")]
    assert main.events[0].since == looping_at  # type: ignore[union-attr]
    assert main.rounds(30, bump="poracle") == []  # one alert per episode, however long it loops
    assert main.tracker.report(main.read()).troubles == {"poracle": "10 restarts in 10 min"}
    last_restart = main.clock.now() - timedelta(seconds=ROUND)
    assert main.rounds(9) == []  # not restarted since, but not for a whole window yet
    (recovery,) = main.round()
    assert recovery == ProcessRecovery("Main", "poracle", looping_at, last_restart + WINDOW)


def test_a_poracleng_loop_restarting_every_five_seconds_is_seen_in_one_round() -> None:
    main = host()
    main.set(process("poracle", restarts=200))
    main.round()
    main.bump("poracle", by=12)  # restart_delay 5000: a dozen restarts a minute, never `errored`
    assert kinds(main.round()) == [("CrashLoop", "poracle", "12 restarts in 10 min")]


def test_restarts_slower_than_the_threshold_never_alert() -> None:
    main = host()
    main.set(process("poracle"))
    assert main.rounds(120, bump="poracle", every=5) == []  # 2 in any 10 min


def test_a_slow_loop_at_the_threshold_does_not_flap() -> None:
    main = host()
    main.set(process("poracle"))
    assert kinds(main.rounds(180, bump="poracle", every=3)) == [("CrashLoop", "poracle", "3 restarts in 10 min")]


def test_a_process_that_disappears_ends_its_episode_and_one_that_was_fine_is_just_forgotten() -> None:
    main = host()
    main.set(process("poracle", status="errored"), process("helper", pm_id=1), process("old", pm_id=2))
    since = main.clock.now()
    main.round()
    main.set(process("helper", pm_id=1))  # `pm2 delete poracle old`
    gone_at = main.clock.now()
    assert main.round() == [ProcessRecovery("Main", "poracle", since, gone_at, GONE)]
    assert set(main.tracker.watches["Main"]) == {("helper", 1)}
    main.set(process("helper", pm_id=1), process("poracle", pm_id=3, status="errored"))  # started anew
    assert kinds(main.round()) == [("CrashLoop", "poracle", "errored")]


def test_counters_reset_by_pm2_reset_or_a_new_daemon_are_no_crash_loop() -> None:
    main = host()
    main.set(process("poracle", restarts=50), process("helper", restarts=9, pm_id=1))
    main.round()
    main.set(process("poracle", restarts=0), process("helper", restarts=0, pm_id=1))  # `pm2 kill`, resurrect
    assert main.rounds(5) == []
    main.bump("poracle", by=1)
    main.round()
    main.bump("poracle", by=2)  # counted from the reset on: 3 within the window
    assert kinds(main.round()) == [("CrashLoop", "poracle", "3 restarts in 10 min")]


def test_a_reset_counter_mid_episode_does_not_pass_for_stable() -> None:
    main = host()
    main.set(process("poracle", restarts=10, status="errored"))
    main.round()
    main.rounds(20)
    main.set(process("poracle", restarts=0))  # a new daemon: it was restarted with it
    assert main.rounds(10) == []
    assert kinds(main.round()) == [("ProcessRecovery", "poracle", None)]


def test_a_list_that_cannot_be_read_is_no_news() -> None:
    main = host()
    main.set(process("poracle", status="errored"))
    main.round()
    before = main.tracker.snapshot()
    assert main.round(ProcessRead("Main", main.clock.now(), reason="no process list within 5 s")) == []
    assert main.tracker.watches == before


def test_samples_further_apart_than_the_window_say_nothing_of_it() -> None:
    main = host()
    main.set(process("poracle", restarts=3))
    main.round()
    main.clock.advance(3 * 3600)  # the bot was away for three hours
    main.bump("poracle", by=100)
    assert main.round() == []


def test_samples_are_kept_for_the_longer_of_the_window_and_an_hour() -> None:
    main = host()
    main.set(process("poracle"))
    main.rounds(300, bump="poracle", every=7)
    (watch,) = main.tracker.watches["Main"].values()
    assert len(watch.samples) == 61  # the hour, and the one before it that the first rise starts from
    long = CrashTracker(3, timedelta(hours=2))
    assert long.horizon == timedelta(hours=2)


def test_the_report_counts_the_last_hours_restarts_and_says_what_is_wrong() -> None:
    main = host()
    main.set(process("poracle", restarts=20), process("helper", pm_id=1), process("cron", pm_id=2, status="stopped"))
    main.round()
    assert main.tracker.report(main.read()).recent == (0, 0, 0)
    first = host().tracker.report(main.read())
    assert first.recent == (None, None, None)  # no history yet
    assert first.summary() == "2/3 online · cron stopped"
    main.rounds(45, bump="poracle", every=5)
    main.bump("poracle", by=3, status="errored")
    report = main.tracker.report(main.read())
    assert report.recent == (12, 0, 0)
    assert report.summary() == "1/3 online · poracle errored · 12 restarts in 1 h · cron stopped"
    assert report.troubles == {"cron": "stopped"}  # poracle's errored is news to the next round
    rows = report.table()
    assert rows[0] == ["NAME", "ID", "STATUS", "PID", "UPTIME", "RESTARTS", "MEMORY", "CPU"]
    assert rows[1][:3] == ["poracle", "0", "errored"] and rows[1][5] == "32 (12 in 1 h)"
    assert rows[2] == ["helper", "1", "online", "4001", "46m", "0 (0 in 1 h)", "50 MB", "0.5 %"]
    assert report.table(compact=True)[3] == ["cron", "stopped", "0 (0 in 1 h)"]


def test_two_servers_are_watched_apart() -> None:
    clock = FakeClock()
    tracker = CrashTracker(3, WINDOW)
    up = (process("poracle"),)
    assert tracker.observe([ProcessRead("Main", clock.now(), up), ProcessRead("Backup", clock.now(), up)]) == []
    down = (process("poracle", status="errored"),)
    events = tracker.observe([ProcessRead("Main", clock.now(), up), ProcessRead("Backup", clock.now(), down)])
    assert [(e.server, e.process) for e in events] == [("Backup", "poracle")]


def test_a_bot_restarted_mid_episode_neither_repeats_it_nor_misses_the_recovery(tmp_path: Path) -> None:
    settings = load_settings(
        {"PORACLE_DATA_DIR": str(tmp_path), "PORACLE_SERVER_1_HOST": "h", "PORACLE_SERVER_1_API": "http://h:1"}
    )
    main = host()
    main.set(process("poracle", restarts=3), process("helper", pm_id=1))

    def round_recorded(store: Store) -> list[ProcessEvent]:
        read = main.read()
        events = main.round(read)
        store.record_round([], {}, [], processes=main.tracker.round([read], events))
        return events

    store = Store.open(settings.data_dir)
    round_recorded(store)
    main.bump("poracle", by=4)
    assert kinds(round_recorded(store)) == [("CrashLoop", "poracle", "4 restarts in 10 min")]
    main.bump("poracle", by=4)
    last_restart = main.clock.now()
    round_recorded(store)
    kept = main.tracker.snapshot()
    store.close()

    store = Store.open(settings.data_dir)  # the bot again, with what the store kept
    main.tracker = CrashTracker(3, WINDOW, store.load_process_watches())
    assert main.tracker.watches == kept
    assert [round_recorded(store) for _ in range(9)] == [[]] * 9  # no alert again, not stable yet
    assert kinds(round_recorded(store)) == [("ProcessRecovery", "poracle", None)]
    assert main.events[-1].recovered_at == last_restart + WINDOW  # type: ignore[union-attr]
    pending = [stored.event for stored in store.pending_events()]
    assert [type(e).__name__ for e in pending] == ["CrashLoop", "ProcessRecovery"]
    assert pending[0] == main.events[0] and pending[1] == main.events[-1]
    store.close()
