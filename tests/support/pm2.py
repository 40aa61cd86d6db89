"""A real node HTTP app under a real, isolated pm2 (pytest plugin: ``pytest_plugins = ["tests.support.pm2"]``).

Fixture ``pm2_app`` (function-scoped; ~1 s to start) gives a :class:`Pm2App`: a tiny node server on
127.0.0.1:<free port> answering ``GET /health`` with 200 ``{"status":"ok"}``, run by a pm2 daemon whose
``PM2_HOME`` is a private temp dir, so it never touches ``~/.pm2`` or any other pm2. Teardown runs
``pm2 kill`` for that PM2_HOME.

Notes:
* pm2/node missing is a test FAILURE, not a skip: CI installs them (.ci/run).
* PM2_HOME is a short ``/tmp/pm2-XXXX`` dir on purpose: pm2 puts unix sockets there and socket paths are
  limited to 107 bytes, which pytest's tmp_path can exceed.
* ``restart_command`` is a plain shell string (``PM2_HOME=... pm2 restart NAME``) meant to be run over
  ssh on the test sshd (same machine, same user); it relies on ``pm2`` being on the session PATH,
  which tests/sshd.py arranges. ``pm2 restart`` returns after ~0.4 s; the new pid is visible at once, but
  poll :meth:`Pm2App.wait_restarted` before expecting /health to answer again.
* The pm2 daemon inherits the pytest process environment (not the ssh session's).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.sshd import HOST, free_port

APP_JS = """\
// Test app for poracle-bot: GET /health -> 200 {"status":"ok"}; anything else 404.
const http = require("http");
const port = Number(process.argv[2]);
http
  .createServer((req, res) => {
    if (req.method === "GET" && req.url === "/health") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ status: "ok" }));
    } else {
      res.writeHead(404);
      res.end();
    }
  })
  .listen(port, "127.0.0.1");
"""


_WAIT_LISTENING = (
    'const net = require("net"); const deadline = Date.now() + 15000;'
    '(function attempt() { const s = net.connect(Number(process.argv[1]), "127.0.0.1", () => process.exit(0));'
    ' s.on("error", () => (Date.now() < deadline ? setTimeout(attempt, 50) : process.exit(1))); })();'
)


class Pm2Error(RuntimeError):
    pass


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"`{tool}` not found on PATH: install node and `npm install -g pm2` (.ci/run does)")
    return found


@dataclass
class Pm2App:
    pm2_home: Path
    name: str
    port: int
    script: Path

    @property
    def health_url(self) -> str:
        return f"http://{HOST}:{self.port}/health"

    @property
    def restart_command(self) -> str:
        """Shell command restarting this app (only this PM2_HOME); run it locally or over ssh."""
        return f"PM2_HOME={shlex.quote(str(self.pm2_home))} pm2 restart {shlex.quote(self.name)}"

    @property
    def restart_until_listening_command(self) -> str:
        """:attr:`restart_command`, returning once the app listens again (within 15 s; exit 1 if it does not), as
        a restart that waits for its process to come up would: for a bot whose FakeClock makes its own recovery
        wait take no real time."""
        return f"{self.restart_command} && node -e {shlex.quote(_WAIT_LISTENING)} {self.port}"

    def pm2(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``pm2 ARGS`` against this app's PM2_HOME (checked)."""
        proc = subprocess.run(
            [_require("pm2"), *args],
            env={**os.environ, "PM2_HOME": str(self.pm2_home)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise Pm2Error(f"pm2 {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc

    def info(self) -> dict[str, Any]:
        """This app's entry from ``pm2 jlist``."""
        out = self.pm2("jlist").stdout
        # pm2 may print warnings before the JSON document; it is the last line.
        apps: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])
        for app in apps:
            if app.get("name") == self.name:
                return app
        raise Pm2Error(f"{self.name} not in pm2 jlist: {out}")

    def status(self) -> str:
        return str(self.info()["pm2_env"]["status"])

    def pid(self) -> int:
        """Current pid of the app process; raises Pm2Error unless pm2 says it is online."""
        app = self.info()
        if app["pm2_env"]["status"] != "online" or not app.get("pid"):
            raise Pm2Error(f"{self.name} is {app['pm2_env']['status']} (pid {app.get('pid')})")
        return int(app["pid"])

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as resp:
                return bool(resp.status == 200 and json.load(resp) == {"status": "ok"})
        except (OSError, ValueError):
            return False

    def wait_healthy(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() >= deadline:
                raise Pm2Error(f"{self.health_url} not healthy after {timeout}s\n{self.logs()}")
            time.sleep(0.05)

    def wait_restarted(self, old_pid: int, timeout: float = 15) -> int:
        """Wait until the app is online with a pid != old_pid and /health answers; returns the new pid."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Pm2Error):
                pid = self.pid()
                if pid != old_pid and self.healthy():
                    return pid
            if time.monotonic() >= deadline:
                raise Pm2Error(f"{self.name} did not restart (old pid {old_pid}) in {timeout}s\n{self.logs()}")
            time.sleep(0.1)

    def logs(self) -> str:
        parts = []
        for path in [*sorted((self.pm2_home / "logs").glob("*.log")), self.pm2_home / "pm2.log"]:
            if path.exists():
                parts.append(f"--- {path}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)

    def kill(self) -> None:
        """``pm2 kill`` for this PM2_HOME (stops daemon and app) and remove the dir. Idempotent."""
        if self.pm2_home.exists():
            with contextlib.suppress(Pm2Error, subprocess.TimeoutExpired):
                self.pm2("kill", timeout=30)
            shutil.rmtree(self.pm2_home, ignore_errors=True)


def start_pm2_app(name: str | None = None) -> Pm2App:
    """Start the test app under a fresh PM2_HOME and wait until /health answers."""
    _require("node")
    home = Path(tempfile.mkdtemp(prefix="pm2-"))
    app = Pm2App(
        pm2_home=home,
        name=name or f"poracle-test-{uuid.uuid4().hex[:8]}",
        port=free_port(),
        script=home / "app.js",
    )
    app.script.write_text(APP_JS)
    try:
        app.pm2("start", str(app.script), "--name", app.name, "--", str(app.port))
        app.wait_healthy()
    except BaseException:
        app.kill()
        raise
    return app


@pytest.fixture
def pm2_app() -> Iterator[Pm2App]:
    app = start_pm2_app()
    yield app
    app.kill()


__all__ = ["APP_JS", "Pm2App", "Pm2Error", "start_pm2_app"]
