"""Benchmark: one restart round trip (connect, run `true`, exit) the bot's way beside bare asyncssh and OpenSSH.

    python bench/restart_round_trip.py [--runs 20] [--known-hosts 1000]

Starts its own real sshd on 127.0.0.1 (tests/support/sshd.py's start_sshd, needs openssh-server and -client) with
HOME elsewhere, so that no ~/.bashrc runs in the sessions: the server's share, the same for every variant, is as
small as it gets and the ratios show the clients' own costs. Every variant checks the host key against the same
known_hosts file and authenticates with the same key. That file trusts --known-hosts hosts, as a bot watching
that many servers has it: the server's own line last, the others other hosts' (distinct addresses and ports, each
with an ed25519 key). All variants run in turn, in rotating order, --runs times:

    ours   SshRunner.run(server, "true")       what a restart sends: the key read, known_hosts read and matched,
                                               a pty, output cleaned (the service's recovery check is not in it)
    ours   PoracleService.restart              the whole restart: the target's lock, SshRunner.run, one health
                                               check (of a closed port: the recovery wait switched off), the audit
    floor  asyncssh.connect + conn.run, pty    bare asyncssh doing the same (known_hosts and key given as paths,
                                               nothing from ~/.ssh), with a pty (term_type) as the bot asks for
    floor  asyncssh.connect + conn.run         the same without a pty
    floor  ssh ... true                        the OpenSSH client: a new process each time, no pty

Prints median, min and max of each, and the ratios of the medians: SshRunner.run against bare asyncssh with a pty
(goal: at most 1.1), against it without one, and against the OpenSSH client.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `bot` and `tests` are not installed

from figures import alternate_async, describe, ratio  # noqa: E402

from bot.config import ServerConfig, Settings, load_settings  # noqa: E402
from bot.core.service import PoracleService, Requester  # noqa: E402
from bot.core.ssh import SshRunner  # noqa: E402
from bot.core.store import Origin, Store  # noqa: E402
from tests.support.gate import connect  # noqa: E402
from tests.support.sshd import SshServer, free_port, start_sshd  # noqa: E402

GOAL = 1.1
Variant = Callable[[], Awaitable[float]]


def timed(work: Callable[[], Awaitable[bool]]) -> Variant:
    async def run() -> float:
        started = time.perf_counter()
        if not await work():
            raise SystemExit("a round trip failed")
        return time.perf_counter() - started

    return run


def variants(server: SshServer, known_hosts: Path, settings: Settings, service: PoracleService) -> dict[str, Variant]:
    target: ServerConfig = settings.servers[0]
    runner = SshRunner(settings)
    requester = Requester(Origin.CLI, "bench")
    argv = server.ssh_argv("true", known_hosts=known_hosts)  # -F /dev/null, BatchMode, the same known_hosts

    async def bot_run() -> bool:
        return (await runner.run(target, "true", 30)).succeeded

    async def bot_restart() -> bool:
        return (await service.restart(target, requester)).succeeded

    def bare(term_type: str | None) -> Callable[[], Awaitable[bool]]:
        async def run() -> bool:
            async with connect(server, known_hosts) as conn:  # asyncssh.connect, known_hosts and key as paths
                done = await conn.run("true", term_type=term_type)
            return done.exit_status == 0

        return run

    async def openssh() -> bool:
        # Blocking on purpose: nothing else runs on the loop meanwhile, and the time is the client's alone.
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)  # noqa: ASYNC221
        return done.returncode == 0

    return {
        "SshRunner.run": timed(bot_run),
        "PoracleService.restart": timed(bot_restart),
        "asyncssh.connect + conn.run, pty": timed(bare("dumb")),
        "asyncssh.connect + conn.run, no pty": timed(bare(None)),
        "ssh ... true (OpenSSH client)": timed(openssh),
    }


async def measure(server: SshServer, known_hosts: Path, data: Path, runs: int) -> dict[str, list[float]]:
    settings = load_settings(
        {
            "PORACLE_SSH_KEY_PATH": str(server.client_key),
            "PORACLE_SSH_KNOWN_HOSTS": str(known_hosts),
            "PORACLE_SSH_HOST_KEY_POLICY": "strict",
            "PORACLE_DATA_DIR": str(data),
            "PORACLE_SERVER_1_HOST": server.host,
            "PORACLE_SERVER_1_API": f"http://{server.host}:{free_port()}",  # nothing listens: refused at once
            "PORACLE_SERVER_1_SSH_PORT": str(server.port),
            "PORACLE_SERVER_1_SSH_USER": server.user,
            "PORACLE_SERVER_1_RESTART_CMD": "true",
        }
    )
    store = Store.open(data)
    try:
        async with PoracleService(settings, store, recovery_wait=0) as service:
            chosen = variants(server, known_hosts, settings, service)
            await alternate_async(list(chosen.values()), 1)  # warm-up: page cache, sshd's first fork, imports
            results = await alternate_async(list(chosen.values()), runs)
    finally:
        store.close()
    return dict(zip(chosen, results, strict=True))


def write_known_hosts(server: SshServer, hosts: int) -> Path:
    """A known_hosts of `hosts` lines: other hosts first (a few keys, repeated), the server's own last."""
    keys = [asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip() for _ in range(16)]
    others = [f"[10.{i // 65536}.{i // 256 % 256}.{i % 256}]:2222 {keys[i % len(keys)]}\n" for i in range(hosts - 1)]
    path = server.base_dir / "known_hosts"
    path.write_text("".join(others) + server.known_hosts_line() + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--known-hosts", type=int, default=1000, help="lines in known_hosts (default 1000)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="restart-bench-"))
    server = start_sshd(force_command=False, extra_env={"HOME": str(scratch)})  # no ~/.bashrc in the sessions
    try:
        known_hosts = write_known_hosts(server, args.known_hosts)
        times = asyncio.run(measure(server, known_hosts, scratch / "data", args.runs))
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    print(
        f"restart round trip (connect, run `true`, exit) to sshd on {server.host}:{server.port}, known_hosts of "
        f"{args.known_hosts} host(s), {args.runs} runs each, alternating"
    )
    roles = ["ours", "ours", "floor", "floor", "floor"]
    for role, (name, values) in zip(roles, times.items(), strict=True):
        print(describe(role, name, values))
    ours = times["SshRunner.run"]
    print(ratio(ours, times["asyncssh.connect + conn.run, pty"], GOAL, "SshRunner.run / bare asyncssh, pty"))
    print(ratio(ours, times["asyncssh.connect + conn.run, no pty"], what="SshRunner.run / bare asyncssh, no pty"))
    print(ratio(ours, times["ssh ... true (OpenSSH client)"], what="SshRunner.run / OpenSSH client"))
    print(ratio(times["PoracleService.restart"], ours, what="PoracleService.restart / SshRunner.run"))


if __name__ == "__main__":
    main()
