"""Benchmark: `/poracle status` with 10 servers, 2 of which accept and never answer, through the Discord double.

    python bench/status_10.py [--runs 5] [--answering 8] [--hung 2]

The real PoracleBot (discord.py's own networking, the real service, watchdog and store) runs against the
loopback Discord double from tests/support/discord_double, with production defaults: PORACLE_HEALTH_TIMEOUT=5
and PORACLE_HEALTH_INTERVAL=60; the monitor's first round is waited for, so each answer starts from the last
round's picture. For each run it measures, from the moment the double dispatches the interaction, the time to
the first embed (the answer: the last round's picture, goal at most 100 ms) and to the final one (every server
checked afresh), and counts the edits in between. The final embed's floor is the same 10 checks made bare
(aiohttp, gathered, the same timeout), measured alternately with the answers in the same run: the goal is at
most the floor plus 100 ms. Everything is in one process on 127.0.0.1: the double, the health servers and the
bot share one event loop.
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

import aiohttp  # noqa: E402
import discord.gateway  # noqa: E402
import discord.http  # noqa: E402
import yarl  # noqa: E402
from figures import describe, ratio, rotated  # noqa: E402

from bot.config import load_settings  # noqa: E402
from bot.core.service import PoracleService  # noqa: E402
from bot.core.store import Store  # noqa: E402
from bot.discord_bot.client import PoracleFront  # noqa: E402
from tests.support.discord_double import DiscordDouble  # noqa: E402
from tests.support.local_http import http_server, hung_server  # noqa: E402
from tests.support.world import status_checked  # noqa: E402

TIMEOUT = 5.0  # PORACLE_HEALTH_TIMEOUT's default: what a hung server costs
GOAL_FIRST = 0.100
GOAL_OVER_FLOOR = 0.100  # the final embed: at most the bare checks plus this


async def bare_checks(urls: list[str]) -> float:
    """The floor: every server's GET /health at once, as bare as aiohttp allows, bounded by TIMEOUT."""

    async def get(session: aiohttp.ClientSession, url: str) -> None:
        # asyncio.timeout, not aiohttp's ClientTimeout: that rounds a timeout of 5 s or more up to the loop's next
        # whole second (its ceil_threshold), which would make the floor up to 1 s slower than the bot.
        with contextlib.suppress(TimeoutError, aiohttp.ClientError):
            async with asyncio.timeout(TIMEOUT), session.get(f"{url}/health") as answer:
                await answer.read()

    began = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(get(session, url) for url in urls))
    return time.monotonic() - began


async def measure(runs: int, answering: int, hung: int) -> tuple[list[float], list[float], list[float], list[int]]:
    first: list[float] = []
    final: list[float] = []
    floor: list[float] = []
    edits: list[int] = []
    async with contextlib.AsyncExitStack() as stack:
        double = await stack.enter_async_context(DiscordDouble())
        # What tests/support/discord_double/fixture.py's point_discord_at does, without pytest's monkeypatch.
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
        front = PoracleFront(PoracleService(settings, store))
        bot = front.new_client()
        first_round = asyncio.Event()

        async def round_done(report: object) -> None:
            first_round.set()

        bot.watchdog.after_round += (round_done,)
        async with front.monitoring(), double.connected(bot):
            await first_round.wait()  # the monitor's first round: the picture the answers start from
            for run in range(1, runs + 1):
                floor_first = rotated([False, True], run)[0]  # the floor first every other run, else after
                if floor_first:
                    floor.append(await bare_checks(urls))
                patches = len(double.requests_to("PATCH", "/webhooks/*/messages/@original"))
                record = await double.slash(double.admins[0], "poracle", "status", wait=False)
                await record.wait_response(timeout=10)
                answered = time.monotonic() - record.created_monotonic
                message = await record.wait_original(status_checked, timeout=30)
                done = time.monotonic() - record.created_monotonic
                count = len(double.requests_to("PATCH", "/webhooks/*/messages/@original")) - patches
                answer, *later = message.versions
                shown = answer.embeds[0].get("footer", {}).get("text", "")
                at = ", ".join(f"+{(v.at - answer.at).total_seconds():.3f} s" for v in later)
                print(
                    f"  run {run}: first embed after {answered * 1000:.1f} ms ({shown!r}), final after {done:.3f} s"
                    f" ({message.title}); {count} edit(s), at {at} after the answer"
                )
                first.append(answered)
                final.append(done)
                edits.append(count)
                if not floor_first:
                    floor.append(await bare_checks(urls))
    return first, final, floor, edits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--answering", type=int, default=8)
    parser.add_argument("--hung", type=int, default=2)
    args = parser.parse_args()
    print(f"/poracle status: {args.answering} answering + {args.hung} hung servers, health timeout {TIMEOUT:g} s")
    first, final, floor, edits = asyncio.run(measure(args.runs, args.answering, args.hung))
    met = "met" if max(first) <= GOAL_FIRST else "NOT met"
    print(describe("ours", "first embed (the last round's picture)", first), f"  goal <= 100 ms: {met}")
    print(describe("ours", "final embed (every server afresh)", final, "s", 1.0))
    print(describe("floor", "bare aiohttp checks of the same servers", floor, "s", 1.0))
    goal = (statistics.median(floor) + GOAL_OVER_FLOOR) / statistics.median(floor)
    print(ratio(final, floor, goal, "final / floor (medians); goal: +100 ms"))
    print(f"edits after the answer: {min(edits)} to {max(edits)} (Discord: about 5 per 5 s per interaction)")


if __name__ == "__main__":
    main()
