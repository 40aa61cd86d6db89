"""Schema 5 (pm2 processes): a database of schema 4 keeps its alerts, their acknowledgements and its audit,
whole-server ones all, and its pending alerts go out as before."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.core.monitor import Reminder
from bot.core.store import RestartRecord, Store
from tests.support.database import NOW, older_database


def test_a_schema_4_database_keeps_its_alerts_acknowledgements_and_restarts_as_whole_servers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    at = (NOW - timedelta(hours=1)).timestamp()
    old = older_database(data, 4)
    old.executescript(
        "INSERT INTO events(round, kind, server_id, reason, since, at) "
        f"VALUES (7, 'reminder', 1, 'x', {at}, {at + 600});"
        f"INSERT INTO acks VALUES (1, {at}, 'alice (1)', {at + 60}, 'on it');"
        "INSERT INTO restarts(server_id, at, requested_by, outcome, reason, origin) "
        f"VALUES (1, {at}, 'root', 'restarted', 'exit code 0', 'cli');"
    )
    old.close()
    store = Store.open(data)
    (pending,) = store.pending_events()
    history = store.history()
    watches = store.load_process_watches()
    store.close()
    assert isinstance(pending.event, Reminder) and (pending.round, pending.event.server) == (7, "A")
    assert pending.ack is not None and (pending.ack.by, pending.ack.reason) == ("alice (1)", "on it")
    restart = next(entry for entry in history if isinstance(entry, RestartRecord))
    assert (restart.server, restart.outcome, restart.process) == ("A", "restarted", None)
    assert watches == {}
