"""Benchmark: the process list through poracle-gate against `pm2 jlist`, over the same SSH connection.

    python bench/gate_vs_jlist.py [--runs 20] [--apps 2]

Starts a real pm2 (private PM2_HOME) with --apps node apps and a real sshd on 127.0.0.1 (tests/support), opens
one asyncssh connection and runs, alternately, one session each of:

    SSH_ORIGINAL_COMMAND='poracle-gate 1 processes' <gate> --pm2=<pm2>    (what the gate does for the bot)
    <pm2> jlist                                                           (what the bot would run without it)

Both go through the same login shell and the same pm2, so the difference is the gate's own cost: one more
node start, its checks and its log line, and reducing jlist to the named fields. Prints median, min and max of
each, the difference and the ratio of the medians.

Then the bot's whole round trip through the gate, against a second sshd whose key line forces the gate
(restrict,pty,command="<gate> --pm2=<pm2>", as `poracle-bot gate` prints it), alternately:

    ours   SshRunner.gate(server, 'poracle-gate 1 processes', parse_processes, pty=False): the key read,
           known_hosts matched, connect, the request, the answer parsed into typed processes
    floor  bare asyncssh.connect + conn.run of the same request (known_hosts and key given as paths)

Goal: at most 1.1 x the bare round trip, as for the restart round trip (bench/restart_round_trip.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `bot` and `tests` are not installed

from figures import alternate_async, describe, ratio  # noqa: E402

from bot.config import load_settings  # noqa: E402
from bot.core.gate_protocol import parse_processes, processes_command  # noqa: E402
from bot.core.ssh import SshRunner  # noqa: E402
from bot.gate import GATE_FILE_NAME  # noqa: E402
from tests.support.gate import connect, key_options  # noqa: E402
from tests.support.pm2 import APP_JS  # noqa: E402
from tests.support.sshd import SshServer, free_port, start_sshd  # noqa: E402

GATE = ROOT / "bot" / "gate" / GATE_FILE_NAME
GOAL = 1.1


def pm2_env(home: Path, pm2: str) -> dict[str, str]:
    return {"PATH": f"{Path(pm2).parent}:/usr/bin:/bin", "PM2_HOME": str(home), "HOME": str(home)}


def start_pm2(home: Path, apps: int, pm2: str) -> None:
    (home / "app.js").write_text(APP_JS)
    ecosystem = {"apps": [{"name": f"app{i}", "script": str(home / "app.js"), "args": [str(free_port())]}
                          for i in range(apps)]}  # fmt: skip
    (home / "apps.json").write_text(json.dumps(ecosystem))
    start = [pm2, "start", str(home / "apps.json")]
    subprocess.run(start, env=pm2_env(home, pm2), check=True, capture_output=True, timeout=60)


async def timed(conn: asyncssh.SSHClientConnection, command: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = await conn.run(command, check=True)
    return time.perf_counter() - started, str(done.stdout)


async def measure(server: SshServer, gate: str, jlist: str, runs: int, apps: int) -> tuple[list[float], list[float]]:
    async with connect(server) as conn:
        # One warm-up each (page cache, pm2's first answer), checked: both must list every app.
        _, out = await timed(conn, gate)
        assert len(parse_processes(out).processes) == apps, out
        _, out = await timed(conn, jlist)
        assert len(json.loads(out.strip().splitlines()[-1])) == apps, out[-500:]

        async def session(command: str) -> float:
            seconds, _ = await timed(conn, command)
            return seconds

        # Alternating, who goes first rotating, so that drift hits both alike.
        through_gate, plain = await alternate_async([lambda: session(gate), lambda: session(jlist)], runs)
        return through_gate, plain


async def round_trips(server: SshServer, runs: int, apps: int) -> tuple[list[float], list[float]]:
    """The bot's SshRunner.gate against bare asyncssh, each a connection of its own, to the gate-forcing sshd."""
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
            "PORACLE_SERVER_1_ACCESS": "gate",
        }
    )
    runner, target, request = SshRunner(settings), settings.servers[0], processes_command()

    async def bot() -> float:
        started = time.perf_counter()
        result = await runner.gate(target, request, parse_processes, 30, pty=False)
        seconds = time.perf_counter() - started
        assert result.reply is not None and len(result.reply.processes) == apps, result
        return seconds

    async def bare() -> float:
        started = time.perf_counter()
        async with connect(server, known_hosts) as conn:
            done = await conn.run(request, check=True)
        seconds = time.perf_counter() - started
        assert len(parse_processes(str(done.stdout)).processes) == apps, done.stdout
        return seconds

    await alternate_async([bot, bare], 1)  # warm-up
    ours, floor = await alternate_async([bot, bare], runs)
    return ours, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--apps", type=int, default=2)
    args = parser.parse_args()
    pm2 = shutil.which("pm2")
    if pm2 is None or shutil.which("node") is None:
        raise SystemExit("node and pm2 are needed (.ci/run installs them)")

    home = Path(tempfile.mkdtemp(prefix="pm2-"))  # short: pm2's sockets live there
    state = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    server = gated = None
    try:
        start_pm2(home, args.apps, pm2)
        # HOME elsewhere: no ~/.bashrc in the sessions (on the dev box root's costs ~0.2 s), the same for both.
        env = {"PM2_HOME": str(home), "HOME": str(state), "XDG_STATE_HOME": str(state)}
        server = start_sshd(force_command=False, extra_env=env)
        original = shlex.quote(processes_command())
        gate = f"SSH_ORIGINAL_COMMAND={original} {shlex.quote(str(GATE))} --pm2={shlex.quote(pm2)}"
        jlist = f"{shlex.quote(pm2)} jlist"
        through_gate, plain = asyncio.run(measure(server, gate, jlist, args.runs, args.apps))

        print(f"process list of {args.apps} pm2 apps over one SSH connection to {server.host}:{server.port}, "
              f"{args.runs} sessions each, alternating")  # fmt: skip
        print(describe("ours", "poracle-gate 1 processes", through_gate))
        print(describe("floor", "pm2 jlist", plain))
        print(ratio(through_gate, plain, what="gate / pm2 jlist (medians)"))

        gated = start_sshd(force_command=False, extra_env=env, authorized_options=key_options(f"{GATE} --pm2={pm2}"))
        ours, floor = asyncio.run(round_trips(gated, args.runs, args.apps))
        print(f"the bot's round trip through the gate (connect, processes, exit) to {gated.host}:{gated.port}, "
              f"{args.runs} runs each, alternating")  # fmt: skip
        print(describe("ours", "SshRunner.gate processes", ours))
        print(describe("floor", "asyncssh.connect + conn.run", floor))
        print(ratio(ours, floor, GOAL))
    finally:
        for sshd in (server, gated):
            if sshd is not None:
                sshd.stop()
        subprocess.run([pm2, "kill"], env=pm2_env(home, pm2), capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
