"""Embedded state in SQLite: monitor state, the alert outbox, check samples, the restart audit, mutes.

Every monitor round is one transaction (state, samples and the alerts it raised together), in WAL mode:
a bot killed at any moment, SIGKILL included, reopens a consistent database with everything committed.
The methods are synchronous and thread-safe; the bot calls them with `asyncio.to_thread` so the event
loop never waits on the disk.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.health import HealthResult
from bot.monitor import Event, Outage, Recovery, Reminder, ServerWatch, State
from bot.service import RestartResult

FILE_NAME = "poracle.db"
SAMPLE_RETENTION = timedelta(days=30)
PRUNE_EVERY = timedelta(hours=1)
# Latency histograms use 4 buckets per doubling (each about 19 % wide): a median within 9 % (half a bucket)
# from hourly rows, instead of reading a million raw samples for every /poracle status.
_BUCKETS_PER_DOUBLING = 4

_MIGRATIONS: Sequence[str] = (
    """
    CREATE TABLE servers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE watches (
        server_id INTEGER PRIMARY KEY REFERENCES servers(id),
        state TEXT NOT NULL, failures INTEGER NOT NULL, successes INTEGER NOT NULL,
        first_failure REAL, down_since REAL, last_alert REAL
    );
    -- status: the HTTP status when the server answered, NULL when it did not.
    CREATE TABLE samples (
        server_id INTEGER NOT NULL, at_ms INTEGER NOT NULL, status INTEGER, latency_ms INTEGER,
        PRIMARY KEY (server_id, at_ms)
    ) WITHOUT ROWID;
    CREATE TABLE hourly (
        server_id INTEGER NOT NULL, hour INTEGER NOT NULL, checks INTEGER NOT NULL, online INTEGER NOT NULL,
        latency_hist TEXT NOT NULL, PRIMARY KEY (server_id, hour)
    ) WITHOUT ROWID;
    -- The alert outbox: delivery is pending until the post succeeded, or muted/off when nobody is told.
    CREATE TABLE events (
        id INTEGER PRIMARY KEY, round INTEGER NOT NULL, kind TEXT NOT NULL,
        server_id INTEGER NOT NULL REFERENCES servers(id),
        reason TEXT, since REAL NOT NULL, at REAL NOT NULL, delivery TEXT NOT NULL DEFAULT 'pending'
    );
    CREATE INDEX events_pending ON events(id) WHERE delivery = 'pending';
    CREATE INDEX events_server ON events(server_id, at);
    CREATE TABLE restarts (
        id INTEGER PRIMARY KEY, server_id INTEGER NOT NULL REFERENCES servers(id), at REAL NOT NULL,
        requested_by TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL, exit_code INTEGER,
        duration_s REAL, healthy_after INTEGER
    );
    CREATE INDEX restarts_server ON restarts(server_id, at);
    CREATE TABLE mutes (server_id INTEGER PRIMARY KEY REFERENCES servers(id), until REAL NOT NULL, by TEXT NOT NULL);
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: latency histograms as rows, summed by SQLite: a JSON text per server and hour made /poracle status
    # parse and merge 4,800 of them (200 servers, 24 h) in Python for each status (bench/store_week.py).
    """
    CREATE TABLE latency (
        server_id INTEGER NOT NULL, hour INTEGER NOT NULL, bucket INTEGER NOT NULL, answers INTEGER NOT NULL,
        PRIMARY KEY (server_id, hour, bucket)
    ) WITHOUT ROWID;
    INSERT INTO latency SELECT server_id, hour, CAST(key AS INTEGER), value FROM hourly, json_each(latency_hist);
    ALTER TABLE hourly DROP COLUMN latency_hist;
    """,
)


class StoreError(Exception):
    """The data directory or database cannot be used; the message says what to do."""


class _NewerSchema(sqlite3.DatabaseError):
    """The database is fine, but a newer poracle-bot migrated it."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    round: int
    event: Event
    # A recovery from an outage nobody was told of (muted, or no alert channel) is news to nobody either.
    follows_silence: bool = False


@dataclass(frozen=True, slots=True)
class RestartRecord:
    server: str
    at: datetime
    requested_by: str
    outcome: str  # the word shown: restarted, failed, timed out
    reason: str
    duration_s: float | None
    exit_code: int | None
    healthy_after: bool | None


@dataclass(frozen=True, slots=True)
class OutageRecord:
    server: str
    since: datetime
    reason: str
    until: datetime | None  # None: still down

    @property
    def at(self) -> datetime:
        return self.since


HistoryEntry = RestartRecord | OutageRecord


@dataclass(frozen=True, slots=True)
class ServerHistory:
    uptime_24h: float | None  # fraction 0..1; None without samples
    uptime_7d: float | None
    median_latency_ms: float | None  # of the answers in the last 24 h
    last_restart: RestartRecord | None


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _bucket(latency_ms: float) -> int:
    return round(_BUCKETS_PER_DOUBLING * math.log2(max(latency_ms, 1.0)))


def _median(histogram: Mapping[int, int]) -> float | None:
    total = sum(histogram.values())
    if total == 0:
        return None
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen * 2 >= total:
            return float(2 ** (bucket / _BUCKETS_PER_DOUBLING))
    raise AssertionError("unreachable: the counts add up to total")


class Store:
    """The bot's SQLite database in PORACLE_DATA_DIR."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._lock = threading.Lock()
        self._server_ids: dict[str, int] = {}
        self._round = self._db.execute("SELECT COALESCE(MAX(round), 0) FROM events").fetchone()[0]
        self._last_prune: datetime | None = None
        # The figures of the hours before the current one, which no later round changes: /poracle status
        # then only reads the current hour's rows. Dropped when a round writes into an earlier hour.
        self._settled: _Rollup | None = None

    @classmethod
    def open(cls, data_dir: Path) -> Store:
        """Open (creating or migrating) the database; StoreError names PORACLE_DATA_DIR and the fix."""
        path = data_dir / FILE_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"PORACLE_DATA_DIR: cannot use {data_dir}: {exc}; make it a writable directory") from None
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode loses nothing when the process dies; only an OS crash may drop the last round.
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("integrity check failed")
            cls._migrate(connection)
        except _NewerSchema as exc:
            connection.close()
            raise StoreError(
                f"PORACLE_DATA_DIR: the database {path} was made by a newer poracle-bot ({exc}); "
                "run that version (or newer) again: this one cannot read it"
            ) from None
        except sqlite3.DatabaseError as exc:
            connection.close()
            reason = str(exc)
            if "readonly" in reason or "unable to open" in reason:
                raise StoreError(f"PORACLE_DATA_DIR: {data_dir} is not writable ({reason})") from None
            raise StoreError(
                f"PORACLE_DATA_DIR: the database {path} is damaged ({reason}); move it away to start afresh"
            ) from None
        return cls(connection)

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > len(_MIGRATIONS):
            raise _NewerSchema(f"schema {version}; this version knows up to {len(_MIGRATIONS)}")
        for number, script in enumerate(_MIGRATIONS[version:], version + 1):
            # executescript commits first; BEGIN makes the migration and its version number one transaction.
            connection.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """All the writes in the block, or none of them."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                self._server_ids.clear()  # ids of servers inserted in the transaction are gone with it
                raise
            self._db.execute("COMMIT")

    def _server_id(self, name: str) -> int:
        if name not in self._server_ids:
            self._db.execute("INSERT OR IGNORE INTO servers(name) VALUES (?)", (name,))
            (self._server_ids[name],) = self._db.execute("SELECT id FROM servers WHERE name = ?", (name,)).fetchone()
        return self._server_ids[name]

    # -- the monitor

    def load_watches(self) -> dict[str, ServerWatch]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, state, failures, successes, first_failure, down_since, last_alert "
                "FROM watches JOIN servers ON servers.id = server_id"
            ).fetchall()
        return {
            name: ServerWatch(State(state), failures, successes, _dt(first), _dt(down), _dt(alert))
            for name, state, failures, successes, first, down, alert in rows
        }

    def record_round(
        self, results: Sequence[HealthResult], watches: Mapping[str, ServerWatch], events: Sequence[Event]
    ) -> None:
        """One monitor round, all or nothing: the samples, every server's state and the alerts raised."""
        with self._transaction():
            self._round += 1
            self._record_samples(results)
            self._db.executemany(
                "INSERT OR REPLACE INTO watches VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        self._server_id(name),
                        watch.state.value,
                        watch.failures,
                        watch.successes,
                        watch.first_failure and _ts(watch.first_failure),
                        watch.down_since and _ts(watch.down_since),
                        watch.last_alert and _ts(watch.last_alert),
                    )
                    for name, watch in watches.items()
                ],
            )
            self._db.executemany(
                "INSERT INTO events(round, kind, server_id, reason, since, at) VALUES (?, ?, ?, ?, ?, ?)",
                [(self._round, *self._event_row(event)) for event in events],
            )

    def _record_samples(self, results: Sequence[HealthResult]) -> None:
        """The raw samples, and the hourly rollups the status figures are read from."""
        samples, hourly, latency = [], [], []
        for result in results:
            server_id = self._server_id(result.server)
            ms = round(result.latency_ms) if result.latency_ms is not None else None
            at = _ts(result.checked_at)
            hour = int(at // 3600)
            samples.append((server_id, int(at * 1000), result.status, ms))
            hourly.append((server_id, hour, int(result.online)))
            if result.online and ms is not None:
                latency.append((server_id, hour, _bucket(ms)))
        if self._settled is not None and any(row[1] < self._settled.hour for row in hourly):
            self._settled = None
        self._db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?)", samples)
        self._db.executemany(
            "INSERT INTO hourly VALUES (?, ?, 1, ?) "
            "ON CONFLICT DO UPDATE SET checks = checks + 1, online = online + excluded.online",
            hourly,
        )
        self._db.executemany(
            "INSERT INTO latency VALUES (?, ?, ?, 1) ON CONFLICT DO UPDATE SET answers = answers + 1", latency
        )

    def _event_row(self, event: Event) -> tuple[str, int, str | None, float, float]:
        server_id = self._server_id(event.server)
        if isinstance(event, Outage):
            return "outage", server_id, event.reason, _ts(event.since), _ts(event.since)
        if isinstance(event, Reminder):
            return "reminder", server_id, event.reason, _ts(event.since), _ts(event.at)
        return "recovery", server_id, None, _ts(event.down_since), _ts(event.recovered_at)

    def pending_events(self) -> list[StoredEvent]:
        """Alerts not yet delivered, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT events.id, round, kind, name, reason, since, at, kind = 'recovery' AND EXISTS ("
                "SELECT 1 FROM events o WHERE o.kind = 'outage' AND o.server_id = events.server_id "
                "AND o.since = events.since AND o.delivery IN ('muted', 'off')) FROM events "
                "JOIN servers ON servers.id = server_id WHERE delivery = 'pending' ORDER BY events.id"
            ).fetchall()
        return [StoredEvent(row[0], row[1], _event(*row[2:7]), bool(row[7])) for row in rows]

    def unsilence_outages(self, down_since: Mapping[str, datetime]) -> None:
        """Servers still down when their mute ended: their held-back outage alert goes out after all."""
        with self._transaction():
            self._db.executemany(
                "UPDATE events SET delivery = 'pending' WHERE kind = 'outage' AND delivery = 'muted' "
                "AND server_id = (SELECT id FROM servers WHERE name = ?) AND since = ?",
                [(name, _ts(since)) for name, since in down_since.items()],
            )

    def mark_events(self, ids: Iterable[int], delivery: str) -> None:
        """`delivered`, or `muted` / `off` for alerts nobody was to be told of."""
        with self._transaction():
            self._db.executemany("UPDATE events SET delivery = ? WHERE id = ?", [(delivery, i) for i in ids])

    # -- restarts

    def record_restarts(self, results: Iterable[RestartResult], at: datetime) -> None:
        """The audit: who restarted what, when, and how it went."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO restarts(server_id, at, requested_by, outcome, reason, exit_code, duration_s, "
                "healthy_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        self._server_id(result.server),
                        _ts(at),
                        result.requested_by,
                        result.word,
                        result.reason,
                        result.command.exit_code if result.command else None,
                        result.command.duration_s if result.command else None,
                        None if result.health is None else result.health.online,
                    )
                    for result in results
                ],
            )

    # -- reading history

    def history(self, server: str | None = None, limit: int = 50) -> list[HistoryEntry]:
        """The latest restarts and outages (of one server, or all), newest first."""
        with self._lock:
            restarts = self._db.execute(
                f"SELECT {_RESTART_COLUMNS} FROM restarts JOIN servers ON servers.id = server_id "
                "WHERE ?1 IS NULL OR name = ?1 ORDER BY at DESC LIMIT ?2",
                (server, limit),
            ).fetchall()
            # An outage ends with the recovery that names the same start.
            outages = self._db.execute(
                "SELECT name, o.since, o.reason, (SELECT MIN(r.at) FROM events r WHERE r.kind = 'recovery' "
                "AND r.server_id = o.server_id AND r.since = o.since) FROM events o "
                "JOIN servers ON servers.id = o.server_id WHERE o.kind = 'outage' AND (?1 IS NULL OR name = ?1) "
                "ORDER BY o.since DESC LIMIT ?2",
                (server, limit),
            ).fetchall()
        entries: list[HistoryEntry] = [_restart_record(row) for row in restarts]
        entries += [
            OutageRecord(name, datetime.fromtimestamp(since, UTC), reason, _dt(until))
            for name, since, reason, until in outages
        ]
        return sorted(entries, key=lambda entry: entry.at, reverse=True)[:limit]

    def server_histories(self, now: datetime) -> dict[str, ServerHistory]:
        """Uptime over 24 h and 7 d, the median latency of the last 24 h and the last restart, per server."""
        hour_now = int(_ts(now) // 3600)
        with self._lock:
            if self._settled is None or self._settled.hour != hour_now:
                self._settled = self._rollup(hour_now, settled=True)
            current = self._rollup(hour_now, settled=False)
            restarts = self._db.execute(
                f"SELECT {_RESTART_COLUMNS} FROM restarts JOIN servers ON servers.id = server_id "
                "WHERE restarts.id IN (SELECT MAX(id) FROM restarts GROUP BY server_id)"
            ).fetchall()
        counts = dict(self._settled.counts)
        for name, (day_checks, day_online, checks, online) in current.counts.items():
            before = counts.get(name, (0, 0, 0, 0))
            counts[name] = (before[0] + day_checks, before[1] + day_online, before[2] + checks, before[3] + online)
        latencies = {name: dict(histogram) for name, histogram in self._settled.latencies.items()}
        for name, histogram in current.latencies.items():
            merged = latencies.setdefault(name, {})
            for bucket, answers in histogram.items():
                merged[bucket] = merged.get(bucket, 0) + answers
        last = {record.server: record for record in map(_restart_record, restarts)}
        return {
            name: ServerHistory(
                _ratio(*counts[name][:2]) if name in counts else None,
                _ratio(*counts[name][2:]) if name in counts else None,
                _median(latencies.get(name, {})),
                last.get(name),
            )
            for name in counts.keys() | last.keys()
        }

    def _rollup(self, hour_now: int, *, settled: bool) -> _Rollup:
        """Sums of the hourly rows of the week (and the day) before `hour_now` (settled), or from `hour_now` on."""
        # servers CROSS JOIN: one primary-key range per server, never a scan of the 30 days kept.
        low, high = (hour_now - 24 * 7, hour_now) if settled else (hour_now - 1, 2**62)
        counts = {
            name: (day_checks, day_online, checks, online)
            for name, day_checks, day_online, checks, online in self._db.execute(
                "SELECT name, SUM(CASE WHEN hour > ?1 THEN checks ELSE 0 END), "
                "SUM(CASE WHEN hour > ?1 THEN online ELSE 0 END), SUM(checks), SUM(online) FROM servers "
                "CROSS JOIN hourly ON hourly.server_id = servers.id AND hour > ?2 AND hour < ?3 GROUP BY servers.id",
                (hour_now - 24, low, high),
            )
        }
        latencies: dict[str, dict[int, int]] = {}
        for name, bucket, answers in self._db.execute(
            "SELECT name, bucket, SUM(answers) FROM servers CROSS JOIN latency "
            "ON latency.server_id = servers.id AND hour > ?1 AND hour < ?2 GROUP BY servers.id, bucket",
            (max(low, hour_now - 24), high),
        ):
            latencies.setdefault(name, {})[bucket] = answers
        return _Rollup(hour_now, counts, latencies)

    # -- mutes

    def mute(self, servers: Iterable[str], until: datetime, by: str) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO mutes VALUES (?, ?, ?)", [(self._server_id(s), _ts(until), by) for s in servers]
            )

    def unmute(self, servers: Iterable[str]) -> None:
        with self._transaction():
            self._db.executemany("DELETE FROM mutes WHERE server_id = ?", [(self._server_id(s),) for s in servers])

    def mutes(self, now: datetime) -> dict[str, datetime]:
        """Servers muted now, with when the mute ends. Expired mutes are dropped."""
        with self._transaction():
            self._db.execute("DELETE FROM mutes WHERE until <= ?", (_ts(now),))
            rows = self._db.execute("SELECT name, until FROM mutes JOIN servers ON servers.id = server_id").fetchall()
        return {name: datetime.fromtimestamp(until, UTC) for name, until in rows}

    # -- small values (the live status message's id)

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))

    # -- housekeeping

    def prune(self, now: datetime, force: bool = False) -> int:
        """Drop samples older than 30 days (at most once an hour unless forced); return how many went."""
        if not force and self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return 0
        self._last_prune = now
        cutoff = _ts(now - SAMPLE_RETENTION)
        cutoff_ms, cutoff_hour = int(cutoff * 1000), int(cutoff // 3600)
        with self._transaction():
            # Per server, so each DELETE is a primary-key range, not a scan of a month of samples.
            ids = [server_id for (server_id,) in self._db.execute("SELECT id FROM servers").fetchall()]
            deleted = 0
            for server_id in ids:
                deleted += self._db.execute(
                    "DELETE FROM samples WHERE server_id = ? AND at_ms < ?", (server_id, cutoff_ms)
                ).rowcount
                self._db.execute("DELETE FROM hourly WHERE server_id = ? AND hour < ?", (server_id, cutoff_hour))
                self._db.execute("DELETE FROM latency WHERE server_id = ? AND hour < ?", (server_id, cutoff_hour))
        return deleted


_RESTART_COLUMNS = "name, at, requested_by, outcome, reason, duration_s, exit_code, healthy_after"


def _restart_record(row: Sequence[object]) -> RestartRecord:
    name, at, requested_by, outcome, reason, duration_s, exit_code, healthy = row
    return RestartRecord(
        str(name),
        datetime.fromtimestamp(float(at), UTC),  # type: ignore[arg-type]
        str(requested_by),
        str(outcome),
        str(reason),
        duration_s,  # type: ignore[arg-type]
        exit_code,  # type: ignore[arg-type]
        None if healthy is None else bool(healthy),
    )


def _event(kind: str, server: str, reason: str | None, since: float, at: float) -> Event:
    since_dt, at_dt = datetime.fromtimestamp(since, UTC), datetime.fromtimestamp(at, UTC)
    if kind == "outage":
        return Outage(server, reason or "", since_dt)
    if kind == "reminder":
        return Reminder(server, reason or "", since_dt, at_dt)
    return Recovery(server, since_dt, at_dt)


@dataclass(frozen=True, slots=True)
class _Rollup:
    hour: int
    counts: dict[str, tuple[int, int, int, int]]  # checks and online answers in the day, then in the week
    latencies: dict[str, dict[int, int]]  # the day's latency histogram


def _ratio(checks: int, online: int) -> float | None:
    return online / checks if checks else None
