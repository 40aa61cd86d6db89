"""Benchmark: the process list through poracle-gate against `pm2 jlist`, over the same SSH connection.

    python bench/gate_vs_jlist.py [--runs 20] [--apps 2]

Starts a real pm2 (private PM2_HOME) with --apps node apps and a real sshd on 127.0.0.1 (tests/support), opens
one asyncssh connection and runs, alternately, one session each of:

    SSH_ORIGINAL_COMMAND='poracle-gate 1 processes' <gate> --pm2=<pm2>    (what the gate does for the bot)
    <pm2> jlist                                                           (what the bot would run without it)

Both go through the same login shell and the same pm2, so the difference is the gate's own cost: one more
node start, its checks and its log line, and reducing jlist to the named fields. Prints median, min and max of
each, the difference and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `bot` and `tests` are not installed

from bot.core.gate_protocol import parse_processes, processes_command  # noqa: E402
from bot.gate import GATE_FILE_NAME  # noqa: E402
from tests.support.gate import connect  # noqa: E402
from tests.support.pm2 import APP_JS  # noqa: E402
from tests.support.sshd import SshServer, free_port, start_sshd  # noqa: E402

GATE = ROOT / "bot" / "gate" / GATE_FILE_NAME


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
        through_gate: list[float] = []
        plain: list[float] = []
        for run in range(runs):  # alternate, and swap who goes first, so drift hits both alike
            order = [(gate, through_gate), (jlist, plain)]
            for command, times in order if run % 2 == 0 else reversed(order):
                seconds, _ = await timed(conn, command)
                times.append(seconds)
        return through_gate, plain


def describe(name: str, times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"{name:<28} median {statistics.median(ms):7.1f} ms   min {min(ms):7.1f} ms   max {max(ms):7.1f} ms"


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
    server = None
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
              f"{args.runs} sessions each")  # fmt: skip
        print(describe("poracle-gate 1 processes", through_gate))
        print(describe("pm2 jlist", plain))
        gate_ms, jlist_ms = statistics.median(through_gate) * 1000, statistics.median(plain) * 1000
        print(
            f"the gate's own cost (medians): {gate_ms - jlist_ms:+.1f} ms, ratio gate / jlist {gate_ms / jlist_ms:.2f}"
        )
    finally:
        if server is not None:
            server.stop()
        subprocess.run([pm2, "kill"], env=pm2_env(home, pm2), capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
