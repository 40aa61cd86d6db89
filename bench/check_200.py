"""Benchmark: `check` of 200 servers on loopback, 20 of which accept and never answer.

    python bench/check_200.py [--servers 200] [--hung 20] [--timeout 2] [--rounds 3]

A child process serves the HTTP side (one aiohttp site per answering server, each on its own 127.0.0.1 port,
plus listeners that accept and never answer), so the figures are the bot's own. The bot side is the real
HealthChecker.check_all (what PoracleService.check_all runs) with PORACLE_HEALTH_TIMEOUT=--timeout.
Goal: wall time under 2.5 s with a 2 s timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `bot` is not necessarily installed

from bot.config import load_settings  # noqa: E402
from bot.core.health import HealthChecker  # noqa: E402

HOST = "127.0.0.1"


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
        server = await asyncio.start_server(swallow, HOST, 0)
        hung_ports.append(server.sockets[0].getsockname()[1])
    print(json.dumps({"answering": ports, "hung": hung_ports}), flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    await runner.cleanup()


async def check(env: dict[str, str]) -> tuple[float, int, int]:
    settings = load_settings(env)
    async with HealthChecker(settings.health_timeout) as checker:
        started = time.perf_counter()
        results = await checker.check_all(settings.servers)
        wall = time.perf_counter() - started
    online = sum(result.online for result in results)
    return wall, online, len(results) - online


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--hung", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    answering = args.servers - args.hung
    if args.serve:
        asyncio.run(serve(answering, args.hung))
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
        apis = [f"http://{HOST}:{port}" for port in ports["answering"] + ports["hung"]]
        env = {"PORACLE_HEALTH_TIMEOUT": f"{args.timeout:g}"}
        for number, api in enumerate(apis, 1):
            env |= {f"PORACLE_SERVER_{number}_HOST": HOST, f"PORACLE_SERVER_{number}_API": api}

        print(f"check of {len(apis)} servers ({answering} answering, {args.hung} hung), timeout {args.timeout:g} s")
        walls = []
        for round_number in range(1, args.rounds + 1):
            wall, online, offline = asyncio.run(check(env))
            walls.append(wall)
            print(f"  round {round_number}: wall {wall:.3f} s, {online} online, {offline} offline")
            if (online, offline) != (answering, args.hung):
                print("  UNEXPECTED: every answering server should be online and every hung one offline")
        tracemalloc.start()
        wall, _, _ = asyncio.run(check(env))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        print(f"wall time: median {sorted(walls)[len(walls) // 2]:.3f} s, max {max(walls):.3f} s (goal < 2.5 s)")
        print(f"memory: tracemalloc peak {peak / 2**20:.1f} MiB during one check_all (wall {wall:.3f} s traced)")
        print(f"memory: process ru_maxrss {maxrss_kib / 1024:.1f} MiB (the bot side only; servers are a child)")
        child.stdin.close()
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


if __name__ == "__main__":
    main()
