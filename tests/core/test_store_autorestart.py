"""What the store keeps of automatic restarts (schemas 8 and 9): the rails' state with the alerts they make
("needs a human", the notice of a restart that ran), the person's last restart, the history, and the counts
behind the bot's own metrics."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.core.autorestart import AutoRestarted, NeedsHuman, RailState
from bot.core.store import NeedsHumanRecord, Origin, RestartRecord, Store
from tests.support.database import NOW, older_database, rows


def restart(origin: Origin, by: str, minutes_ago: int, outcome: str = "restarted") -> RestartRecord:
    return RestartRecord("A", NOW - timedelta(minutes=minutes_ago), origin, by, outcome, "exit code 0", 1.0, 0, True)


def test_the_rails_state_and_its_call_for_a_human_are_kept_together_across_a_reopen(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store.open(data)
    latched = NeedsHuman("A", "3 automatic restart(s) in 6 h did not bring it back", NOW)
    state = RailState(
        [NOW - timedelta(minutes=30), NOW - timedelta(minutes=20)], NOW - timedelta(minutes=20), 2, 1, None, latched
    )
    store.save_auto_restarts({"A": state, "B": RailState(up_since=NOW)}, [latched])
    (pending,) = store.pending_events()
    store.close()

    reopened = Store.open(data)
    assert reopened.load_auto_restarts() == {"A": state, "B": RailState(up_since=NOW)}
    assert pending.event == latched
    reopened.save_auto_restarts({"A": RailState()})  # replaced, not added to; nothing raised this time
    assert reopened.load_auto_restarts()["A"] == RailState()
    assert len(reopened.pending_events()) == 1
    reopened.close()


def test_the_notice_of_an_automatic_restart_waits_in_the_outbox_as_it_was_told(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store.open(data)
    failed = AutoRestarted("A", "poracle", NOW, "failed", "exit code 1", None, 2, 3, "pm2 process poracle: errored")
    fixed = AutoRestarted("B", None, NOW, "restarted", "", True, 1, 3, "offline (connection refused)")
    store.save_auto_restarts({"A": RailState(streak=2), "B": RailState(streak=1)}, [failed, fixed])
    store.close()
    reopened = Store.open(data)  # a bot restarted before Discord came back
    assert [pending.event for pending in reopened.pending_events()] == [failed, fixed]
    assert reopened.load_auto_restarts()["A"] == RailState(streak=2)  # written together
    reopened.close()


def test_a_schema_7_database_gains_the_table(tmp_path: Path) -> None:
    data = tmp_path / "data"
    older_database(data, 7).close()
    store = Store.open(data)
    assert store.load_auto_restarts() == {}
    store.save_auto_restarts({"A": RailState(streak=1)})
    assert store.load_auto_restarts() == {"A": RailState(streak=1)}
    store.close()
    assert rows(data, "PRAGMA user_version") == [(9,)]  # and on to the notices' detail


def test_the_last_restart_by_a_person_is_read_from_the_audit_leaving_automatic_ones_out(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "data")
    assert store.last_person_restarts() == {}
    store.record_restarts(
        [
            restart(Origin.DISCORD, "alice (1)", 50),
            restart(Origin.CLI, "root", 40),
            restart(Origin.AUTOMATIC, "poracle-bot", 5),
        ]
    )
    assert {name: (r.requested_by, r.origin) for name, r in store.last_person_restarts().items()} == {
        "A": ("root", Origin.CLI)
    }
    store.close()


def test_history_shows_the_calls_for_a_human_and_the_counts_add_up(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "data")
    store.record_restarts([restart(Origin.AUTOMATIC, "poracle-bot", 10), restart(Origin.AUTOMATIC, "poracle-bot", 5)])
    store.record_restarts([restart(Origin.DISCORD, "alice (1)", 1, "failed")])
    latched = NeedsHuman("A", "2 automatic restarts in a row failed (timed out)", NOW - timedelta(minutes=4))
    store.save_auto_restarts({"A": RailState(needs_human=latched)}, [latched])
    history = store.history("A")
    assert [type(entry).__name__ for entry in history] == [
        "RestartRecord",
        "NeedsHumanRecord",
        "RestartRecord",
        "RestartRecord",
    ]
    assert history[1] == NeedsHumanRecord("A", latched.since, latched.reason)
    assert store.restart_counts() == [("A", "automatic", "restarted", 2), ("A", "discord", "failed", 1)]
    assert store.alert_counts() == [("needs-human", "pending", 1)]
    (event,) = store.pending_events()
    store.mark_events([event.id], "delivered")
    assert store.alert_counts() == [("needs-human", "delivered", 1)]
    store.close()
