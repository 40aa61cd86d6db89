"""`poracle-bot doctor` run in-process on a test's settings: the environment for one server, Main, its
checklist as lines, the one line that says something, and Main's host key pinned beforehand."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli.doctor import run_doctor
from tests.support.sshd import SshServer


def doctor_env(sshd: SshServer, api: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": "test-token",
        "DISCORD_ADMIN_ROLE_IDS": "123",
        "DISCORD_ALERT_CHANNEL_ID": "456",
        "PORACLE_SSH_KEY_PATH": str(sshd.client_key),
        "PORACLE_SSH_KNOWN_HOSTS": str(tmp_path / "data" / "known_hosts"),
        "PORACLE_DATA_DIR": str(tmp_path / "data"),
        "PORACLE_SSH_CONNECT_TIMEOUT": "5",
        "PORACLE_HEALTH_TIMEOUT": "2",
        "PORACLE_SERVER_1_NAME": "Main",
        "PORACLE_SERVER_1_HOST": sshd.host,
        "PORACLE_SERVER_1_SSH_PORT": str(sshd.port),
        "PORACLE_SERVER_1_SSH_USER": sshd.user,
        "PORACLE_SERVER_1_API": api,
    } | extra


async def doctor(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = await run_doctor(env)
    return code, capsys.readouterr().out.splitlines()


def only(lines: list[str], *words: str) -> str:
    """The one line that contains every word."""
    found = [line for line in lines if all(word in line for word in words)]
    assert len(found) == 1, (words, lines)
    return found[0]


def pin(sshd: SshServer, tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    return sshd.write_known_hosts(tmp_path / "data" / "known_hosts")
