"""Benchmark: a week of monitor rounds of 200 servers every 10 s in the SQLite store, then /poracle status.

    python bench/store_week.py [--servers 200] [--interval 10] [--days 7] [--queries 20] [--keep DIR]

Every round goes through the real code: `Monitor.observe` turns simulated health results into events and
`Store.record_round` writes them (samples, hourly rollups, every server's state, the alerts), then
`Store.prune` as the bot calls it after each round. Most servers answer with log-normal latencies around
80 ms; a few have outages of 1 to 60 rounds (some followed by a recorded restart) and two never answer.
Time is simulated (the rounds do not sleep), so the insert rate is the store's own.

Prints the database size (after a WAL checkpoint, WAL included) and the time of one status query with history
as `/poracle status` builds it: `server_histories` + `mutes` + `status_embeds` (median of --queries; goal under
50 ms). With --days shorter than 7 the size is also extrapolated linearly to a week (the samples dominate).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `bot` is not necessarily installed

from bot.core.health import HealthResult  # noqa: E402
from bot.core.monitor import Monitor, Outage  # noqa: E402
from bot.core.service import Requester, RestartResult  # noqa: E402
from bot.core.ssh import CommandOutcome, CommandResult  # noqa: E402
from bot.core.store import FILE_NAME, Origin, Store  # noqa: E402
from bot.core.watchdog import StatusReport  # noqa: E402
from bot.discord_bot.embeds import status_embeds  # noqa: E402

START = datetime(2026, 1, 5, tzinfo=UTC)
WEEK = timedelta(days=7)
MIB = 1024 * 1024


class World:
    """Simulated servers: who answers in each round, and how fast."""

    def __init__(self, servers: int, seed: int = 6) -> None:
        self.rng = random.Random(seed)
        self.names = [f"poracle-{i:03d}" for i in range(servers)]
        self.flaky = set(self.names[:5])  # outages now and then
        self.dead = set(self.names[5:7])  # never answer
        self.down_until: dict[str, int] = {}

    def round(self, number: int, at: datetime) -> list[HealthResult]:
        results = []
        for name in self.names:
            if name in self.flaky and name not in self.down_until and self.rng.random() < 1 / 2000:
                self.down_until[name] = number + self.rng.randint(1, 60)
            if self.down_until.get(name, -1) <= number:
                self.down_until.pop(name, None)
            if name in self.dead or name in self.down_until:
                results.append(HealthResult(name, False, at, reason="no answer within 5 s"))
            else:
                latency = round(self.rng.lognormvariate(4.4, 0.5), 1)  # median e^4.4, about 81 ms
                results.append(HealthResult(name, True, at, 200, latency))
        return results


def database_bytes(data_dir: Path) -> int:
    return sum(path.stat().st_size for path in data_dir.glob(FILE_NAME + "*"))


def checkpoint(data_dir: Path) -> None:
    connection = sqlite3.connect(data_dir / FILE_NAME)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def status_query(store: Store, results: list[HealthResult], monitor: Monitor, now: datetime) -> list[Any]:
    """What /poracle status does after its checks: the stored figures, then the embeds."""
    down_since = {name: w.down_since for name, w in monitor.watches.items() if w.down_since is not None}
    report = StatusReport(tuple(results), down_since, store.server_histories(now), store.mutes(now))
    return status_embeds(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between rounds (simulated)")
    parser.add_argument("--days", type=float, default=7.0, help="simulated days of rounds")
    parser.add_argument("--queries", type=int, default=20, help="status queries to time")
    parser.add_argument("--keep", type=Path, help="write the database here and keep it (default: a temp dir)")
    args = parser.parse_args()

    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="poracle-bench-"))
    rounds = int(args.days * 86400 / args.interval)
    print(f"{args.servers} servers, a round every {args.interval:g} s for {args.days:g} days: {rounds:,} rounds")
    print(f"data dir: {data_dir}" + ("" if args.keep else " (deleted afterwards)"))

    world = World(args.servers)
    store = Store.open(data_dir)
    monitor = Monitor(down_after=2, up_after=1, remind_every=timedelta(hours=1), watches=store.load_watches())
    events_total = restarts = 0
    results: list[HealthResult] = []
    at = START
    started = time.perf_counter()
    record_ms: list[float] = []
    try:
        for number in range(rounds):
            at = START + timedelta(seconds=number * args.interval)
            results = world.round(number, at)
            events = monitor.observe(results)
            events_total += len(events)
            t0 = time.perf_counter()
            store.record_round(results, monitor.watches, events)
            record_ms.append((time.perf_counter() - t0) * 1000)
            store.mark_events([stored.id for stored in store.pending_events()], "delivered")
            store.prune(at)
            for event in events:
                if isinstance(event, Outage) and world.rng.random() < 0.5:
                    command = CommandResult(CommandOutcome.SUCCEEDED, "exit status 0", 0, "", 7.5)
                    requester = Requester(Origin.DISCORD, "alice (1)")
                    store.record_restarts([RestartResult(event.server, requester, command).record(at)])
                    restarts += 1
            if number and number % 10_000 == 0:
                elapsed = time.perf_counter() - started
                print(f"  {number:,} rounds in {elapsed:.0f} s ({number / elapsed:.0f} rounds/s)", flush=True)
        elapsed = time.perf_counter() - started
        samples = rounds * args.servers
        print(f"simulated {rounds:,} rounds ({samples:,} samples, {events_total} alerts, {restarts} restarts)")
        print(f"  in {elapsed:.1f} s: {rounds / elapsed:.0f} rounds/s, {samples / elapsed:,.0f} samples/s")
        print(
            f"  record_round alone: median {statistics.median(record_ms):.2f} ms per round of {args.servers}, "
            f"max {max(record_ms):.0f} ms (the first round sums the week, one an hour the hour that passed)"
        )

        now = at + timedelta(seconds=1)
        timings = []
        for _ in range(args.queries):
            t0 = time.perf_counter()
            embeds = status_query(store, results, monitor, now)
            timings.append((time.perf_counter() - t0) * 1000)
        figures = store.server_histories(now)
        t0 = time.perf_counter()
        histories_only = [store.server_histories(now) for _ in range(args.queries)]
        histories_ms = (time.perf_counter() - t0) * 1000 / args.queries
        assert all(len(h) == len(figures) for h in histories_only)
    finally:
        store.close()
    # A store just opened, with no round recorded yet (the bot's first status before its first monitor round):
    # the query sums the whole week itself.
    fresh = Store.open(data_dir)
    t0 = time.perf_counter()
    fresh.server_histories(now)
    first_ms = (time.perf_counter() - t0) * 1000
    fresh.close()

    checkpoint(data_dir)
    size = database_bytes(data_dir)
    print(f"database: {size / MIB:.1f} MiB ({size / samples:.1f} bytes per sample) after {args.days:g} days")
    if args.days < 7:
        print(f"  a week, extrapolated linearly: {size / MIB * 7 / args.days:.1f} MiB")
    # Samples are kept 30 days: that is the size a long-running bot levels off at.
    print(f"  30 days (the samples' retention), extrapolated linearly: {size / MIB * 30 / args.days:.0f} MiB")
    print(
        f"status query with history ({len(figures)} servers, {len(embeds)} embeds): "
        f"median {statistics.median(timings):.1f} ms, min {min(timings):.1f}, max {max(timings):.1f} "
        f"over {args.queries} (goal: under 50 ms)"
    )
    print(f"  of which server_histories: {histories_ms:.1f} ms")
    print(f"  before the first monitor round after start-up (sums the week): {first_ms:.1f} ms")
    sample = figures[world.names[0]]
    print(
        f"  e.g. {world.names[0]}: uptime 24 h {sample.uptime_24h}, 7 d {sample.uptime_7d}, "
        f"median {sample.median_latency_ms} ms, last restart {sample.last_restart and sample.last_restart.at}"
    )
    if not args.keep:
        shutil.rmtree(data_dir)


if __name__ == "__main__":
    main()
