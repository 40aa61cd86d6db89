"""Schema 4 (pm2 processes): a database of schema 3 keeps its alerts and audit, whole-server ones, and its
pending alerts go out as before."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from bot.core.monitor import Outage
from bot.core.store import FILE_NAME, RestartRecord, Store
from tests.core.test_store import NOW, migration


def test_a_schema_3_database_keeps_its_alerts_and_restarts_as_whole_servers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    connection = sqlite3.connect(data / FILE_NAME, isolation_level=None)
    connection.executescript(migration(1) + migration(2) + migration(3) + "\nPRAGMA user_version = 3;")
    connection.execute("INSERT INTO servers VALUES (1, 'A')")
    since = (NOW - timedelta(hours=1)).timestamp()
    connection.execute(
        "INSERT INTO events(round, kind, server_id, reason, since, at) VALUES (7, 'outage', 1, 'x', ?, ?)",
        (since, since),
    )
    connection.execute(
        "INSERT INTO restarts(server_id, at, requested_by, outcome, reason, origin) "
        "VALUES (1, ?, 'root', 'restarted', 'exit code 0', 'cli')",
        (since,),
    )
    connection.close()
    store = Store.open(data)
    (pending,) = store.pending_events()
    history = store.history()
    watches = store.load_process_watches()
    store.close()
    assert isinstance(pending.event, Outage) and (pending.round, pending.event.server) == (7, "A")
    restart = next(entry for entry in history if isinstance(entry, RestartRecord))
    assert (restart.server, restart.outcome, restart.process) == ("A", "restarted", None)
    assert watches == {}
