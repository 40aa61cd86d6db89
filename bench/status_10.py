"""Benchmark: `/poracle status` with 10 servers, 2 of which accept and never answer, through the Discord double.

    python bench/status_10.py [--runs 5] [--answering 8] [--hung 2]

The real PoracleBot (discord.py's own networking, the real service and store) runs against the loopback
Discord double from tests/discord_double, with production defaults: PORACLE_HEALTH_TIMEOUT=5 and
PORACLE_HEALTH_INTERVAL=60 (so the monitor's first round, 2 s after connecting, overlaps the first runs, as
in production). For each run it measures, from the moment the double dispatches the interaction, the time
to the deferred answer ("thinking...", what Discord wants within 3 s) and to the final embed (about one
health timeout: the hung servers are waited for in parallel). Everything is in one process on 127.0.0.1:
the double, the health servers and the bot share one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `bot` and `tests` are not necessarily installed

import discord.gateway  # noqa: E402
import discord.http  # noqa: E402
import yarl  # noqa: E402

from bot.config import load_settings  # noqa: E402
from bot.core.service import PoracleService  # noqa: E402
from bot.core.store import Store  # noqa: E402
from bot.discord_bot.client import PoracleBot  # noqa: E402
from tests.support.discord_double import DiscordDouble  # noqa: E402
from tests.support.local_http import http_server, hung_server  # noqa: E402


async def measure(runs: int, answering: int, hung: int) -> tuple[list[float], list[float]]:
    deferred: list[float] = []
    final: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        double = await stack.enter_async_context(DiscordDouble())
        # What tests/discord_double/fixture.py's point_discord_at does, without pytest's monkeypatch.
        discord.http.Route.BASE = double.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(double.gateway_url)
        urls = [(await stack.enter_async_context(http_server())).url for _ in range(answering)]
        urls += [(await stack.enter_async_context(hung_server())).url for _ in range(hung)]
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="status-bench-")))
        env = {
            "DISCORD_TOKEN": double.token,
            "DISCORD_GUILD_ID": str(double.guild_id),
            "DISCORD_ADMIN_ROLE_IDS": str(double.admin_role_id),
            "DISCORD_ALERT_CHANNEL_ID": str(double.channel_id),
            "PORACLE_DATA_DIR": str(data_dir),
        }
        for number, url in enumerate(urls, 1):
            env |= {
                f"PORACLE_SERVER_{number}_NAME": f"Server {number}",
                f"PORACLE_SERVER_{number}_HOST": "127.0.0.1",
                f"PORACLE_SERVER_{number}_API": url,
            }
        settings = load_settings(env)
        store = Store.open(settings.data_dir)
        stack.callback(store.close)
        bot = PoracleBot(PoracleService(settings, store))
        async with bot.service, double.connected(bot):
            for run in range(1, runs + 1):
                record = await double.slash(double.admins[0], "poracle", "status", wait=False)
                await record.wait_response(timeout=10)
                answered = time.monotonic() - record.created_monotonic
                message = await record.wait_original(lambda m: not m.loading, timeout=30)
                done = time.monotonic() - record.created_monotonic
                title = message.embeds[0].get("title", "") if message.embeds else message.content
                print(f"  run {run}: deferred after {answered * 1000:.1f} ms, final embed after {done:.3f} s ({title})")
                deferred.append(answered)
                final.append(done)
    return deferred, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--answering", type=int, default=8)
    parser.add_argument("--hung", type=int, default=2)
    args = parser.parse_args()
    print(f"/poracle status: {args.answering} answering + {args.hung} hung servers, health timeout 5 s")
    deferred, final = asyncio.run(measure(args.runs, args.answering, args.hung))
    print(
        f"deferred answer: median {statistics.median(deferred) * 1000:.1f} ms, max {max(deferred) * 1000:.1f} ms"
        " (Discord's limit: 3000 ms)"
    )
    print(f"final embed:     median {statistics.median(final):.3f} s, max {max(final):.3f} s")


if __name__ == "__main__":
    main()
