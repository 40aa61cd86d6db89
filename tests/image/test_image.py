"""The image, built from the Dockerfile and run as README.md says, restarts a real pm2 over real SSH.

A real Docker daemon builds the image from the Dockerfile as it is (classic builder, host network) and runs
it through its entrypoint as its own user, uid 1000, with the SSH keys mounted owned by root, mode 0600,
read-only, as docker-compose.override.example.yml mounts them, and the configuration in an env file, as
compose's `env_file` passes it. Containers use the host's network, so the bot reaches a real OpenSSH sshd
and a real pm2 app on 127.0.0.1 (tests/support/sshd.py, tests/support/pm2.py).

The base image is a stand-in. The registry serving python:3.12.x-slim-bookworm cannot be reached from this
project's CI, so tests/image/standin-base.sh makes one from Debian bookworm's packages, tagged as the
Dockerfile's FROM. It differs in its Python: Debian's 3.11 in /usr/bin (so the venv holds lib/python3.11),
where the real base has 3.12 in /usr/local; and it trusts this machine's CA certificates. Everything above
the base (the Dockerfile, requirements.lock, the entrypoint) is the production one.

No Docker is a failure, not a skip: .ci/docker-up installs and starts it, and builds the stand-in base.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from bot.gate import program_text
from tests.support.discord_double import DiscordDouble
from tests.support.fixtures import audit, lines
from tests.support.local_http import http_server
from tests.support.pm2 import Pm2App
from tests.support.scrape import samples
from tests.support.sshd import SshdFactory, SshServer, free_port
from tests.support.waiting import eventually
from tests.support.world import confirmed_restart_elsewhere

ROOT = Path(__file__).resolve().parents[2]
TAG = "poracle-bot:test"
BOT_UID = 1000
# Where the README mounts the keys: the main one, and a second server's own.
MAIN_KEY, OTHER_KEY = "/app/ssh_key", "/keys/secondary"
T = TypeVar("T")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    # The classic builder, which needs only the daemon: BuildKit needs the buildx plugin, not in Debian's docker.io.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    done = subprocess.run(
        ["docker", *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def index_url() -> str | None:
    """This machine's own package index when it is not PyPI, for the build to use the same one. A file://
    index does not exist inside the build, so only a URL the build can reach counts."""
    url = (
        os.environ.get("PIP_INDEX_URL")
        or subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"], capture_output=True, text=True
        ).stdout.strip()
    )
    return url if url.startswith(("http://", "https://")) else None


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("docker") is None or docker("info", check=False).returncode != 0:
        pytest.fail("no Docker daemon answers: run .ci/docker-up (installs docker.io, starts dockerd)")
    subprocess.run([str(ROOT / "tests" / "image" / "standin-base.sh")], check=True, timeout=900)
    url = index_url()
    build_args = [f"--build-arg=PIP_INDEX_URL={url}"] if url else []
    docker("build", "--network=host", f"--tag={TAG}", *build_args, str(ROOT), timeout=900)
    return TAG


@dataclass
class Deployment:
    """One installation as the README describes it: .env, the key mounts, and the data directory."""

    env_file: Path
    data: Path
    keys: dict[str, Path]  # where in the container -> the host's file

    def run_argv(self, *command: str, options: tuple[str, ...] = ()) -> list[str]:
        mounts = [f"--volume={host}:{inside}:ro" for inside, host in self.keys.items()]
        return [
            "run", "--rm", "--network=host", f"--env-file={self.env_file}",
            *mounts, f"--volume={self.data}:/app/data", *options, TAG, *command,
        ]  # fmt: skip

    def run(self, *command: str) -> tuple[int, str]:
        done = docker(*self.run_argv(*command), check=False)
        return done.returncode, done.stdout + done.stderr


def root_only(path: Path) -> Path:
    """The key as a host usually has it, and as the user who found the bug mounted it."""
    info = path.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (0, 0o600), f"{path}: not the root-only key this test is about"
    return path


@pytest.fixture
def deployment(image: str, sshd: SshServer, sshd_factory: SshdFactory, pm2_app: Pm2App, tmp_path: Path) -> Deployment:
    """Main: pm2_app behind the shared sshd, main key. Secondary: its own sshd that accepts only its own key."""
    secondary = sshd_factory()
    env_file = tmp_path / ".env"
    api = f"http://127.0.0.1:{pm2_app.port}"  # both servers' health checks ask the one app
    env_file.write_text(
        # The host keys are unknown at first: the default policy pins them on the first restart.
        "PORACLE_SSH_HOST_KEY_POLICY=accept-new\n"
        "PORACLE_SSH_KNOWN_HOSTS=/app/data/known_hosts\n"
        "PORACLE_DATA_DIR=/app/data\n"
        "PORACLE_HEALTH_TIMEOUT=2\n"
        "PORACLE_SERVER_1_NAME=Main\n"
        f"PORACLE_SERVER_1_HOST={sshd.host}\n"
        f"PORACLE_SERVER_1_SSH_PORT={sshd.port}\n"
        f"PORACLE_SERVER_1_SSH_USER={sshd.user}\n"
        f"PORACLE_SERVER_1_API={api}\n"
        f"PORACLE_SERVER_1_RESTART_CMD={pm2_app.restart_command}\n"
        "PORACLE_SERVER_2_NAME=Secondary\n"
        f"PORACLE_SERVER_2_HOST={secondary.host}\n"
        f"PORACLE_SERVER_2_SSH_PORT={secondary.port}\n"
        f"PORACLE_SERVER_2_SSH_USER={secondary.user}\n"
        f"PORACLE_SERVER_2_SSH_KEY_PATH={OTHER_KEY}\n"
        f"PORACLE_SERVER_2_API={api}\n"
    )
    keys = {MAIN_KEY: root_only(sshd.client_key), OTHER_KEY: root_only(secondary.client_key)}
    data = tmp_path / "data"  # a bind mount, as `./data:/app/data` would be: it starts out owned by root
    data.mkdir()
    return Deployment(env_file, data, keys)


def test_doctor_check_and_restart_work_as_the_images_user(
    deployment: Deployment, sshd: SshServer, pm2_app: Pm2App
) -> None:
    code, out = deployment.run("doctor")
    assert code == 0, out
    assert "[ OK ] Main: SSH login as root@127.0.0.1 works" in out, out
    assert "[ OK ] Secondary: SSH login as root@127.0.0.1 works" in out, out  # its own key, copied too

    code, out = deployment.run("check")
    assert code == 0, out
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [["Main", "online"], ["Secondary", "online"]]

    old_pid = pm2_app.pid()
    code, out = deployment.run("restart", "Main", "--yes")
    assert code == 0, out
    assert "Main: restarted" in out and pm2_app.name in out, out
    assert pm2_app.wait_restarted(old_pid) != old_pid

    # Main's host key, pinned by the restart after the entrypoint had dropped to the bot's user: owned by it.
    known_hosts = deployment.data / "known_hosts"
    assert known_hosts.stat().st_uid == BOT_UID
    assert known_hosts.read_text().startswith(sshd.known_hosts_line())


def test_the_images_own_time_zone_database_serves_maintenance_windows(deployment: Deployment) -> None:
    """PORACLE_TIMEZONE needs the IANA database: the base image's (Debian's tzdata, Priority: required, so in
    bookworm-slim and in the stand-in alike), not a tzdata package of the bot's own."""
    with deployment.env_file.open("a") as env:
        env.write("PORACLE_TIMEZONE=Europe/Berlin\nPORACLE_MAINTENANCE=sun 02:00-03:00\n")
    code, out = deployment.run("config")
    assert code == 0, out
    assert "Europe/Berlin" in out and "sun 02:00-03:00" in out, out


def test_the_bot_in_the_image_raises_a_low_soft_open_files_limit_to_the_hard_one(deployment: Deployment) -> None:
    """The Dockerfile cannot set ulimits: whatever Docker gives, the bot raises its soft limit itself."""
    done = docker(*deployment.run_argv("doctor", options=("--ulimit=nofile=64:4096",)), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    line = "[ OK ] Open files: open-files limit 4096 (raised from 64 to the hard limit); 2 server(s) need about 70"
    assert line in done.stdout.splitlines(), done.stdout


def test_gate_prints_the_program_and_the_key_lines_from_the_image(deployment: Deployment) -> None:
    """`docker compose run --rm -T poracle-bot gate --program`: the gate is in the image, byte for byte; the key
    lines come from the mounted root-only keys, as the entrypoint copies them for the bot's user."""
    done = docker(*deployment.run_argv("gate", "--program"))
    assert done.stdout == program_text() and done.stderr == ""
    code, out = deployment.run("gate")
    assert code == 0, out
    for key in deployment.keys.values():
        public = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        assert f'     restrict,pty,command="~/bin/poracle-gate" {public} ' in out, out


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30) -> T:
    """Poll probe() until it returns something; fail naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.2)
    return found


@dataclass
class WaitingBot:
    container: str
    pid: int  # on this machine


@pytest.fixture
def waiting_bot(deployment: Deployment) -> Iterator[WaitingBot]:
    """A container whose bot waits as long as the test needs: `restart Main` asking for its confirmation on
    an open stdin that never answers. Docker runs the image's own healthcheck every second."""
    # The heartbeat the running bot writes after each monitor round (the bot's heartbeat module): fresh.
    beat = {"round_completed_at": datetime.now(UTC).isoformat(), "connected": True}
    (deployment.data / "heartbeat.json").write_text(json.dumps(beat))
    name = f"poracle-bot-test-{uuid.uuid4().hex[:8]}"
    options = ("--detach", "--interactive", f"--name={name}", "--health-interval=1s")
    docker(*deployment.run_argv("restart", "Main", options=options))
    try:
        # The line before the prompt: Docker's log holds back the prompt itself, a line without its newline.
        wait_for("the restart's announcement", lambda: "Main: ssh " in docker("logs", name).stdout or None)
        yield WaitingBot(name, int(docker("inspect", "--format={{.State.Pid}}", name).stdout))
    finally:
        docker("rm", "--force", name, check=False)


def proc_status(pid: int) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())


def proc_environ(pid: int) -> dict[str, str]:
    items = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(item.split("=", 1) for item in items if "=" in item)


def test_the_bot_runs_as_uid_1000_with_its_own_home_and_the_healthcheck_passes(waiting_bot: WaitingBot) -> None:
    pid = waiting_bot.pid
    assert "poracle-bot" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(), "not the bot's process"
    status, environ = proc_status(pid), proc_environ(pid)
    assert status["Uid"].split() == status["Gid"].split() == [str(BOT_UID)] * 4, status
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0, status
    assert environ["HOME"] == "/app", environ
    # The keys it uses are its private copies, readable by it alone, not the root-only mounts.
    for variable in ("PORACLE_SSH_KEY_PATH", "PORACLE_SERVER_2_SSH_KEY_PATH"):
        assert environ[variable].startswith("/dev/shm/poracle-bot."), environ
        copy = Path(f"/proc/{pid}/root{environ[variable]}").stat()
        assert (copy.st_uid, copy.st_mode & 0o777) == (BOT_UID, 0o600), variable

    def healthy() -> dict[str, Any] | None:
        health: dict[str, Any] = json.loads(
            docker("inspect", "--format={{json .State.Health}}", waiting_bot.container).stdout
        )
        return health if health["Status"] == "healthy" else None

    health = wait_for("the image's healthcheck passing", healthy)
    assert health["Log"][-1]["Output"].startswith("healthy"), health


async def started_bot(deployment: Deployment, d: DiscordDouble, **config: str) -> str:
    """`docker compose up -d` (the image's CMD: run, tini as PID 1) with `config` overriding the deployment's
    .env, discord.py in the container talking to the Discord double: tests/support/discord_site, mounted,
    points it there at start-up. The container's name; the caller removes it."""
    kept = [line for line in deployment.env_file.read_text().splitlines() if line.split("=", 1)[0] not in config]
    discord = {
        "DISCORD_TOKEN": d.token,
        "DISCORD_GUILD_ID": str(d.guild_id),
        "DISCORD_ADMIN_ROLE_IDS": str(d.admin_role_id),
        "DISCORD_ALERT_CHANNEL_ID": str(d.channel_id),
    }
    deployment.env_file.write_text("\n".join([*kept, *(f"{k}={v}" for k, v in (discord | config).items()), ""]))
    name = f"poracle-bot-test-{uuid.uuid4().hex[:8]}"
    site = ROOT / "tests" / "support" / "discord_site"
    options = ("--detach", "--init", f"--name={name}", f"--volume={site}:/discord_site:ro")
    options += ("--env=PYTHONPATH=/discord_site", f"--env=DISCORD_DOUBLE_PORT={d.port}")
    await asyncio.to_thread(docker, *deployment.run_argv(options=options))
    return name


async def test_docker_stop_during_a_restart_lets_it_finish_and_the_admins_message_says_how_it_went(
    deployment: Deployment, discord_double: DiscordDouble, pm2_app: Pm2App, marker: Path
) -> None:
    """`docker compose stop` (compose's `init: true` is `--init`: tini as PID 1) in the middle of a restart
    asked for in Discord: tini's SIGTERM reaches the bot through the entrypoint's exec chain, the restart
    (pm2's, for real) ends and the message says so, and the bot exits 0."""
    d = discord_double
    command = f"echo started >> {marker}; sleep 3; {pm2_app.restart_command} && echo done >> {marker}"
    name = await started_bot(deployment, d, PORACLE_SERVER_1_RESTART_CMD=command)
    try:
        logs = await asyncio.create_subprocess_exec(
            "docker", "logs", "--follow", name, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        exited = asyncio.create_task(asyncio.to_thread(docker, "wait", name))
        await d.wait_until_ready(60)
        record = await confirmed_restart_elsewhere(d, "Main")
        await eventually(lambda: lines(marker) == ["started"], "the restart command running", timeout=30)
        old_pid = pm2_app.pid()
        await asyncio.to_thread(docker, "stop", "--time=90", name)  # compose's stop_grace_period
        code = int((await exited).stdout)
        output = (await logs.communicate())[0].decode()
    finally:
        await asyncio.to_thread(docker, "rm", "--force", name, check=False)
    assert code == 0, output
    assert "SIGTERM received: stopping" in output and "Traceback" not in output, output
    assert lines(marker) == ["started", "done"]
    assert pm2_app.wait_restarted(old_pid) != old_pid
    assert record.original_message_id is not None
    assert d.message(record.original_message_id).embeds[0]["title"] == "Main: restarted"
    (row,) = audit(deployment.data)
    assert (row.outcome, row.healthy_after) == ("restarted", True)


def listening_uid(port: int) -> int | None:
    """The owner of the socket listening on 127.0.0.1:port (the containers share this machine's network)."""
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # 0A: LISTEN
            return int(fields[7])
    return None


async def test_the_bot_in_the_image_serves_its_metrics_as_uid_1000_and_pushes_its_heartbeat(
    deployment: Deployment, discord_double: DiscordDouble
) -> None:
    """PORACLE_METRICS_LISTEN and PORACLE_HEARTBEAT_URL as README's Docker section sets them (here on the
    loopback, the container sharing this machine's network): the bot's user takes the port and serves
    /metrics, and each round's heartbeat reaches a push receiver outside the container."""
    port = free_port()
    async with http_server() as receiver:
        name = await started_bot(
            deployment,
            discord_double,
            PORACLE_HEALTH_INTERVAL="1",
            PORACLE_METRICS_LISTEN=f"127.0.0.1:{port}",
            PORACLE_HEARTBEAT_URL=f"{receiver.url}/ping/{uuid.uuid4()}",
        )
        try:
            await discord_double.wait_until_ready(60)
            await eventually(lambda: len(receiver.requests) >= 2, "two heartbeat pushes", timeout=30)
            owner = listening_uid(port)
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
        finally:
            logs = await asyncio.to_thread(docker, "logs", name)
            output = logs.stdout + logs.stderr
            await asyncio.to_thread(docker, "rm", "--force", name, check=False)
    assert owner == BOT_UID, output
    found = samples(text)
    for server in ("Main", "Secondary"):
        assert found[("poracle_bot_server_status", (("server", server), ("status", "online")))] == 1, text
    assert found[("poracle_bot_discord_connected", ())] == 1, text
    assert "Traceback" not in output, output
