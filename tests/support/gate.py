"""poracle-gate in front of a REAL pm2 running two apps, behind a REAL OpenSSH sshd whose key line forces the
gate (pytest plugin: registered in tests/conftest.py). One app has secrets in its environment and prints them
to its logs, so every test can check they never come back.

Fixture ``world`` (module-scoped: one pm2 daemon and one sshd per test module) gives a :class:`World`. sshd
hands the gate the private PM2_HOME and XDG dirs with ``SetEnv`` (the test's business: the gate uses whatever
environment the SSH user has).

Fixture ``gate_host`` (module-scoped too) gives a :class:`GateHost`: the same, with the four kinds of pm2
process a server has on a bad day: ``poracle`` (answers HTTP, secrets in its environment and log),
``helper`` (answers HTTP, a long log), ``looper`` (exits 0.7 s after each start and is restarted by pm2,
never `errored`, until ``stop_looping()``) and ``broken`` (dies at once: pm2 gives up, `errored`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from bot import gate
from tests.support.pm2 import APP_JS, Pm2App
from tests.support.sshd import SshdFactory, SshServer, free_port, start_sshd

GATE = Path(__file__).resolve().parents[2] / "bot" / "gate" / "poracle-gate.js"
TOKEN = f"{secrets.token_urlsafe(18)}.{secrets.token_urlsafe(6)}.{secrets.token_urlsafe(29)}"
DB_PASSWORD = f"pw-{secrets.token_hex(12)}"  # printed bare: only the gate's environment redaction hides it
WEBHOOK_TOKEN = secrets.token_urlsafe(48)  # in a variable whose name says nothing: only the pattern hides it
URL_PASSWORD = secrets.token_hex(10)
API_SECRET = secrets.token_hex(16)
SECRETS = (TOKEN, DB_PASSWORD, WEBHOOK_TOKEN, URL_PASSWORD, API_SECRET)
ALPHA_ENV = {
    "DISCORD_TOKEN": TOKEN,
    "DB_PASSWORD": DB_PASSWORD,
    "ALERT_WEBHOOK": f"https://discord.com/api/webhooks/123456789012345678/{WEBHOOK_TOKEN}",
    "DATABASE_URL": f"mysql://poracle:{URL_PASSWORD}@127.0.0.1:3306/poracle",
    "PORACLE_API_SECRET": API_SECRET,
}
APP_WITH_SECRETS = (
    """\
// Like a careless PoracleJS: tells its secrets to the log on start.
const env = process.env;
console.log("gate-test app " + env.name + " ready");
if (env.DISCORD_TOKEN) {
  console.log("logging in to discord with " + env.DISCORD_TOKEN);
  console.log("DISCORD_TOKEN=" + env.DISCORD_TOKEN + " db password " + env.DB_PASSWORD);
  console.log("alerts go to " + env.ALERT_WEBHOOK + " and data to " + env.DATABASE_URL);
  console.error("request headers: x-poracle-secret: " + env.PORACLE_API_SECRET);
}
"""
    + APP_JS
)


def key_options(gate_command: str) -> str:
    return f'restrict,pty,command="{gate_command}"'


def connect(
    server: SshServer, known_hosts: Path | None = None
) -> contextlib.AbstractAsyncContextManager[asyncssh.SSHClientConnection]:
    """An asyncssh connection to `server` with its client key, its host key trusted (by `known_hosts` when
    given, read by asyncssh), nothing from ~/.ssh."""
    return asyncssh.connect(
        server.host,
        port=server.port,
        username=server.user,
        client_keys=[str(server.client_key)],
        known_hosts=str(known_hosts or server.write_known_hosts()),
        config=None,
        agent_path=None,
    )


def running_pids(pm2_home: Path) -> dict[str, int]:
    """The live processes of a pm2 daemon and its apps, from pm2's pid files (instant, unlike a pm2 command):
    a restart changes an app's pid, a stop or delete removes its file, a kill ends the daemon. Keyed by the
    file's name: "pm2", and "<name>-<pm_id>" for an app."""
    found = {}
    for path in [pm2_home / "pm2.pid", *(pm2_home / "pids").glob("*.pid")]:
        with contextlib.suppress(ProcessLookupError, FileNotFoundError, ValueError):
            pid = int(path.read_text())
            os.kill(pid, 0)
            found[path.stem] = pid
    return found


def assert_no_secrets(output: str, gate_log: Path) -> None:
    """None of SECRETS in `output`, nor in the gate's own log."""
    log = gate_log.read_text() if gate_log.exists() else ""
    assert [s for s in SECRETS if s in output] == [], output
    assert [s for s in SECRETS if s in log] == [], log


def start_apps(pm2: Pm2App, apps: list[dict[str, object]]) -> None:
    """Start `apps` (pm2 ecosystem entries) in the pm2 of `pm2`'s PM2_HOME."""
    path = pm2.pm2_home / "apps.json"
    path.write_text(json.dumps({"apps": apps}))
    pm2.pm2("start", str(path))


def gate_sshd(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> SshServer:
    """A real sshd whose key line forces the real gate, the sessions given `env`."""
    return start_sshd(
        base_dir=tmp_path_factory.mktemp("sshd-gate"),
        authorized_options=key_options(f"{GATE} --pm2={shutil.which('pm2')}"),
        force_command=False,
        extra_env=env,
    )


def gate_env(home: Path, state: Path) -> dict[str, str]:
    """What sshd gives every session: the private PM2_HOME, and XDG dirs for the gate's log and config."""
    return {"PM2_HOME": str(home), "XDG_STATE_HOME": str(state), "XDG_CONFIG_HOME": str(state / "config")}


@dataclass
class World:
    server: SshServer
    alpha: Pm2App
    beta: Pm2App
    env: dict[str, str]  # what sshd gives every session (SetEnv)
    gate_log: Path
    pm_ids: dict[str, int]

    @property
    def api(self) -> str:
        """alpha's base URL: what the bot health-checks after a restart."""
        return self.alpha.health_url.removesuffix("/health")

    def check_secrets(self, output: str) -> None:
        assert_no_secrets(output, self.gate_log)

    def ssh(self, command: str, server: SshServer | None = None) -> subprocess.CompletedProcess[str]:
        done = (server or self.server).run(command)
        self.check_secrets(done.stdout + done.stderr)
        return done

    async def ssh_pty(self, command: str | None) -> tuple[int | None, str]:
        """As the bot runs commands: asyncssh with a pty, stderr merged; None asks for a login shell."""
        async with connect(self.server) as conn:
            process = await conn.create_process(command, term_type="dumb", stderr=asyncssh.STDOUT)
            process.stdin.write_eof()
            output = str(await asyncio.wait_for(process.stdout.read(), 30))
            completed = await process.wait()
        self.check_secrets(output)
        return completed.exit_status, output

    def log_entries(self) -> list[dict[str, object]]:
        text = self.gate_log.read_text() if self.gate_log.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    def running(self) -> dict[str, int]:
        """The live processes of the pm2 daemon and its apps (see :func:`running_pids`)."""
        return running_pids(self.alpha.pm2_home)

    def key(self, app: Pm2App) -> str:
        """The app's entry in :meth:`running` (its pid file is named <name>-<pm_id>.pid)."""
        return f"{app.name}-{self.pm_ids[app.name]}"

    def pid(self, app: Pm2App) -> int:
        return self.running()[self.key(app)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = Path(tempfile.mkdtemp(prefix="pm2-"))  # short: pm2's unix sockets live there
    script = home / "app.js"
    alpha, beta = (Pm2App(pm2_home=home, name=name, port=free_port(), script=script) for name in ("alpha", "beta"))
    state = tmp_path_factory.mktemp("gate-state")
    env = gate_env(home, state)
    server = None
    try:
        script.write_text(APP_WITH_SECRETS)
        start_apps(
            alpha,
            [
                {"name": app.name, "script": str(script), "args": [str(app.port)], "env": app_env}
                for app, app_env in ((alpha, ALPHA_ENV), (beta, {}))
            ],
        )
        alpha.wait_healthy()
        beta.wait_healthy()
        pm_ids = {app.name: int(app.info()["pm_id"]) for app in (alpha, beta)}
        server = gate_sshd(tmp_path_factory, env)
        yield World(server, alpha, beta, env, state / "poracle-gate" / "gate.log", pm_ids)
    finally:
        if server is not None:
            server.stop()
        alpha.kill()


HELPER_JS = (
    """\
// A chatty helper: a long log at every start.
for (let i = 1; i <= 300; i++) console.log("helper warming up, step " + i + " of 300, all is well so far");
"""
    + APP_JS
)
LOOPER_JS = """\
// Crash-loops: exits 0.7 s after each start (pm2 restarts it, and as it lived longer than its min_uptime
// pm2 never calls it errored), until the file named by its argument exists.
const fs = require("fs");
console.log("looper started");
if (fs.existsSync(process.argv[2])) {
  setInterval(() => {}, 1 << 30);
} else {
  setTimeout(() => { console.error("looper: lost its database, exiting"); process.exit(1); }, 700);
}
"""
BROKEN_JS = """\
// Dies at once, every time: pm2 gives up on it after max_restarts (errored).
console.error("broken: cannot read its config");
process.exit(1);
"""


@dataclass
class GateHost:
    """A server as the bot sees it through the gate, with poracle, helper, looper and broken in its pm2."""

    server: SshServer
    apps: dict[str, Pm2App]  # by name; poracle and helper answer HTTP on their port
    env: dict[str, str]
    gate_log: Path
    looper_flag: Path
    pm_ids: dict[str, int]

    @property
    def api(self) -> str:
        """poracle's base URL: the server's API, health-checked by the bot."""
        return self.apps["poracle"].health_url.removesuffix("/health")

    def check_secrets(self, output: str) -> None:
        assert_no_secrets(output, self.gate_log)

    def running(self) -> dict[str, int]:
        """The live pm2 processes by name (see :func:`running_pids`)."""
        pids = running_pids(self.apps["poracle"].pm2_home)
        return {name: pids[f"{name}-{pm_id}"] for name, pm_id in self.pm_ids.items() if f"{name}-{pm_id}" in pids}

    def log_text(self) -> str:
        """The gate's log so far ("" before the gate's first request)."""
        return self.gate_log.read_text() if self.gate_log.exists() else ""

    def steady(self) -> dict[str, int]:
        """The pids of the processes that keep them unless restarted: looper restarts itself, broken is down."""
        return {name: pid for name, pid in self.running().items() if name in ("poracle", "helper")}

    def restarts(self, name: str) -> int:
        return int(self.apps[name].info()["pm2_env"]["restart_time"])

    def wait_restarts(self, name: str, count: int, timeout: float = 20) -> int:
        """Wait until pm2 counts at least `count` restarts of `name`; returns the count."""
        deadline = time.monotonic() + timeout
        while (now := self.restarts(name)) < count:
            assert time.monotonic() < deadline, f"{name} restarted {now} times, not {count}, in {timeout} s"
            time.sleep(0.1)
        return now

    def stop_looping(self, timeout: float = 20) -> int:
        """Let looper live; returns its restart count once it has stayed online for 2 s."""
        self.looper_flag.touch()
        deadline = time.monotonic() + timeout
        while True:
            count, info = self.restarts("looper"), self.apps["looper"].info()
            if info["pm2_env"]["status"] == "online" and time.time() * 1000 - info["pm2_env"]["pm_uptime"] > 2000:
                return count
            assert time.monotonic() < deadline, f"looper did not settle in {timeout} s"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def gate_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateHost]:
    home = Path(tempfile.mkdtemp(prefix="pm2-"))
    scripts = {"poracle": APP_WITH_SECRETS, "helper": HELPER_JS, "looper": LOOPER_JS, "broken": BROKEN_JS}
    apps = {name: Pm2App(pm2_home=home, name=name, port=free_port(), script=home / f"{name}.js") for name in scripts}
    state = tmp_path_factory.mktemp("gate-state")
    env = gate_env(home, state)
    flag = home / "looper-may-live"
    server = None
    try:
        for name, text in scripts.items():
            apps[name].script.write_text(text)
        start_apps(
            apps["poracle"],
            [
                {"name": "poracle", "script": str(apps["poracle"].script), "args": [str(apps["poracle"].port)],
                 "env": ALPHA_ENV},
                {"name": "helper", "script": str(apps["helper"].script), "args": [str(apps["helper"].port)]},
                {"name": "looper", "script": str(apps["looper"].script), "args": [str(flag)], "min_uptime": 500},
                {"name": "broken", "script": str(apps["broken"].script), "max_restarts": 2},
            ],
        )  # fmt: skip
        apps["poracle"].wait_healthy()
        apps["helper"].wait_healthy()
        deadline = time.monotonic() + 20
        while apps["broken"].status() != "errored":
            assert time.monotonic() < deadline, f"broken is {apps['broken'].status()}, not errored"
            time.sleep(0.1)
        pm_ids = {name: int(app.info()["pm_id"]) for name, app in apps.items()}
        server = gate_sshd(tmp_path_factory, env)
        yield GateHost(server, apps, env, state / "poracle-gate" / "gate.log", flag, pm_ids)
    finally:
        if server is not None:
            server.stop()
        apps["poracle"].kill()


# ----------------------------------------------------------------------------------------------- verbs


# ------------------------------------------------------------------------------------ the bot, configured


def bot_env(server: SshServer, directory: Path, api: str, **extra: str) -> dict[str, str]:
    """The bot's configuration for one server, Main, on `server` with ACCESS=gate (`extra` overrides any
    variable): its host key pinned under the strict policy, state in `directory`/data."""
    return {
        "PORACLE_SSH_KEY_PATH": str(server.client_key),
        "PORACLE_SSH_KNOWN_HOSTS": str(server.write_known_hosts(directory / "known_hosts")),
        "PORACLE_SSH_HOST_KEY_POLICY": "strict",
        "PORACLE_SSH_CONNECT_TIMEOUT": "5",
        "PORACLE_HEALTH_TIMEOUT": "2",
        "PORACLE_DATA_DIR": str(directory / "data"),
        "PORACLE_SERVER_1_NAME": "Main",
        "PORACLE_SERVER_1_HOST": server.host,
        "PORACLE_SERVER_1_SSH_PORT": str(server.port),
        "PORACLE_SERVER_1_SSH_USER": server.user,
        "PORACLE_SERVER_1_API": api,
        "PORACLE_SERVER_1_ACCESS": "gate",
    } | extra


def patched_gate(path: Path, *changes: tuple[str, str]) -> Path:
    """The real gate with each (text, replacement) of `changes` made, written to `path` (executable)."""
    text = GATE.read_text()
    for new, old in changes:
        assert new in text, f"{GATE} changed: {new!r} is gone"
        text = text.replace(new, old)
    path.write_text(text)
    path.chmod(0o755)
    return path


def old_gate(directory: Path) -> Path:
    """The real gate made into an older release, 0.9.0, that knows only hello and processes."""
    return patched_gate(
        directory / "poracle-gate-0.9.0",
        (f"const VERSION = '{gate.version()}';", "const VERSION = '0.9.0';"),
        ("const VERBS = ['hello', 'processes', 'restart', 'logs'];", "const VERBS = ['hello', 'processes'];"),
    )


def careless_gate(directory: Path) -> Path:
    """The real gate with its redaction taken out: what the bot's own redaction is the second line against."""
    return patched_gate(
        directory / "poracle-gate-careless",
        ("function redact(text, secrets) {\n", "function redact(text, secrets) {\n  return text;\n"),
    )


RECORDER = """#!/bin/sh
# Test-only forced command: record what the client asked for (one line per session), then run it as sshd would.
if [ -n "${SSH_ORIGINAL_COMMAND+set}" ]; then
    printf '%s\\n' "$SSH_ORIGINAL_COMMAND" >> "$0.record"
    exec "${SHELL:-/bin/sh}" -c "$SSH_ORIGINAL_COMMAND"
fi
echo '(login shell)' >> "$0.record"
exec "${SHELL:-/bin/sh}" -l
"""


@dataclass
class Recorder:
    """A forced command in authorized_keys that writes down every command a session asked for."""

    script: Path

    @property
    def options(self) -> str:
        return f'command="{self.script}"'

    def commands(self) -> list[str]:
        record = self.script.with_name(self.script.name + ".record")
        return record.read_text().splitlines() if record.exists() else []


@pytest.fixture
def recording_sshd(sshd_factory: SshdFactory, tmp_path: Path) -> tuple[SshServer, Recorder]:
    """An sshd whose only key line forces a :class:`Recorder` (the sessions' commands still run)."""
    recorder = Recorder(tmp_path / "recorder")
    recorder.script.write_text(RECORDER)
    recorder.script.chmod(0o755)
    return sshd_factory(authorized_options=recorder.options, force_command=False), recorder
