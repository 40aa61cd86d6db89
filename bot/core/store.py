"""Embedded state in SQLite: monitor state, the alert outbox, check samples, the restart audit, mutes,
acknowledgements.

Every monitor round is one transaction (state, samples, webhook counters and the alerts it raised together),
in WAL mode:
a bot killed at any moment, SIGKILL included, reopens a consistent database with everything committed.
The methods are synchronous and thread-safe; the bot calls them with `asyncio.to_thread` so the event
loop never waits on the disk.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib import resources
from pathlib import Path

from bot.core.autorestart import AutoRestarted, NeedsHuman, RailState
from bot.core.crashloop import CrashLoop, ProcessEvent, ProcessKey, ProcessRecovery, ProcessRound, ProcessWatch
from bot.core.health import Cause, Condition, HealthResult
from bot.core.monitor import Degraded, Event, Healthy, Outage, Recovery, Reminder, ServerWatch, State
from bot.core.rollups import DAY_HOURS, NO_COUNTS, WEEK_HOURS, Rollup, Sums, bucket, median, plus_histogram, ratio
from bot.core.stuck import Quiet

FILE_NAME = "poracle.db"
SAMPLE_RETENTION = timedelta(days=30)
PRUNE_EVERY = timedelta(hours=1)
_NO_HOUR = 2**62  # after every hour
RUNNING = "running"  # the outcome of a restart that has not ended yet
BUSY_TIMEOUT = 10.0  # seconds a write waits for another process's (a CLI restart's audit, say)
CRASH_LOOP = "crash-loop"  # the events' kinds of pm2 processes
PROCESS_RECOVERY = "process-recovery"
NEEDS_HUMAN = "needs-human"  # the guard rails of automatic restarts gave up on a server
AUTO_RESTARTED = "auto-restarted"  # the notice of an automatic restart that ran


def _migrations() -> list[str]:
    """The schema's history, oldest first: migrations/NNNN_*.sql; the schema version is how many ran."""
    folder = resources.files("bot.core") / "migrations"
    scripts = sorted((entry.name, entry.read_text()) for entry in folder.iterdir() if entry.name.endswith(".sql"))
    assert [int(name[:4]) for name, _ in scripts] == list(range(1, len(scripts) + 1)), "migrations numbered 1, 2, ..."
    return [text for _, text in scripts]


class Origin(StrEnum):
    """Where a restart was asked for."""

    DISCORD = "discord"
    CLI = "cli"
    AUTOMATIC = "automatic"


class StoreError(Exception):
    """The data directory or database cannot be used; the message says what to do."""


class _NewerSchema(sqlite3.DatabaseError):
    """The database is fine, but a newer poracle-bot migrated it."""


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """An admin took on the outage of `server` that began at `since`."""

    server: str
    since: datetime
    by: str  # the Discord user, as the log names them
    at: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    round: int
    event: Event | ProcessEvent | NeedsHuman | AutoRestarted
    # Of a recovery (a "healthy" again, a process recovery): how its outage (degraded, crash-loop) alert was
    # settled; None while pending.
    outage_delivery: str | None = None
    ack: Acknowledgement | None = None  # of the outage this event belongs to

    @property
    def follows_silence(self) -> bool:
        """A recovery from an outage nobody was told of (muted, or no alert channel) is news to nobody either."""
        return self.outage_delivery in ("muted", "off")

    @property
    def follows_announcement(self) -> bool:
        """A recovery from an outage that was posted: the channel must not be left saying "offline"."""
        return self.outage_delivery == "delivered"


@dataclass(frozen=True, slots=True)
class RestartRecord:
    """One row of the restart audit."""

    server: str
    at: datetime
    origin: Origin
    requested_by: str  # the Discord user, or the local user of the command line
    outcome: str  # the word shown: restarted, failed, timed out, interrupted; RUNNING until it ends
    reason: str
    duration_s: float | None
    exit_code: int | None
    healthy_after: bool | None
    process: str | None = None  # one pm2 process restarted through the gate; None: the whole server


@dataclass(frozen=True, slots=True)
class OutageRecord:
    server: str
    since: datetime
    reason: str
    until: datetime | None  # None: still down

    @property
    def at(self) -> datetime:
        return self.since


@dataclass(frozen=True, slots=True)
class DegradedRecord(OutageRecord):
    """A degraded spell: it answered but refused the bot or was stuck; `until` its end (or its outage)."""


@dataclass(frozen=True, slots=True)
class NeedsHumanRecord:
    """The guard rails of automatic restarts gave up on a server at `at`."""

    server: str
    at: datetime
    reason: str


HistoryEntry = RestartRecord | OutageRecord | NeedsHumanRecord  # DegradedRecord included


@dataclass(frozen=True, slots=True)
class ServerHistory:
    uptime_24h: float | None  # fraction 0..1; None without samples
    uptime_7d: float | None
    median_latency_ms: float | None  # of the answers in the last 24 h
    last_restart: RestartRecord | None
    degraded_24h: float | None = None  # fraction of the checks that found it answering but degraded
    degraded_7d: float | None = None


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class Store:
    """The bot's SQLite database in PORACLE_DATA_DIR."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._lock = threading.Lock()
        self._server_ids: dict[str, int] = {}
        self._round = self._db.execute("SELECT COALESCE(MAX(round), 0) FROM events").fetchone()[0]
        self._last_prune: datetime | None = None
        # The sums of the hours before the current one, kept up to date by each round: /poracle status then
        # only reads the current hour's rows (when the hour changes, a round reads the hours entering and
        # leaving the windows; only the first round after start-up sums the whole week).
        self._settled: Rollup | None = None

    @classmethod
    def open(cls, data_dir: Path, *, busy_timeout: float = BUSY_TIMEOUT) -> Store:
        """Open (creating or migrating) the database; StoreError names PORACLE_DATA_DIR and the fix."""
        path = data_dir / FILE_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=busy_timeout)
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
        migrations = _migrations()
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > len(migrations):
            raise _NewerSchema(f"schema {version}; this version knows up to {len(migrations)}")
        for number, script in enumerate(migrations[version:], version + 1):
            # executescript commits first; BEGIN makes the migration and its version number one transaction.
            connection.executescript(f"BEGIN;\n{script}\n;PRAGMA user_version = {number}; COMMIT;")

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
                self._settled = None  # and so are the rows it had added to the sums
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
                f"SELECT name, {_WATCH_COLUMNS} FROM watches JOIN servers ON servers.id = server_id"
            ).fetchall()
        watches = {}
        for name, state, failures, successes, first, down, alert, degraded, healthy, first_bad, bad_since in rows:
            watches[name] = ServerWatch(
                State(state), failures, successes, _dt(first), _dt(down), _dt(alert), degraded, healthy,
                _dt(first_bad), _dt(bad_since),
            )  # fmt: skip
        return watches

    def load_quiet(self) -> dict[str, Quiet]:
        """PoracleNG's webhook counters as last seen, and since when they had that value."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, total, quiet_since FROM webhook_counters JOIN servers ON servers.id = server_id"
            ).fetchall()
        return {name: Quiet(total, datetime.fromtimestamp(since, UTC)) for name, total, since in rows}

    def record_round(
        self,
        results: Sequence[HealthResult],
        watches: Mapping[str, ServerWatch],
        events: Sequence[Event],
        quiet: Mapping[str, Quiet] | None = None,
        processes: ProcessRound | None = None,
    ) -> None:
        """One monitor round, all or nothing: the samples, every server's state, the alerts raised, the
        webhook counters, and what the crash-loop tracker made of the pm2 lists read."""
        with self._transaction():
            self._round += 1
            self._record_samples(results)
            self._db.executemany(
                "INSERT OR REPLACE INTO watches(server_id, "
                + _WATCH_COLUMNS
                + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        self._server_id(name),
                        watch.state.value,
                        watch.failures,
                        watch.successes,
                        watch.first_failure and _ts(watch.first_failure),
                        watch.down_since and _ts(watch.down_since),
                        watch.last_alert and _ts(watch.last_alert),
                        watch.degraded,
                        watch.healthy,
                        watch.first_degraded and _ts(watch.first_degraded),
                        watch.degraded_since and _ts(watch.degraded_since),
                    )
                    for name, watch in watches.items()
                ],
            )
            self._db.executemany(
                "INSERT INTO events(round, kind, server_id, reason, since, at, cause) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(self._round, *self._event_row(event)) for event in events],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO webhook_counters VALUES (?, ?, ?)",
                [(self._server_id(name), q.total, _ts(q.since)) for name, q in (quiet or {}).items()],
            )
            if processes is not None:
                self._record_processes(processes)
            # Sum the hours before this round's here, in the monitor's thread, so /poracle status never does.
            hour = max((int(_ts(result.checked_at) // 3600) for result in results), default=None)
            if hour is not None and (self._settled is None or hour > self._settled.hour):
                self._settle(hour)

    def _record_samples(self, results: Sequence[HealthResult]) -> None:
        """The raw samples, and the hourly rollups the status figures are read from."""
        samples, hourly, latency = [], [], []
        for result in results:
            server_id = self._server_id(result.server)
            ms = round(result.latency_ms) if result.latency_ms is not None else None
            at = _ts(result.checked_at)
            hour = int(at // 3600)
            samples.append((server_id, int(at * 1000), result.status, ms))
            hourly.append((server_id, hour, int(result.online), int(result.condition is Condition.DEGRADED)))
            if result.online and ms is not None:
                latency.append((server_id, hour, bucket(ms)))
        if self._settled is not None:  # a round recorded late, into an hour already summed
            self._settled.add(hourly, latency)
        self._db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?)", samples)
        self._db.executemany(
            "INSERT INTO hourly VALUES (?, ?, 1, ?, ?) ON CONFLICT DO UPDATE SET checks = checks + 1, "
            "online = online + excluded.online, degraded = degraded + excluded.degraded",
            hourly,
        )
        self._db.executemany(
            "INSERT INTO latency VALUES (?, ?, ?, 1) ON CONFLICT DO UPDATE SET answers = answers + 1", latency
        )

    def load_process_watches(self) -> dict[str, dict[ProcessKey, ProcessWatch]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT servers.name, process_watches.name, pm_id, samples, trouble_since, reason "
                "FROM process_watches JOIN servers ON servers.id = server_id"
            ).fetchall()
        watches: dict[str, dict[ProcessKey, ProcessWatch]] = {}
        for server, name, pm_id, samples, since, reason in rows:
            kept = [(datetime.fromtimestamp(at, UTC), int(count)) for at, count in json.loads(samples)]
            watches.setdefault(server, {})[(name, pm_id)] = ProcessWatch(kept, _dt(since), reason)
        return watches

    def _record_processes(self, processes: ProcessRound) -> None:
        for server, watches in processes.watches.items():
            server_id = self._server_id(server)
            self._db.execute("DELETE FROM process_watches WHERE server_id = ?", (server_id,))
            self._db.executemany(
                "INSERT INTO process_watches VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        server_id,
                        name,
                        pm_id,
                        json.dumps([[_ts(at), count] for at, count in watch.samples]),
                        watch.trouble_since and _ts(watch.trouble_since),
                        watch.reason,
                    )
                    for (name, pm_id), watch in watches.items()
                ],
            )
        self._db.executemany(
            "INSERT INTO events(round, kind, server_id, reason, since, at, process) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(self._round, *self._process_event_row(event), event.process) for event in processes.events],
        )

    # -- automatic restarts

    def load_auto_restarts(self) -> dict[str, RailState]:
        """What the guard rails of automatic restarts remember of each server."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, attempts, last_attempt, streak, failures, up_since, needs_human_since, "
                "needs_human_reason FROM auto_restarts JOIN servers ON servers.id = server_id"
            ).fetchall()
        states = {}
        for name, attempts, last, streak, failures, up_since, latched, reason in rows:
            needs_human = (
                None if latched is None else NeedsHuman(name, reason or "", datetime.fromtimestamp(latched, UTC))
            )
            states[name] = RailState(
                [datetime.fromtimestamp(at, UTC) for at in json.loads(attempts)],
                _dt(last),
                streak,
                failures,
                _dt(up_since),
                needs_human,
            )
        return states

    def save_auto_restarts(
        self, states: Mapping[str, RailState], alerts: Sequence[NeedsHuman | AutoRestarted] = ()
    ) -> None:
        """The rails' states and the alerts they made (a "needs a human" raised, the notice of a restart that
        ran), together: never an alert without its latch (raised again after a bot restart) nor a latch, or
        a counted attempt, without its alert."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO auto_restarts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        self._server_id(name),
                        json.dumps([_ts(at) for at in state.attempts]),
                        state.last_attempt and _ts(state.last_attempt),
                        state.streak,
                        state.failures,
                        state.up_since and _ts(state.up_since),
                        state.needs_human and _ts(state.needs_human.since),
                        state.needs_human and state.needs_human.reason,
                    )
                    for name, state in states.items()
                ],
            )
            self._db.executemany(
                "INSERT INTO events(round, kind, server_id, reason, since, at, process, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(self._round, *_alert_row(alert, self._server_id(alert.server))) for alert in alerts],
            )

    def last_person_restarts(self) -> dict[str, RestartRecord]:
        """The latest restart of each server by a person (from Discord or the command line), from the audit."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_RESTART_COLUMNS} FROM restarts JOIN servers ON servers.id = server_id WHERE restarts.id IN "
                f"(SELECT MAX(id) FROM restarts WHERE origin != '{Origin.AUTOMATIC.value}' GROUP BY server_id)"
            ).fetchall()
        return {record.server: record for record in map(_restart_record, rows)}

    # -- counts for the bot's own metrics

    def restart_counts(self) -> list[tuple[str, str, str, int]]:
        """(server, origin, outcome, how many) of every restart in the audit that has ended (a counter must
        never go down: a running one's row changes its outcome when it ends)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, origin, outcome, COUNT(*) FROM restarts JOIN servers ON servers.id = server_id "
                "WHERE outcome != ? GROUP BY server_id, origin, outcome ORDER BY name, origin, outcome",
                (RUNNING,),
            ).fetchall()
        return [(str(name), str(origin), str(outcome), int(count)) for name, origin, outcome, count in rows]

    def alert_counts(self) -> list[tuple[str, str, int]]:
        """(kind, delivery, how many) of every alert event: delivered (posted), pending, or settled unposted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, delivery, COUNT(*) FROM events GROUP BY kind, delivery ORDER BY kind, delivery"
            ).fetchall()
        return [(str(kind), str(delivery), int(count)) for kind, delivery, count in rows]

    def _event_row(self, event: Event) -> tuple[str, int, str | None, float, float, str | None]:
        server_id = self._server_id(event.server)
        if isinstance(event, Outage):
            return "outage", server_id, event.reason, _ts(event.since), _ts(event.since), None
        if isinstance(event, Reminder):
            return "reminder", server_id, event.reason, _ts(event.since), _ts(event.at), None
        if isinstance(event, Degraded):
            return "degraded", server_id, event.reason, _ts(event.since), _ts(event.since), event.cause.value
        if isinstance(event, Healthy):
            return "healthy", server_id, None, _ts(event.degraded_since), _ts(event.healthy_at), None
        return "recovery", server_id, None, _ts(event.down_since), _ts(event.recovered_at), None

    def _process_event_row(self, event: ProcessEvent) -> tuple[str, int, str | None, float, float]:
        server_id = self._server_id(event.server)
        if isinstance(event, CrashLoop):
            return CRASH_LOOP, server_id, event.reason, _ts(event.since), _ts(event.since)
        return PROCESS_RECOVERY, server_id, event.note, _ts(event.since), _ts(event.recovered_at)

    def pending_events(self) -> list[StoredEvent]:
        """Alerts not yet delivered, oldest first."""
        with self._lock:
            # A recovery follows the outage, fully online again the degradation, a process recovery the crash
            # loop, that named the same start.
            rows = self._db.execute(
                "SELECT events.id, round, kind, name, events.reason, events.since, events.at, events.cause, "
                "events.process, events.detail, (SELECT o.delivery FROM events o WHERE o.kind = CASE events.kind "
                f"WHEN 'recovery' THEN 'outage' WHEN 'healthy' THEN 'degraded' WHEN '{PROCESS_RECOVERY}' "
                f"THEN '{CRASH_LOOP}' END AND o.server_id = events.server_id AND o.since = events.since "
                "AND o.process IS events.process ORDER BY o.id DESC LIMIT 1), acks.by, acks.at, acks.reason "
                "FROM events JOIN servers ON servers.id = events.server_id LEFT JOIN acks "
                "ON acks.server_id = events.server_id AND acks.since = events.since AND events.process IS NULL "
                "WHERE delivery = 'pending' ORDER BY events.id"
            ).fetchall()
        return [
            StoredEvent(row[0], row[1], _event(*row[2:10]), row[10], _ack(row[3], row[5], *row[11:])) for row in rows
        ]

    def unsilence_outages(self, down_since: Mapping[str, datetime], kind: str = "outage") -> None:
        """Servers still down (or with kind `degraded` still degraded) when their mute ended: their held-back
        alert goes out after all."""
        with self._transaction():
            self._db.executemany(
                "UPDATE events SET delivery = 'pending' WHERE kind = ? AND delivery = 'muted' "
                "AND server_id = (SELECT id FROM servers WHERE name = ?) AND since = ?",
                [(kind, name, _ts(since)) for name, since in down_since.items()],
            )

    def unsilence_processes(self, episodes: Iterable[tuple[str, str, datetime]]) -> None:
        """Crash-loop episodes (server, process, since) still open when their server's mute ended: their
        held-back alert goes out after all."""
        with self._transaction():
            self._db.executemany(
                f"UPDATE events SET delivery = 'pending' WHERE kind = '{CRASH_LOOP}' AND delivery = 'muted' "
                "AND server_id = (SELECT id FROM servers WHERE name = ?) AND process = ? AND since = ?",
                [(server, process, _ts(since)) for server, process, since in episodes],
            )

    def mark_events(self, ids: Iterable[int], delivery: str) -> None:
        """`delivered`, or `muted` / `off` / `acked` for alerts nobody was to be told of."""
        with self._transaction():
            self._db.executemany("UPDATE events SET delivery = ? WHERE id = ?", [(delivery, i) for i in ids])

    # -- restarts

    def record_restarts(self, records: Iterable[RestartRecord]) -> None:
        """The audit: who restarted what, from where, when, and how it went."""
        with self._transaction():
            self._db.executemany(_INSERT_RESTART, [self._restart_row(record, None) for record in records])

    def begin_restarts(self, records: Sequence[RestartRecord], reply: str | None) -> list[int]:
        """The audit rows of restarts starting now (outcome RUNNING), and where their requester watches the
        outcome (`reply`, a front's reference); the rows' ids, for end_restarts."""
        rows: list[int] = []
        with self._transaction():
            for record in records:
                row = self._db.execute(_INSERT_RESTART, self._restart_row(record, reply)).lastrowid
                assert row is not None  # an INSERT always has one
                rows.append(row)
        return rows

    def end_restarts(self, ended: Iterable[tuple[int, RestartRecord]]) -> None:
        """How the restarts of these rows went."""
        with self._transaction():
            self._db.executemany(
                "UPDATE restarts SET outcome = ?, reason = ?, exit_code = ?, duration_s = ?, healthy_after = ? "
                "WHERE id = ?",
                [(r.outcome, r.reason, r.exit_code, r.duration_s, _flag(r.healthy_after), row) for row, r in ended],
            )

    def cut_off_restarts(self, origins: Iterable[Origin], outcome: str, reason: str) -> int:
        """Restarts from `origins` still RUNNING, which a process that is gone started: they end as `outcome`
        with `reason`. How many there were."""
        with self._transaction():
            return self._db.executemany(
                "UPDATE restarts SET outcome = ?, reason = ? WHERE outcome = ? AND origin = ?",
                [(outcome, reason, RUNNING, origin.value) for origin in origins],
            ).rowcount

    def cut_off_restarts_of(self, servers: Iterable[str], outcome: str, reason: str) -> int:
        """Restarts of `servers` still RUNNING, whoever asked: they end as `outcome` with `reason`. How many."""
        with self._transaction():
            return self._db.executemany(
                "UPDATE restarts SET outcome = ?, reason = ? "
                "WHERE outcome = ? AND server_id = (SELECT id FROM servers WHERE name = ?)",
                [(outcome, reason, RUNNING, server) for server in servers],
            ).rowcount

    def unshown_restarts(self, before: datetime) -> dict[str, list[RestartRecord]]:
        """The restarts started before `before` whose outcome was never shown where their requesters watch it,
        by that place (restarts asked for together share one); none of a place where one still runs."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT reply, {_RESTART_COLUMNS} FROM restarts JOIN servers ON servers.id = server_id "
                "WHERE reply IN (SELECT reply FROM restarts WHERE reply IS NOT NULL GROUP BY reply "
                "HAVING MAX(at) < ? AND SUM(outcome = ?) = 0) ORDER BY restarts.id",
                (_ts(before), RUNNING),
            ).fetchall()
        unshown: dict[str, list[RestartRecord]] = {}
        for reply, *record in rows:
            unshown.setdefault(str(reply), []).append(_restart_record(record))
        return unshown

    def shown(self, reply: str) -> None:
        """The outcome of the restarts watched at `reply` is shown there: nothing is left to tell."""
        with self._transaction():
            self._db.execute("UPDATE restarts SET reply = NULL WHERE reply = ?", (reply,))

    def _restart_row(self, record: RestartRecord, reply: str | None) -> tuple[object, ...]:
        return (
            self._server_id(record.server),
            _ts(record.at),
            record.origin.value,
            record.requested_by,
            record.outcome,
            record.reason,
            record.exit_code,
            record.duration_s,
            _flag(record.healthy_after),
            record.process,
            reply,
        )

    # -- reading history

    def history(self, server: str | None = None, limit: int = 50) -> list[HistoryEntry]:
        """The latest restarts and outages (of one server, or all), newest first."""
        given = {"server": server, "limit": limit}  # named: CPython 3.12.0-3.12.3 warn on numbered ones (#117995)
        with self._lock:
            restarts = self._db.execute(
                f"SELECT {_RESTART_COLUMNS} FROM restarts JOIN servers ON servers.id = server_id "
                "WHERE (:server IS NULL OR name = :server) ORDER BY at DESC LIMIT :limit",
                given,
            ).fetchall()
            # An outage ends with the recovery that names the same start; a degraded spell with the fully
            # online again that does, or with the next outage.
            spells = self._db.execute(
                "SELECT o.kind, name, o.since, o.reason, (SELECT MIN(r.at) FROM events r WHERE "
                "r.server_id = o.server_id AND ((r.kind = CASE o.kind WHEN 'outage' THEN 'recovery' ELSE 'healthy' "
                "END AND r.since = o.since) OR (o.kind = 'degraded' AND r.kind = 'outage' AND r.at > o.since))) "
                "FROM events o JOIN servers ON servers.id = o.server_id WHERE o.kind IN ('outage', 'degraded') "
                "AND (:server IS NULL OR name = :server) ORDER BY o.since DESC LIMIT :limit",
                given,
            ).fetchall()
            given_up = self._db.execute(
                f"SELECT name, since, reason FROM events JOIN servers ON servers.id = server_id WHERE kind = "
                f"'{NEEDS_HUMAN}' AND (:server IS NULL OR name = :server) ORDER BY since DESC LIMIT :limit",
                given,
            ).fetchall()
        entries: list[HistoryEntry] = [_restart_record(row) for row in restarts]
        entries += [
            NeedsHumanRecord(name, datetime.fromtimestamp(at, UTC), reason or "") for name, at, reason in given_up
        ]
        entries += [
            (DegradedRecord if kind == "degraded" else OutageRecord)(
                name, datetime.fromtimestamp(since, UTC), reason, _dt(until)
            )
            for kind, name, since, reason, until in spells
        ]
        return sorted(entries, key=lambda entry: entry.at, reverse=True)[:limit]

    def server_histories(self, now: datetime) -> dict[str, ServerHistory]:
        """Uptime over 24 h and 7 d, the median latency of the last 24 h and the last restart, per server."""
        hour_now = int(_ts(now) // 3600)
        with self._lock:
            settled = self._settle(hour_now)
            current, current_latency = self._sums(hour_now, _NO_HOUR)  # this hour's rows (and any later ones)
            names = dict(self._db.execute("SELECT id, name FROM servers").fetchall())
            restarts = self._db.execute(
                f"SELECT {_RESTART_COLUMNS} FROM restarts JOIN servers ON servers.id = server_id "
                "WHERE restarts.id IN (SELECT MAX(id) FROM restarts GROUP BY server_id)"
            ).fetchall()
            figures: dict[str, ServerHistory] = {}
            for server_id in settled.week.keys() | current.keys():
                extra = current.get(server_id, NO_COUNTS)
                day, week = (
                    [a + b for a, b in zip(sums.get(server_id, NO_COUNTS), extra, strict=True)]
                    for sums in (settled.day, settled.week)
                )
                if week[0] == 0:  # every sample of the week has left it
                    continue
                histograms = {server_id: dict(settled.latency.get(server_id, {}))}
                plus_histogram(histograms, server_id, current_latency.get(server_id, {}))
                figures[names[server_id]] = ServerHistory(
                    ratio(day[0], day[1]),
                    ratio(week[0], week[1]),
                    median(histograms[server_id]),
                    None,
                    ratio(day[0], day[2]),
                    ratio(week[0], week[2]),
                )
        for record in map(_restart_record, restarts):
            figures[record.server] = dataclasses.replace(
                figures.get(record.server, ServerHistory(None, None, None, None)), last_restart=record
            )
        return figures

    def _settle(self, hour_now: int) -> Rollup:
        """The sums of the hours before `hour_now`: moved on from the last ones, or summed afresh."""
        rollup = self._settled
        if rollup is None or not 0 <= hour_now - rollup.hour <= DAY_HOURS:
            week, _ = self._sums(hour_now - WEEK_HOURS + 1, hour_now, latency=False)
            day, latency = self._sums(hour_now - DAY_HOURS + 1, hour_now)
            rollup = self._settled = Rollup(hour_now, day, week, latency)
        elif hour_now > rollup.hour:
            old = rollup.hour
            entered = self._sums(old, hour_now)
            left_day = self._sums(old - DAY_HOURS + 1, hour_now - DAY_HOURS + 1)
            left_week = self._sums(old - WEEK_HOURS + 1, hour_now - WEEK_HOURS + 1, latency=False)
            rollup.move(hour_now, entered, left_day, left_week)
        return rollup

    def _sums(self, first_hour: int, end_hour: int, *, latency: bool = True) -> Sums:
        """Checks, answers and degraded answers, and the latency histogram, per server id, of the hours in
        [first, end)."""
        # servers CROSS JOIN: one primary-key range per server, never a scan of the 30 days kept.
        counts = {
            server_id: [checks, online, degraded]
            for server_id, checks, online, degraded in self._db.execute(
                "SELECT servers.id, SUM(checks), SUM(online), SUM(degraded) FROM servers CROSS JOIN hourly "
                "ON hourly.server_id = servers.id AND hour >= ? AND hour < ? GROUP BY servers.id",
                (first_hour, end_hour),
            )
        }
        histograms: dict[int, dict[int, int]] = {}
        if latency:
            for server_id, key, answers in self._db.execute(
                "SELECT servers.id, bucket, SUM(answers) FROM servers CROSS JOIN latency "
                "ON latency.server_id = servers.id AND hour >= ? AND hour < ? GROUP BY servers.id, bucket",
                (first_hour, end_hour),
            ):
                histograms.setdefault(server_id, {})[key] = answers
        return counts, histograms

    # -- mutes

    def mute(self, servers: Iterable[str], until: datetime, by: str) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO mutes VALUES (?, ?, ?)", [(self._server_id(s), _ts(until), by) for s in servers]
            )

    def unmute(self, servers: Iterable[str], now: datetime) -> list[str]:
        """End the servers' mutes; return those that were muted at `now`, in the order given."""
        with self._transaction():
            ids = {server: self._server_id(server) for server in servers}
            live = {i for (i,) in self._db.execute("SELECT server_id FROM mutes WHERE until > ?", (_ts(now),))}
            self._db.executemany("DELETE FROM mutes WHERE server_id = ?", [(i,) for i in ids.values()])
        return [server for server, i in ids.items() if i in live]

    def mutes(self, now: datetime) -> dict[str, datetime]:
        """Servers muted now, with when the mute ends. Expired mutes are dropped."""
        with self._transaction():
            self._db.execute("DELETE FROM mutes WHERE until <= ?", (_ts(now),))
            rows = self._db.execute("SELECT name, until FROM mutes JOIN servers ON servers.id = server_id").fetchall()
        return {name: datetime.fromtimestamp(until, UTC) for name, until in rows}

    # -- acknowledgements

    def acknowledge(self, ack: Acknowledgement) -> Acknowledgement:
        """Record `ack` unless its outage was acknowledged already; return the one kept (the first)."""
        with self._transaction():
            server_id = self._server_id(ack.server)
            self._db.execute(
                "INSERT OR IGNORE INTO acks VALUES (?, ?, ?, ?, ?)",
                (server_id, _ts(ack.since), ack.by, _ts(ack.at), ack.reason),
            )
            by, at, reason = self._db.execute(
                "SELECT by, at, reason FROM acks WHERE server_id = ? AND since = ?", (server_id, _ts(ack.since))
            ).fetchone()
        return Acknowledgement(ack.server, ack.since, by, datetime.fromtimestamp(at, UTC), reason)

    def acknowledgement(self, server: str, since: datetime) -> Acknowledgement | None:
        with self._lock:
            row = self._db.execute(
                "SELECT by, acks.at, acks.reason FROM acks JOIN servers ON servers.id = server_id "
                "WHERE name = ? AND since = ?",
                (server, _ts(since)),
            ).fetchone()
        return None if row is None else _ack(server, _ts(since), *row)

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


_INSERT_RESTART = (
    "INSERT INTO restarts(server_id, at, origin, requested_by, outcome, reason, exit_code, duration_s, healthy_after, "
    "process, reply) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RESTART_COLUMNS = "name, at, origin, requested_by, outcome, reason, duration_s, exit_code, healthy_after, process"
_WATCH_COLUMNS = (
    "state, failures, successes, first_failure, down_since, last_alert, degraded, healthy, first_degraded, "
    "degraded_since"
)


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _restart_record(row: Sequence[object]) -> RestartRecord:
    name, at, origin, requested_by, outcome, reason, duration_s, exit_code, healthy, process = row
    return RestartRecord(
        str(name),
        datetime.fromtimestamp(float(at), UTC),  # type: ignore[arg-type]
        Origin(str(origin)),
        str(requested_by),
        str(outcome),
        str(reason),
        duration_s,  # type: ignore[arg-type]
        exit_code,  # type: ignore[arg-type]
        None if healthy is None else bool(healthy),
        None if process is None else str(process),
    )


def _ack(server: str, since: float, by: str | None, at: float | None, reason: str | None) -> Acknowledgement | None:
    if by is None or at is None:
        return None
    since_dt, at_dt = datetime.fromtimestamp(since, UTC), datetime.fromtimestamp(at, UTC)
    return Acknowledgement(server, since_dt, by, at_dt, reason or "")


def _alert_row(alert: NeedsHuman | AutoRestarted, server_id: int) -> tuple[object, ...]:
    """(kind, server_id, reason, since, at, process, detail) of an automatic-restart alert in the outbox."""
    if isinstance(alert, NeedsHuman):
        return NEEDS_HUMAN, server_id, alert.reason, _ts(alert.since), _ts(alert.since), None, None
    said = {"word": alert.word, "why": alert.why, "answers": alert.answers, "attempt": alert.attempt}
    detail = json.dumps(said | {"limit": alert.limit})
    return AUTO_RESTARTED, server_id, alert.trouble, _ts(alert.at), _ts(alert.at), alert.process, detail


def _event(
    kind: str,
    server: str,
    reason: str | None,
    since: float,
    at: float,
    cause: str | None,
    process: str | None,
    detail: str | None,
) -> Event | ProcessEvent | NeedsHuman | AutoRestarted:
    since_dt, at_dt = datetime.fromtimestamp(since, UTC), datetime.fromtimestamp(at, UTC)
    if kind == NEEDS_HUMAN:
        return NeedsHuman(server, reason or "", since_dt)
    if kind == AUTO_RESTARTED:
        said = json.loads(detail or "{}")
        return AutoRestarted(
            server, process, at_dt, said["word"], said["why"], said["answers"], said["attempt"], said["limit"],
            reason or "",
        )  # fmt: skip
    if kind == CRASH_LOOP:
        return CrashLoop(server, process or "", reason or "", since_dt)
    if kind == PROCESS_RECOVERY:
        return ProcessRecovery(server, process or "", since_dt, at_dt, reason)
    if kind == "outage":
        return Outage(server, reason or "", since_dt)
    if kind == "reminder":
        return Reminder(server, reason or "", since_dt, at_dt)
    if kind == "degraded":
        return Degraded(server, reason or "", since_dt, Cause(str(cause)))
    if kind == "healthy":
        return Healthy(server, since_dt, at_dt)
    return Recovery(server, since_dt, at_dt)
