"""Durability: a writer SIGKILLed mid-round loses nothing it reported and leaves whole rounds only. (What the
watchdog does with a restored store, no repeats and no lost alerts, is in test_watchdog.py.)"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from bot.core.store import FILE_NAME, Store

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
