"""The SQLite store through its public API, on real files in tmp_path: schema, round trips, uptime figures,
history, mutes, pruning, and the start-up errors of a damaged database or an unusable data directory."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import random
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.health import Cause, HealthResult
from bot.core.monitor import Degraded, Event, Healthy, Outage, Recovery, Reminder, ServerWatch, State
from bot.core.service import Requester, RestartResult
from bot.core.ssh import CommandOutcome, CommandResult
from bot.core.store import (
    FILE_NAME,
    RUNNING,
    Acknowledgement,
    DegradedRecord,
    Origin,
    OutageRecord,
    RestartRecord,
    Store,
    StoreError,
)
from bot.core.stuck import Quiet
from tests.support.database import NOW, migration, older_database, rows

ROOT = Path(__file__).resolve().parent.parent.parent
# The latency histogram has 4 buckets per doubling and reports a bucket's centre: off by half a bucket at most.
HALF_BUCKET = 1 / 8  # in log2 units: a factor of 2 ** (1/8), about 9 %


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "data")
    yield opened
    opened.close()


def online(server: str, at: datetime, latency_ms: float = 100.0) -> HealthResult:
    return HealthResult(server, True, at, 200, latency_ms)


def offline(server: str, at: datetime) -> HealthResult:
    return HealthResult(server, False, at, reason="connection refused")


def restart(
    server: str, by: str, outcome: CommandOutcome | None, at: datetime, exit_code: int | None = None
) -> RestartRecord:
    """The audit row of a restart asked for from Discord by `by` at `at`."""
    command = None if outcome is None else CommandResult(outcome, "why", exit_code, "output", 4.5)
    return RestartResult(server, Requester(Origin.DISCORD, by), command).record(at)


# -- schema


def test_a_new_data_dir_gets_the_schema_in_wal_mode_and_reopening_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    Store.open(data).close()
    assert (data / FILE_NAME).is_file()
    ((version,),) = rows(data, "PRAGMA user_version")
    assert version >= 1
    ((mode,),) = rows(data, "PRAGMA journal_mode")
    assert mode == "wal"
    tables = {name for (name,) in rows(data, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"servers", "watches", "samples", "events", "restarts", "mutes", "kv"} <= tables

    store = Store.open(data)  # a second open must not run the migrations again ("table already exists")
    store.put("k", "v")
    store.close()
    store = Store.open(data)
    assert store.get("k") == "v"
    store.close()
    assert rows(data, "PRAGMA user_version") == [(version,)]


def test_a_database_from_a_newer_version_is_refused_and_not_touched(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Store.open(data).close()
    connection = sqlite3.connect(data / FILE_NAME)
    connection.execute("PRAGMA user_version = 999")
    connection.close()
    with pytest.raises(StoreError) as caught:
        Store.open(data)
    message = str(caught.value)
    assert message.startswith("PORACLE_DATA_DIR") and "newer" in message
    assert "move it away" not in message  # a newer bot reads it fine: moving it would throw its history away
    assert rows(data, "PRAGMA user_version") == [(999,)]


# -- the monitor's state and the alert outbox


def test_watches_round_trip_through_a_reopen_to_the_microsecond(tmp_path: Path) -> None:
    data = tmp_path / "data"
    down = datetime(2026, 3, 10, 11, 59, 58, 123457, tzinfo=UTC)
    watches = {
        "Main": ServerWatch(State.DOWN, 3, 0, down, down, down + timedelta(seconds=61, microseconds=1)),
        "Backup": ServerWatch(State.UP, 0, 17),
        "New": ServerWatch(),
    }
    store = Store.open(data)
    assert store.load_watches() == {}
    store.record_round([offline("Main", NOW), online("Backup", NOW)], watches, [])
    store.close()

    store = Store.open(data)
    assert store.load_watches() == watches
    # Overwritten, not appended: the latest round wins.
    store.record_round([online("Main", NOW)], {"Main": ServerWatch(State.UP, 0, 1)}, [])
    assert store.load_watches()["Main"] == ServerWatch(State.UP, 0, 1)
    assert store.load_watches()["Backup"] == watches["Backup"]
    store.close()


def test_pending_events_keep_their_round_and_order_until_marked(tmp_path: Path, store: Store) -> None:
    since = NOW - timedelta(minutes=5, microseconds=7)
    first: list[Event] = [Outage("A", "connection refused", since), Outage("B", "no answer within 5 s", since)]
    second: list[Event] = [Recovery("A", since, NOW), Reminder("B", "no answer within 5 s", since, NOW)]
    store.record_round([], {}, first)
    store.record_round([], {}, [])
    store.record_round([], {}, second)

    pending = store.pending_events()
    assert [stored.event for stored in pending] == first + second
    rounds = [stored.round for stored in pending]
    assert rounds[0] == rounds[1] < rounds[2] == rounds[3]
    assert len({stored.id for stored in pending}) == 4

    store.mark_events([pending[0].id, pending[1].id], "delivered")
    store.mark_events([pending[3].id], "muted")
    assert [stored.event for stored in store.pending_events()] == [second[0]]
    store.mark_events([], "delivered")  # nothing to mark is fine
    assert len(store.pending_events()) == 1


def test_a_failed_round_leaves_nothing_and_new_servers_after_it_keep_their_own_rows(store: Store) -> None:
    broken = Recovery("New", NOW, None)  # type: ignore[arg-type]  # fails to be stored, after the samples
    with pytest.raises(AttributeError):
        store.record_round([online("New", NOW)], {"New": ServerWatch(State.UP, 0, 1)}, [broken])
    assert store.load_watches() == {} and store.pending_events() == [] and store.server_histories(NOW) == {}

    store.record_round([offline("Other", NOW)], {"Other": ServerWatch(State.DOWN, 1, 0, NOW, NOW, NOW)}, [])
    store.record_round([online("New", NOW)], {"New": ServerWatch(State.UP, 0, 1)}, [Outage("Other", "refused", NOW)])
    assert store.load_watches() == {
        "Other": ServerWatch(State.DOWN, 1, 0, NOW, NOW, NOW),
        "New": ServerWatch(State.UP, 0, 1),
    }
    assert [stored.event.server for stored in store.pending_events()] == ["Other"]
    histories = store.server_histories(NOW + timedelta(minutes=1))
    assert histories["New"].uptime_24h == 1.0 and histories["Other"].uptime_24h == 0.0


def test_pending_events_and_round_numbers_survive_a_reopen(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store.open(data)
    store.record_round([], {}, [Outage("A", "refused", NOW)])
    store.close()
    store = Store.open(data)
    (stored,) = store.pending_events()
    assert stored.event == Outage("A", "refused", NOW)
    store.record_round([], {}, [Outage("B", "refused", NOW)])
    older, newer = store.pending_events()
    assert newer.round > older.round  # a round after the reopen is never grouped with one before it
    store.close()


# -- figures from known samples


def test_uptime_over_24_hours_and_7_days_from_known_samples(store: Store) -> None:
    recent = [NOW - timedelta(hours=h) for h in (1, 5, 12, 20)]
    store.record_round([online("A", recent[0]), online("B", recent[0])], {}, [])
    store.record_round([online("A", recent[1]), online("B", recent[1])], {}, [])
    store.record_round([online("A", recent[2]), offline("B", recent[2])], {}, [])
    store.record_round([offline("A", recent[3]), offline("B", recent[3])], {}, [])
    for days in (2, 3, 4, 6):  # in the week, not in the day: A was down, B up
        store.record_round([offline("A", NOW - timedelta(days=days)), online("B", NOW - timedelta(days=days))], {}, [])
    for days in (8, 10, 20):  # older than a week: counts in neither
        store.record_round([online("A", NOW - timedelta(days=days)), offline("B", NOW - timedelta(days=days))], {}, [])
    store.record_round([online("Old", NOW - timedelta(days=9))], {}, [])

    histories = store.server_histories(NOW)
    assert histories["A"].uptime_24h == pytest.approx(3 / 4)
    assert histories["A"].uptime_7d == pytest.approx(3 / 8)
    assert histories["B"].uptime_24h == pytest.approx(2 / 4)
    assert histories["B"].uptime_7d == pytest.approx(6 / 8)
    assert "Old" not in histories  # nothing in the last week and never restarted
    assert "Never" not in histories


def test_a_server_only_seen_days_ago_has_no_24_hour_figures(store: Store) -> None:
    store.record_round([online("A", NOW - timedelta(days=3), 80)], {}, [])
    history = store.server_histories(NOW)["A"]
    assert history.uptime_24h is None and history.median_latency_ms is None
    assert history.uptime_7d == 1.0


def test_median_latency_of_the_last_day_within_half_a_histogram_bucket(store: Store) -> None:
    latencies = [100, 120, 150, 200, 1000]  # median 150
    for i, latency in enumerate(latencies):
        store.record_round([online("A", NOW - timedelta(hours=i + 1), latency)], {}, [])
    for i in range(10):  # answers after a timeout carry no latency worth counting; old answers do not count
        store.record_round([offline("A", NOW - timedelta(hours=2, minutes=i))], {}, [])
        store.record_round([online("A", NOW - timedelta(days=2, minutes=i), 5000)], {}, [])
    median = store.server_histories(NOW)["A"].median_latency_ms
    assert median is not None
    assert abs(math.log2(median / 150)) <= HALF_BUCKET


def test_figures_include_rounds_recorded_after_a_query_in_any_hour(store: Store) -> None:
    store.record_round([online("A", NOW - timedelta(hours=3), 100)], {}, [])
    assert store.server_histories(NOW)["A"].uptime_24h == 1.0
    store.record_round([offline("A", NOW - timedelta(minutes=1))], {}, [])  # this hour
    assert store.server_histories(NOW)["A"].uptime_24h == pytest.approx(1 / 2)
    store.record_round([offline("A", NOW - timedelta(hours=5))], {}, [])  # a late round, hours ago
    assert store.server_histories(NOW)["A"].uptime_24h == pytest.approx(1 / 3)
    for i in range(2):
        store.record_round([online("A", NOW - timedelta(hours=2, seconds=i), 400)], {}, [])
    history = store.server_histories(NOW)["A"]
    assert history.uptime_24h == pytest.approx(3 / 5) and history.uptime_7d == pytest.approx(3 / 5)
    assert history.median_latency_ms is not None and abs(math.log2(history.median_latency_ms / 400)) <= HALF_BUCKET
    later = store.server_histories(NOW + timedelta(hours=21))["A"]  # the 3 h and 5 h old rounds left the day
    assert later.uptime_24h == pytest.approx(2 / 3) and later.uptime_7d == pytest.approx(3 / 5)


def test_figures_kept_up_to_date_hour_by_hour_equal_figures_summed_afresh(tmp_path: Path) -> None:
    """The store keeps running sums between queries; a store opened afresh sums everything: same figures."""
    data = tmp_path / "data"
    rng = random.Random(6)
    warm = Store.open(data)
    start = NOW - timedelta(days=9)

    def rounds_at(at: datetime) -> None:
        results = [
            online(name, at, rng.choice([20, 80, 81, 300, 2000])) if rng.random() < 0.8 else offline(name, at)
            for name in rng.sample(["A", "B", "C"], rng.randint(1, 3))
        ]
        warm.record_round(results, {}, [])

    for minutes in range(0, 40 * 60, 20):  # 40 hours of rounds every 20 minutes
        rounds_at(start + timedelta(minutes=minutes))
    # Queries an hour apart (the sums move on), across the day's and the week's ends of those 40 hours,
    # and jumps (summed afresh), backwards too; with rounds of this hour, later ones and late ones.
    query_hours = [*range(0, 45), 80, 79, *range(160, 215), 300, 301]
    late_minutes = [-10_081, -10_080, -10_020, -1_441, -1_440, -1_380, -600, -61, -1, 0, 1, 70]
    for step, hour in enumerate(query_hours):
        moment = start + timedelta(hours=hour, minutes=rng.randint(0, 59))
        for _ in range(rng.randint(0, 4)):
            rounds_at(moment + timedelta(minutes=rng.choice(late_minutes) + rng.random()))
        if step == 7:
            warm.record_restarts([restart("C", "alice", CommandOutcome.SUCCEEDED, moment, 0)])
        cold = Store.open(data)
        try:
            assert warm.server_histories(moment) == cold.server_histories(moment), f"at hour {hour}"
        finally:
            cold.close()
    warm.close()


@pytest.mark.parametrize("latency", [1, 3, 7, 19, 50, 137, 181, 250, 999, 4321, 29_000])
def test_a_single_latency_comes_back_within_the_documented_tolerance(store: Store, latency: int) -> None:
    store.record_round([online("A", NOW - timedelta(minutes=5), latency)], {}, [])
    median = store.server_histories(NOW)["A"].median_latency_ms
    assert median is not None
    assert abs(math.log2(median / latency)) <= HALF_BUCKET + 1e-9


def test_no_answers_means_no_median_and_zero_uptime(store: Store) -> None:
    store.record_round([offline("A", NOW - timedelta(minutes=m)) for m in (1,)], {}, [])
    store.record_round([offline("A", NOW - timedelta(minutes=2))], {}, [])
    history = store.server_histories(NOW)["A"]
    assert history.uptime_24h == 0.0 and history.uptime_7d == 0.0
    assert history.median_latency_ms is None


def test_the_last_restart_per_server_with_who_outcome_duration_and_exit_code(store: Store) -> None:
    store.record_restarts([restart("A", "alice", CommandOutcome.SUCCEEDED, NOW - timedelta(hours=3), 0)])
    an_hour_ago = NOW - timedelta(hours=1)
    store.record_restarts(
        [restart("A", "bob", CommandOutcome.FAILED, an_hour_ago, 3), restart("B", "bob", None, an_hour_ago)]
    )
    histories = store.server_histories(NOW)
    assert set(histories) == {"A", "B"}  # restarted but never sampled still has a history
    last_a = histories["A"].last_restart
    assert last_a == RestartRecord("A", NOW - timedelta(hours=1), Origin.DISCORD, "bob", "failed", "why", 4.5, 3, None)
    last_b = histories["B"].last_restart
    assert last_b is not None and last_b.outcome == "already restarting"
    assert last_b.exit_code is None and last_b.duration_s is None
    assert histories["A"].uptime_24h is None


def test_a_restart_left_running_by_a_killed_bot_is_cut_off_at_its_next_start_and_its_message_told_once(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    began = NOW - timedelta(minutes=5)

    def running(server: str, origin: Origin, at: datetime = began) -> RestartRecord:
        return RestartRecord(server, at, origin, "alice (1)", RUNNING, "", None, None, None)

    store = Store.open(data)
    # A and B asked for together, in one message: A ends, B is still running when the bot is killed.
    row, _ = store.begin_restarts([running("A", Origin.DISCORD), running("B", Origin.DISCORD)], "10/20")
    store.end_restarts([(row, restart("A", "alice (1)", CommandOutcome.SUCCEEDED, began, 0))])
    store.begin_restarts([running("C", Origin.CLI)], None)  # another process's: it may still be running
    assert store.unshown_restarts(NOW) == {}  # B still runs: nothing to tell yet
    store.close()

    store = Store.open(data)  # the bot starts again
    assert store.cut_off_restarts([Origin.DISCORD, Origin.AUTOMATIC], "interrupted", "cut off") == 1
    (later,) = store.begin_restarts([running("A", Origin.DISCORD, NOW + timedelta(minutes=1))], "30/40")  # its own
    store.end_restarts([(later, restart("A", "alice (1)", CommandOutcome.SUCCEEDED, NOW, 0))])
    unshown = store.unshown_restarts(NOW)
    assert {reply: [(r.server, r.outcome, r.reason) for r in records] for reply, records in unshown.items()} == {
        "10/20": [("A", "restarted", "why"), ("B", "interrupted", "cut off")]
    }
    store.shown("10/20")
    assert store.unshown_restarts(NOW) == {}
    audit = [entry for entry in store.history() if isinstance(entry, RestartRecord)]
    store.close()
    assert sorted((r.server, r.outcome) for r in audit) == [
        ("A", "restarted"),
        ("A", "restarted"),
        ("B", "interrupted"),
        ("C", RUNNING),
    ]
    assert RestartRecord("A", began, Origin.DISCORD, "alice (1)", "restarted", "why", 4.5, 0, None) in audit


# -- history


def test_history_lists_restarts_and_outages_with_their_end_newest_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first_down = NOW - timedelta(hours=5, microseconds=3)
    second_down = NOW - timedelta(hours=1)
    store = Store.open(data)
    store.record_round([], {}, [Outage("A", "connection refused", first_down)])
    store.record_round([], {}, [Reminder("A", "connection refused", first_down, first_down + timedelta(hours=1))])
    store.record_restarts([restart("A", "alice", CommandOutcome.SUCCEEDED, NOW - timedelta(hours=3), 0)])
    store.record_round([], {}, [Recovery("A", first_down, NOW - timedelta(hours=2, minutes=50))])
    store.record_restarts([restart("B", "bob", CommandOutcome.TIMED_OUT, NOW - timedelta(hours=2))])
    store.close()
    store = Store.open(data)  # the recovery of a restarted bot still closes the outage
    store.record_round([], {}, [Outage("A", "no answer within 5 s", second_down)])

    entries = store.history()
    assert entries == [
        OutageRecord("A", second_down, "no answer within 5 s", None),
        RestartRecord("B", NOW - timedelta(hours=2), Origin.DISCORD, "bob", "timed out", "why", 4.5, None, None),
        RestartRecord("A", NOW - timedelta(hours=3), Origin.DISCORD, "alice", "restarted", "why", 4.5, 0, None),
        OutageRecord("A", first_down, "connection refused", NOW - timedelta(hours=2, minutes=50)),
    ]
    assert store.history("A") == [entries[0], entries[2], entries[3]]
    assert store.history("B") == [entries[1]]
    assert store.history("Nobody") == []
    assert store.history(limit=2) == entries[:2]
    store.close()


def test_history_shows_degraded_spells_ended_when_fully_online_or_by_an_outage(store: Store) -> None:
    spells = [NOW - timedelta(hours=h) for h in (6, 4, 1)]
    refused = "refuses the bot: HTTP 403"
    store.record_round([], {}, [Degraded("A", refused, spells[0], Cause.REFUSED)])
    store.record_round([], {}, [Healthy("A", spells[0], spells[0] + timedelta(minutes=20))])
    store.record_round([], {}, [Degraded("A", "no webhooks for 10 min", spells[1], Cause.SILENCE)])
    store.record_round([], {}, [Outage("A", "connection refused", spells[1] + timedelta(minutes=30))])
    store.record_round([], {}, [Recovery("A", spells[1] + timedelta(minutes=30), spells[1] + timedelta(hours=1))])
    store.record_round([], {}, [Degraded("A", "delivery queue 350 > 200", spells[2], Cause.QUEUE)])
    assert store.history() == [
        DegradedRecord("A", spells[2], "delivery queue 350 > 200", None),
        OutageRecord("A", spells[1] + timedelta(minutes=30), "connection refused", spells[1] + timedelta(hours=1)),
        DegradedRecord("A", spells[1], "no webhooks for 10 min", spells[1] + timedelta(minutes=30)),
        DegradedRecord("A", spells[0], refused, spells[0] + timedelta(minutes=20)),
    ]


def test_degraded_checks_count_apart_from_uptime_which_still_counts_answers(store: Store) -> None:
    at = NOW - timedelta(minutes=30)
    refused = HealthResult("A", True, at, 403, 10.0, reason="refuses the bot: HTTP 403", cause=Cause.REFUSED)
    for minute, result in enumerate([online("A", at), refused, refused, offline("A", at)]):
        store.record_round([dataclasses.replace(result, checked_at=at + timedelta(minutes=minute))], {}, [])
    history = store.server_histories(NOW)["A"]
    assert (history.uptime_24h, history.degraded_24h, history.degraded_7d) == (0.75, 0.5, 0.5)


def test_degraded_watches_and_webhook_counters_survive_a_reopen(tmp_path: Path) -> None:
    data = tmp_path / "data"
    watch = ServerWatch(State.DEGRADED, 0, 3, None, None, None, 3, 0, NOW, NOW)
    store = Store.open(data)
    store.record_round([], {"NG": watch}, [], {"NG": Quiet(1234.0, NOW)})
    store.close()
    store = Store.open(data)
    assert store.load_watches() == {"NG": watch}
    assert store.load_quiet() == {"NG": Quiet(1234.0, NOW)}
    store.close()


def test_a_version_3_database_is_migrated_keeping_its_state_and_figures(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    hour = int((NOW - timedelta(hours=2)).timestamp() // 3600)
    connection = sqlite3.connect(data / FILE_NAME, isolation_level=None)
    connection.executescript(migration(1) + migration(2) + migration(3) + "\nPRAGMA user_version = 3;")
    connection.execute("INSERT INTO servers VALUES (1, 'A')")
    connection.execute("INSERT INTO hourly VALUES (1, ?, 10, 9)", (hour,))
    down = (NOW - timedelta(minutes=5)).timestamp()
    connection.execute("INSERT INTO watches VALUES (1, 'offline', 3, 0, ?, ?, ?)", (down, down, down))
    connection.close()
    store = Store.open(data)
    history = store.server_histories(NOW)["A"]
    (watch,) = store.load_watches().values()
    store.close()
    assert (history.uptime_24h, history.degraded_24h) == (0.9, 0.0)
    assert (watch.state, watch.failures, watch.down_since) == (State.DOWN, 3, datetime.fromtimestamp(down, UTC))
    assert (watch.degraded, watch.healthy, watch.degraded_since) == (0, 0, None)


# -- mutes and small values


def test_mutes_expire_and_unmute_ends_them_early(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store.open(data)
    store.mute(["A", "B"], NOW + timedelta(hours=1), "alice")
    store.mute(["C"], NOW + timedelta(minutes=10), "bob")
    assert store.mutes(NOW) == {
        "A": NOW + timedelta(hours=1),
        "B": NOW + timedelta(hours=1),
        "C": NOW + timedelta(minutes=10),
    }
    store.close()
    store = Store.open(data)  # mutes outlive the bot
    assert set(store.mutes(NOW + timedelta(minutes=10))) == {"A", "B"}  # C ended exactly then
    assert set(store.mutes(NOW)) == {"A", "B"}  # and is gone for good, not back when the clock is earlier
    assert store.unmute(["A", "Unknown"], NOW) == ["A"]
    assert set(store.mutes(NOW)) == {"B"}
    store.mute(["B"], NOW + timedelta(minutes=1), "carol")  # a new mute replaces the old one
    assert store.mutes(NOW) == {"B": NOW + timedelta(minutes=1)}
    assert store.mutes(NOW + timedelta(hours=2)) == {}
    store.close()


def test_kv_get_and_put_persist(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store.open(data)
    assert store.get("status_message") is None
    store.put("status_message", "123")
    store.put("status_message", "456")
    store.put("other", "")
    store.close()
    store = Store.open(data)
    assert store.get("status_message") == "456"
    assert store.get("other") == ""
    store.close()


# -- pruning


def test_prune_drops_samples_older_than_30_days_and_keeps_newer_ones(tmp_path: Path, store: Store) -> None:
    data = tmp_path / "data"
    for days in (45, 31, 30.5, 29.9, 7, 0.1):
        store.record_round([online("A", NOW - timedelta(days=days)), offline("B", NOW - timedelta(days=days))], {}, [])
    assert store.prune(NOW, force=True) == 6  # 3 ages x 2 servers
    kept = rows(data, "SELECT server_id, at_ms FROM samples ORDER BY at_ms")
    assert len(kept) == 6
    oldest_ms = min(at for _, at in kept)
    assert oldest_ms >= (NOW - timedelta(days=30)).timestamp() * 1000
    ((oldest_hour,),) = rows(data, "SELECT MIN(hour) FROM hourly")
    assert oldest_hour >= int((NOW - timedelta(days=30)).timestamp() // 3600) - 1
    # The week's figures are untouched.
    assert store.server_histories(NOW)["A"].uptime_7d == 1.0
    assert store.prune(NOW, force=True) == 0


def test_prune_runs_at_most_once_an_hour_unless_forced(tmp_path: Path, store: Store) -> None:
    data = tmp_path / "data"
    store.record_round([online("A", NOW - timedelta(days=40))], {}, [])
    assert store.prune(NOW) == 1
    store.record_round([online("A", NOW - timedelta(days=40, minutes=1))], {}, [])
    assert store.prune(NOW + timedelta(minutes=59)) == 0
    assert rows(data, "SELECT COUNT(*) FROM samples") == [(1,)]
    assert store.prune(NOW + timedelta(hours=1)) == 1
    store.record_round([online("A", NOW - timedelta(days=40, minutes=2))], {}, [])
    assert store.prune(NOW + timedelta(hours=1, minutes=1), force=True) == 1
    assert rows(data, "SELECT COUNT(*) FROM samples") == [(0,)]


# -- start-up errors


def test_garbage_in_the_database_file_names_the_variable_and_says_to_move_it_away(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / FILE_NAME).write_bytes(b"this is not a database, just some text that got here\n" * 100)
    with pytest.raises(StoreError) as caught:
        Store.open(data)
    message = str(caught.value)
    assert message.startswith("PORACLE_DATA_DIR")
    assert str(data / FILE_NAME) in message and "damaged" in message and "move it away" in message


def test_a_database_damaged_inside_is_caught_at_start_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store.open(data)
    for minute in range(3000):  # enough rows for many pages
        store.record_round([online(f"server-{minute % 50}", NOW - timedelta(minutes=minute))], {}, [])
    store.close()
    path = data / FILE_NAME
    assert not path.with_name(FILE_NAME + "-wal").exists() or path.with_name(FILE_NAME + "-wal").stat().st_size == 0
    size = path.stat().st_size
    assert size > 16 * 4096
    with path.open("r+b") as file:  # the header stays valid; pages in the middle are overwritten
        file.seek(4 * 4096)
        file.write(b"\xa5" * (8 * 4096))
    with pytest.raises(StoreError) as caught:
        Store.open(data)
    message = str(caught.value)
    assert message.startswith("PORACLE_DATA_DIR") and "move it away" in message


@pytest.mark.parametrize("where", ["under a file", "is a file", "database is a directory"])
def test_a_data_dir_that_cannot_be_used_is_a_clear_error_even_for_root(tmp_path: Path, where: str) -> None:
    # chmod does not stop root (CI runs as root): these fail for every user.
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file\n")
    data = {"under a file": blocker / "data", "is a file": blocker, "database is a directory": tmp_path / "d"}[where]
    if where == "database is a directory":
        (data / FILE_NAME).mkdir(parents=True)
    with pytest.raises(StoreError) as caught:
        Store.open(data)
    message = str(caught.value)
    assert message.startswith("PORACLE_DATA_DIR") and str(data) in message
    assert "Traceback" not in message
    assert blocker.read_text() == "a regular file\n"


# -- through the command line


NO_NETWORK = """
import os, runpy, sys
def refuse(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"):
        os.write(2, f"NETWORK {event} {args!r}\\n".encode())
        os._exit(99)
sys.addaudithook(refuse)
sys.argv = ["poracle-bot", "run"]
runpy.run_module("bot", run_name="__main__")
"""


async def run_cli_without_network(cwd: Path, data_dir: Path) -> tuple[int, str]:
    """`poracle-bot run`, in a process that dies (exit 99, saying where) at its first attempt to use the network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORACLE_", "DISCORD_"))}
    env |= {
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": "MTIz.not-a-real-token.x",
        "DISCORD_ADMIN_ROLE_IDS": "123",
        "PORACLE_DATA_DIR": str(data_dir),
        "PORACLE_SERVER_1_HOST": "127.0.0.1",
        "PORACLE_SERVER_1_API": "http://127.0.0.1:9",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", NO_NETWORK, cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def test_run_with_a_corrupt_database_exits_2_with_the_fix_before_any_network(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / FILE_NAME).write_bytes(b"\x00garbage" * 512)
    code, output = await run_cli_without_network(tmp_path, data)
    assert code == 2, output
    assert "configuration error" in output and "PORACLE_DATA_DIR" in output and "move it away" in output
    assert "Traceback" not in output and "NETWORK" not in output


async def test_run_with_an_unusable_data_dir_exits_2(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    code, output = await run_cli_without_network(tmp_path, tmp_path / "afile" / "data")
    assert code == 2, output
    assert "PORACLE_DATA_DIR" in output and "Traceback" not in output and "NETWORK" not in output


async def test_run_with_a_good_data_dir_goes_on_to_log_in(tmp_path: Path) -> None:
    """The guard's control: with a usable database the same command does reach for Discord (and is stopped)."""
    code, output = await run_cli_without_network(tmp_path, tmp_path / "data")
    assert code == 99, output
    assert "NETWORK" in output and "discord" in output
    assert (tmp_path / "data" / FILE_NAME).is_file()


def test_a_version_1_database_is_migrated_with_its_figures(tmp_path: Path) -> None:
    """Schema 1 kept each hour's latency histogram as JSON text; the figures survive the migration."""
    data = tmp_path / "data"
    hour = int((NOW - timedelta(hours=2)).timestamp() // 3600)
    old_hour = int((NOW - timedelta(days=3)).timestamp() // 3600)
    connection = older_database(data, 1)
    # 100 ms is bucket 27 (4 * log2(100) = 26.6), 200 ms bucket 31: 3 answers of 100 ms, 1 of 200 ms, 1 timeout.
    connection.execute("INSERT INTO hourly VALUES (1, ?, 5, 4, ?)", (hour, '{"27":3,"31":1}'))
    connection.execute("INSERT INTO hourly VALUES (1, ?, 5, 0, '{}')", (old_hour,))
    connection.close()

    store = Store.open(data)
    history = store.server_histories(NOW)["A"]
    assert history.uptime_24h == pytest.approx(4 / 5) and history.uptime_7d == pytest.approx(4 / 10)
    assert history.median_latency_ms is not None and abs(math.log2(history.median_latency_ms / 100)) <= HALF_BUCKET
    store.record_round([online("A", NOW - timedelta(hours=2, minutes=1), 200)] * 1, {}, [])
    store.record_round([online("A", NOW - timedelta(hours=2, minutes=2), 200)], {}, [])
    store.record_round([online("A", NOW - timedelta(hours=2, minutes=3), 200)], {}, [])
    history = store.server_histories(NOW)["A"]
    assert history.uptime_24h == pytest.approx(7 / 8)
    assert history.median_latency_ms is not None and abs(math.log2(history.median_latency_ms / 200)) <= HALF_BUCKET
    store.close()
    assert rows(data, "PRAGMA user_version")[0][0] >= 2


def test_restarts_audited_before_schema_3_came_from_discord(tmp_path: Path) -> None:
    data = tmp_path / "data"
    connection = older_database(data, 2)
    connection.execute(
        "INSERT INTO restarts(server_id, at, requested_by, outcome, reason) VALUES (1, ?, 'alice (1)', 'restarted', "
        "'exit code 0')",
        ((NOW - timedelta(hours=1)).timestamp(),),
    )
    connection.close()
    store = Store.open(data)
    (record,) = store.history()
    store.record_restarts([RestartResult("A", Requester(Origin.CLI, "root"), None).record(NOW)])
    newest, _ = store.history()
    store.close()
    assert isinstance(record, RestartRecord) and (record.origin, record.requested_by) == (Origin.DISCORD, "alice (1)")
    assert isinstance(newest, RestartRecord) and (newest.origin, newest.requested_by) == (Origin.CLI, "root")


def test_the_first_acknowledgement_of_an_outage_is_kept_through_a_reopen(tmp_path: Path) -> None:
    data = tmp_path / "data"
    since = NOW - timedelta(minutes=5)
    store = Store.open(data)
    alice = Acknowledgement("A", since, "alice (1)", NOW, "on it")
    assert store.acknowledge(alice) == alice
    assert store.acknowledge(Acknowledgement("A", since, "bob (2)", NOW + timedelta(minutes=1))) == alice
    assert store.acknowledgement("A", since - timedelta(hours=1)) is None  # another outage of A
    assert store.acknowledgement("B", since) is None
    store.close()
    store = Store.open(data)
    assert store.acknowledgement("A", since) == alice
    store.close()


def test_pending_events_carry_the_acknowledgement_of_their_outage(store: Store) -> None:
    since = NOW - timedelta(minutes=5)
    outage, reminder = Outage("A", "refused", since), Reminder("A", "refused", since, NOW)
    recovery, other = Recovery("A", since, NOW + timedelta(minutes=1)), Outage("B", "refused", since)
    store.record_round([], {}, [outage, other])
    store.mark_events([s.id for s in store.pending_events()], "delivered")
    ack = store.acknowledge(Acknowledgement("A", since, "alice (1)", NOW))
    store.record_round([], {}, [reminder, recovery, Outage("B", "refused", NOW)])
    assert [(s.event, s.ack) for s in store.pending_events()] == [
        (reminder, ack),
        (recovery, ack),
        (Outage("B", "refused", NOW), None),
    ]


def test_a_version_3_database_gains_acknowledgements_and_keeps_its_outbox(tmp_path: Path) -> None:
    data = tmp_path / "data"
    connection = older_database(data, 3)
    since = (NOW - timedelta(minutes=5)).timestamp()
    connection.execute(
        "INSERT INTO events(round, kind, server_id, reason, since, at) VALUES (1, 'outage', 1, 'x', ?, ?)",
        (since, since),
    )
    connection.close()
    store = Store.open(data)
    (pending,) = store.pending_events()
    store.acknowledge(Acknowledgement("A", pending.event.since, "alice (1)", NOW))
    store.close()
    assert pending.ack is None and isinstance(pending.event, Outage)
    assert rows(data, "SELECT by FROM acks") == [("alice (1)",)]
