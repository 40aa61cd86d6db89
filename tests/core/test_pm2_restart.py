"""The real thing end to end: a pm2-managed node app restarted over a real sshd, then answering again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.config import load_settings
from bot.core.service import Requester
from bot.core.store import Origin
from tests.support.fixtures import open_service
from tests.support.local_http import HttpServer
from tests.support.pm2 import Pm2App
from tests.support.sshd import SshServer


def pm2_env(sshd: SshServer, pm2_app: Pm2App, tmp_path: Path, name: str) -> dict[str, str]:
    """One server, `name`, that is the pm2 app, restarted over the test sshd."""
    return {
        "PORACLE_SSH_KEY_PATH": str(sshd.client_key),
        "PORACLE_SSH_KNOWN_HOSTS": str(tmp_path / "known_hosts"),  # pinned on first contact
        "PORACLE_SSH_TIMEOUT": "30",
        "PORACLE_HEALTH_TIMEOUT": "1",
        "PORACLE_DATA_DIR": str(tmp_path / "data"),
        "PORACLE_SERVER_1_NAME": name,
        "PORACLE_SERVER_1_HOST": "127.0.0.1",
        "PORACLE_SERVER_1_SSH_PORT": str(sshd.port),
        "PORACLE_SERVER_1_SSH_USER": sshd.user,
        "PORACLE_SERVER_1_API": f"http://127.0.0.1:{pm2_app.port}",
        "PORACLE_SERVER_1_RESTART_CMD": pm2_app.restart_command,
    }


async def test_restart_a_pm2_app_over_ssh(sshd: SshServer, pm2_app: Pm2App, tmp_path: Path) -> None:
    settings = load_settings(pm2_env(sshd, pm2_app, tmp_path, "Poracle"))
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


async def test_all_restarts_a_pm2_shared_by_two_entries_once_and_reports_it_for_both(
    sshd: SshServer, pm2_app: Pm2App, tmp_path: Path, api: HttpServer
) -> None:
    # Two entries on one SSH target restarting the same pm2 app (one PoracleJS, two names for it): run
    # twice at once, pm2 restarted the app twice and the second said "process already online".
    env = pm2_env(sshd, pm2_app, tmp_path, "Poracle") | {
        "PORACLE_SERVER_2_NAME": "Poracle (backup entry)",
        "PORACLE_SERVER_2_HOST": "127.0.0.1",
        "PORACLE_SERVER_2_SSH_PORT": str(sshd.port),
        "PORACLE_SERVER_2_SSH_USER": sshd.user,
        "PORACLE_SERVER_2_API": api.url,  # its own API, checked for it
        "PORACLE_SERVER_2_RESTART_CMD": pm2_app.restart_command,
    }
    sshd.write_known_hosts(tmp_path / "known_hosts")  # pinned already: only pm2 can collide here
    settings = load_settings(env)
    before = await asyncio.to_thread(pm2_app.info)
    async with open_service(settings, recovery_wait=15, recovery_poll=0.2) as service:
        results = await service.restart_many(settings.select("all"), Requester(Origin.CLI, "pm2 test"))
        audited = sorted(row.server for row in service.store.history())
    after = await asyncio.to_thread(pm2_app.info)
    assert after["pm2_env"]["restart_time"] == before["pm2_env"]["restart_time"] + 1
    assert after["pid"] != before["pid"]
    assert [(r.server, r.word) for r in results] == [("Poracle", "restarted"), ("Poracle (backup entry)", "restarted")]
    first, second = results
    assert first.command is second.command and first.command is not None
    assert pm2_app.name in first.command.output and "already" not in first.command.output
    assert first.health is not None and first.health.online  # the pm2 app's own API, answering again
    assert second.health is not None and second.health.online and api.requests == ["/health"]
    assert audited == ["Poracle", "Poracle (backup entry)"]
