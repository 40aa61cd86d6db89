"""The real thing end to end: a pm2-managed node app restarted over a real sshd, then answering again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.config import load_settings
from bot.core.service import Requester
from bot.core.store import Origin
from tests.support.fixtures import open_service
from tests.support.pm2 import Pm2App
from tests.support.sshd import SshServer


async def test_restart_a_pm2_app_over_ssh(sshd: SshServer, pm2_app: Pm2App, tmp_path: Path) -> None:
    settings = load_settings(
        {
            "PORACLE_SSH_KEY_PATH": str(sshd.client_key),
            "PORACLE_SSH_KNOWN_HOSTS": str(tmp_path / "known_hosts"),  # pinned on first contact
            "PORACLE_SSH_TIMEOUT": "30",
            "PORACLE_HEALTH_TIMEOUT": "1",
            "PORACLE_DATA_DIR": str(tmp_path / "data"),
            "PORACLE_SERVER_1_NAME": "Poracle",
            "PORACLE_SERVER_1_HOST": "127.0.0.1",
            "PORACLE_SERVER_1_SSH_PORT": str(sshd.port),
            "PORACLE_SERVER_1_SSH_USER": sshd.user,
            "PORACLE_SERVER_1_API": f"http://127.0.0.1:{pm2_app.port}",
            "PORACLE_SERVER_1_RESTART_CMD": pm2_app.restart_command,
        }
    )
    old_pid = await asyncio.to_thread(pm2_app.pid)
    async with open_service(settings, recovery_wait=15, recovery_poll=0.2) as service:
        (server,) = settings.select("poracle")
        result = await service.restart(server, Requester(Origin.DISCORD, "pm2 test"))
    assert result.succeeded, result
    assert result.command is not None
    assert pm2_app.name in result.command.output  # pm2's own report of what it restarted
    assert "\x1b" not in result.command.output
    new_pid = await asyncio.to_thread(pm2_app.pid)
    assert new_pid != old_pid
    assert result.health is not None
    assert result.health.online and result.health.status == 200
    # pm2 killed the old process before the command returned, so this answer is the new process's.
    assert await asyncio.to_thread(pm2_app.healthy)
