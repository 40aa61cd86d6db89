"""poracle-gate in front of a REAL pm2 running two apps, behind a REAL OpenSSH sshd whose key line forces the
gate (pytest plugin: registered in tests/conftest.py). One app has secrets in its environment and prints them
to its logs, so every test can check they never come back.

Fixture ``world`` (module-scoped: one pm2 daemon and one sshd per test module) gives a :class:`World`. sshd
hands the gate the private PM2_HOME and XDG dirs with ``SetEnv`` (the test's business: the gate uses whatever
environment the SSH user has).
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

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
        log = self.gate_log.read_text() if self.gate_log.exists() else ""
        assert [s for s in SECRETS if s in output] == [], output
        assert [s for s in SECRETS if s in log] == [], log

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
        """The live processes of the pm2 daemon and its apps, from pm2's pid files (instant, unlike a pm2
        command): a restart changes an app's pid, a stop or delete removes its file, a kill ends the daemon."""
        home = self.alpha.pm2_home
        found = {}
        for path in [home / "pm2.pid", *(home / "pids").glob("*.pid")]:
            pid = int(path.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                found[path.stem] = pid
        return found

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
    env = {"PM2_HOME": str(home), "XDG_STATE_HOME": str(state), "XDG_CONFIG_HOME": str(state / "config")}
    server = None
    try:
        script.write_text(APP_WITH_SECRETS)
        apps = [
            {"name": app.name, "script": str(script), "args": [str(app.port)], "env": app_env}
            for app, app_env in ((alpha, ALPHA_ENV), (beta, {}))
        ]
        (home / "apps.json").write_text(json.dumps({"apps": apps}))
        alpha.pm2("start", str(home / "apps.json"))
        alpha.wait_healthy()
        beta.wait_healthy()
        pm_ids = {app.name: int(app.info()["pm_id"]) for app in (alpha, beta)}
        server = start_sshd(
            base_dir=tmp_path_factory.mktemp("sshd-gate"),
            authorized_options=key_options(f"{GATE} --pm2={shutil.which('pm2')}"),
            force_command=False,
            extra_env=env,
        )
        yield World(server, alpha, beta, env, state / "poracle-gate" / "gate.log", pm_ids)
    finally:
        if server is not None:
            server.stop()
        alpha.kill()


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


def old_gate(directory: Path) -> Path:
    """The real gate made into an older release, 0.9.0, that knows only hello and processes."""
    text = GATE.read_text()
    for new, old in (
        ("const VERSION = '1.0.0';", "const VERSION = '0.9.0';"),
        ("const VERBS = ['hello', 'processes', 'restart', 'logs'];", "const VERBS = ['hello', 'processes'];"),
    ):
        assert new in text, f"{GATE} changed: {new!r} is gone"
        text = text.replace(new, old)
    path = directory / "poracle-gate-0.9.0"
    path.write_text(text)
    path.chmod(0o755)
    return path


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
