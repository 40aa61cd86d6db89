"""Benchmark: one restart round trip (connect, run `true`, exit) with the bot's SshRunner vs the OpenSSH client.

    python bench/restart_vs_openssh.py [--runs 20]

Starts its own real sshd on 127.0.0.1 with tests/sshd.py's start_sshd (needs openssh-server and -client).
Both sides verify the host key against the same known_hosts file and authenticate with the same key.
Prints the median (and min/max) of --runs round trips each, and the ratio bot / OpenSSH.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `bot` and `tests` are not installed

from bot.config import ServerConfig, load_settings  # noqa: E402
from bot.core.ssh import SshRunner  # noqa: E402
from tests.support.sshd import start_sshd  # noqa: E402


async def bot_round_trips(runner: SshRunner, server: ServerConfig, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await runner.run(server, "true", 30)
        times.append(time.perf_counter() - started)
        if not result.succeeded:
            raise SystemExit(f"bot round trip failed: {result}")
    return times


def openssh_round_trips(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"ssh round trip failed ({done.returncode}): {done.stderr.decode()}")
    return times


def describe(name: str, times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"{name:<22} median {statistics.median(ms):7.1f} ms   min {min(ms):7.1f} ms   max {max(ms):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    server = start_sshd()  # in its own temp dir, removed by stop()
    try:
        known_hosts = server.write_known_hosts()
        settings = load_settings(
            {
                "PORACLE_SSH_KEY_PATH": str(server.client_key),
                "PORACLE_SSH_KNOWN_HOSTS": str(known_hosts),
                "PORACLE_SSH_HOST_KEY_POLICY": "strict",
                "PORACLE_SERVER_1_HOST": server.host,
                "PORACLE_SERVER_1_API": f"http://{server.host}:1",
                "PORACLE_SERVER_1_SSH_PORT": str(server.port),
                "PORACLE_SERVER_1_SSH_USER": server.user,
            }
        )
        runner = SshRunner(settings)
        # The plain OpenSSH client, isolated from ~/.ssh/config and agents; see SshServer.ssh_argv.
        argv = server.ssh_argv("true", known_hosts=known_hosts)

        # One warm-up each (page cache, sshd's first fork), then alternate blocks so drift hits both alike.
        asyncio.run(bot_round_trips(runner, settings.servers[0], 1))
        openssh_round_trips(argv, 1)
        bot: list[float] = []
        openssh: list[float] = []
        half = args.runs // 2
        for block in (half, args.runs - half):
            bot += asyncio.run(bot_round_trips(runner, settings.servers[0], block))
            openssh += openssh_round_trips(argv, block)

        target = f"{server.host}:{server.port}"
        print(f"restart round trip (connect, run `true`, exit) to sshd on {target}, {args.runs} runs each")
        print(describe("asyncssh (SshRunner)", bot))
        print(describe("OpenSSH ssh client", openssh))
        print(f"ratio asyncssh / OpenSSH (medians): {statistics.median(bot) / statistics.median(openssh):.2f}")
        print("note: `ssh` is a new process each time (exec + its own start-up); the bot's runner is in-process")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
