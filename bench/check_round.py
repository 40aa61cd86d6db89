"""Benchmark: the monitor's round of 1,000 servers (100 of them hung) beside a bare aiohttp gather of the same GETs.

    python bench/check_round.py [--servers 1000] [--hung 100] [--timeout 2] [--runs 5] [--rounds 3]

A child process serves the HTTP side (one aiohttp site per answering server, each on its own 127.0.0.1 port, and
listeners that accept and never answer), so what is measured is the client side. Each measurement is a fresh
child process of its own, alternately:

    ours   Watchdog.run_round() as the bot runs it: the real PoracleService.check_all (HealthChecker), the
           monitor, Store.record_round into a new SQLite store, the outbox delivered to a sink that takes every
           alert, the prune, the heartbeat. --rounds rounds: the first records every server for the first time,
           round PORACLE_DOWN_AFTER (2) raises and delivers the hung servers' outages, the later ones are the
           steady state. The child imports discord.py and the Discord front as `poracle-bot run` does, so its
           RSS is the bot's.
    floor  aiohttp.ClientSession(TCPConnector(limit=0, force_close=True), ClientTimeout(total=--timeout)) and
           asyncio.gather of GET /health of the same URLs, --rounds times: the same requests (a new
           connection each, all at once), nothing else.

Prints, per round number, both medians, min and max over --runs children each, the ratio of the medians (goal at
1,000 servers: at most 1.05), and the peak RSS (ru_maxrss) of both kinds of child (goal: the bot's at most 150 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `bot` is not necessarily installed

from figures import describe, ratio, rotated, rss  # noqa: E402

HOST = "127.0.0.1"
GOAL_RATIO = 1.05
GOAL_RSS_MIB = 150


@dataclass
class Measured:
    """What one child process measured: per round its wall and CPU time and how many servers answered."""

    walls: list[float]
    cpus: list[float]
    online: list[int]
    alerted: int  # outage events the sink took
    rss_before_kib: int  # VmRSS before the first round: the interpreter and its imports
    maxrss_kib: int = 0  # ru_maxrss at the end: the peak


def raise_open_files() -> None:
    """1,000 servers are 1,000 sockets at once (and twice that in the serving child): up to the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(answering: int, hung: int) -> None:
    """Child process: start the servers, print their ports as one JSON line, run until stdin closes."""
    from aiohttp import web

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    for _ in range(answering):
        await web.TCPSite(runner, HOST, 0, backlog=512).start()
    ports = [address[1] for address in runner.addresses]

    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(Exception):
            while await reader.read(4096):
                pass

    hung_ports = []
    for _ in range(hung):
        server = await asyncio.start_server(swallow, HOST, 0, backlog=512)
        hung_ports.append(server.sockets[0].getsockname()[1])
    print(json.dumps({"answering": ports, "hung": hung_ports}), flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    await runner.cleanup()


class TakesEverything:
    """An AlertSink that posts every alert at once: the outbox is delivered as when Discord answers."""

    enabled = True
    connected = True

    def __init__(self) -> None:
        self.events = 0

    async def send(self, alert: Any) -> bool:  # an Alert: the bot's modules load in the bot's child only
        self.events += len(alert.events)
        return True


async def bot_rounds(env: dict[str, str], rounds: int) -> Measured:
    from bot.config import load_settings
    from bot.core import open_files
    from bot.core.service import PoracleService
    from bot.core.store import Store
    from bot.core.watchdog import Watchdog
    from bot.discord_bot.client import freeze_loaded  # and what `poracle-bot run` has loaded: part of its RSS

    with tempfile.TemporaryDirectory(prefix="check-round-") as data:
        settings = load_settings(env | {"PORACLE_DATA_DIR": data})
        open_files.ensure(len(settings.servers))  # as `poracle-bot run` does at start-up
        store = Store.open(settings.data_dir)
        freeze_loaded()  # as run_bot does before its event loop starts
        sink = TakesEverything()
        before = rss_now_kib()
        walls, cpus, online = [], [], []
        async with PoracleService(settings, store) as service:
            watchdog = Watchdog(settings, store, service.check_all, sink)
            for _ in range(rounds):
                started, cpu = time.perf_counter(), time.process_time()
                results = await watchdog.run_round()
                walls.append(time.perf_counter() - started)
                cpus.append(time.process_time() - cpu)
                online.append(sum(result.online for result in results))
        store.close()
    return Measured(walls, cpus, online, sink.events, before)


async def floor_rounds(urls: list[str], timeout: float, rounds: int) -> Measured:
    import aiohttp

    raise_open_files()
    before = rss_now_kib()

    async def get(session: aiohttp.ClientSession, url: str) -> bool:
        try:
            async with session.get(url, allow_redirects=False):
                return True
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    walls, cpus, online = [], [], []
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for _ in range(rounds):
            started, cpu = time.perf_counter(), time.process_time()
            answers = await asyncio.gather(*(get(session, url) for url in urls))
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            online.append(sum(answers))
    return Measured(walls, cpus, online, 0, before)


def rss_now_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(variant: str, urls_file: Path, timeout: float, rounds: int) -> None:
    """Child process: one measurement of `variant`, printed as one JSON line."""
    urls = json.loads(urls_file.read_text())
    if variant == "ours":
        env = {"PORACLE_HEALTH_TIMEOUT": f"{timeout:g}"}
        for number, url in enumerate(urls, 1):
            env |= {f"PORACLE_SERVER_{number}_HOST": HOST, f"PORACLE_SERVER_{number}_API": url}
        measured = asyncio.run(bot_rounds(env, rounds))
    else:
        measured = asyncio.run(floor_rounds([f"{url}/health" for url in urls], timeout, rounds))
    measured.maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps(asdict(measured)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--hung", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=["ours", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--urls", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    answering = args.servers - args.hung
    if args.serve:
        raise_open_files()
        asyncio.run(serve(answering, args.hung))
        return
    if args.measure:
        measure(args.measure, args.urls, args.timeout, args.rounds)
        return

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--servers", str(args.servers), "--hung", str(args.hung)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        ports = json.loads(child.stdout.readline())
        with tempfile.NamedTemporaryFile("w", suffix=".json") as urls_file:
            json.dump([f"http://{HOST}:{port}" for port in ports["answering"] + ports["hung"]], urls_file)
            urls_file.flush()
            runs: dict[str, list[Measured]] = {"ours": [], "floor": []}
            for run in range(args.runs):
                for variant in rotated(["ours", "floor"], run):
                    command = [sys.executable, __file__, "--measure", variant, "--urls", urls_file.name]
                    command += ["--timeout", f"{args.timeout:g}", "--rounds", str(args.rounds)]
                    done = subprocess.run(command, capture_output=True, text=True, check=True)
                    runs[variant].append(Measured(**json.loads(done.stdout.strip().splitlines()[-1])))
        child.stdin.close()
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    report(args, answering, runs)


def report(args: argparse.Namespace, answering: int, runs: dict[str, list[Measured]]) -> None:
    print(
        f"check round of {args.servers} servers ({answering} answering, {args.hung} hung), timeout {args.timeout:g} s, "
        f"{args.runs} fresh processes each, alternating"
    )
    for variant, measured in runs.items():
        for each in measured:
            if any(online != answering for online in each.online):
                print(f"UNEXPECTED: {variant} found {each.online} online per round, not {answering}")
    for number in range(args.rounds):
        ours, floor = ([each.walls[number] for each in runs[variant]] for variant in ("ours", "floor"))
        ours_cpu, floor_cpu = ([each.cpus[number] for each in runs[variant]] for variant in ("ours", "floor"))
        print(f"round {number + 1}:")
        print(describe("ours", "Watchdog.run_round, wall time", ours, "s", 1.0))
        print(describe("floor", "bare aiohttp gather, wall time", floor, "s", 1.0))
        print(ratio(ours, floor, GOAL_RATIO))
        print(describe("ours", "Watchdog.run_round, CPU time", ours_cpu, "s", 1.0))
        print(describe("floor", "bare aiohttp gather, CPU time", floor_cpu, "s", 1.0))
        print(ratio(ours_cpu, floor_cpu, what="CPU ours / floor (medians)"))
    alerted = sorted({each.alerted for each in runs["ours"]})
    print(f"alerts: the sink took {', '.join(map(str, alerted))} outage event(s) per process")
    for variant, name in (("ours", "the bot's process"), ("floor", "the bare gather's process")):
        goal = GOAL_RSS_MIB if variant == "ours" else None
        print(rss(variant, name, [each.maxrss_kib for each in runs[variant]], goal))
        before = sorted(each.rss_before_kib for each in runs[variant])
        print(f"{'':<6} {'':<40} RSS before the first round {before[len(before) // 2] / 1024:6.1f} MiB")


if __name__ == "__main__":
    main()
