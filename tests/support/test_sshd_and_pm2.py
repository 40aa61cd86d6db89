"""Tests of the real-infrastructure fixtures (tests/sshd.py, tests/pm2.py) with the plain OpenSSH client."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.pm2 import Pm2App
from tests.support.sshd import (
    HOST,
    SshdFactory,
    SshServer,
    free_port,
    remote_processes,
    wait_remote_processes_gone,
)


def test_login_runs_command(sshd: SshServer) -> None:
    result = sshd.run("echo ok")
    assert result.returncode == 0, result.stderr + sshd.log()
    assert result.stdout == "ok\n"


def test_session_environment(sshd: SshServer) -> None:
    marker_file = sshd.workdir / f"marker-{uuid.uuid4().hex}"
    result = sshd.run(f"id -un; command -v node; command -v pm2; touch {marker_file}")
    assert result.returncode == 0, result.stderr
    user, node, pm2 = result.stdout.split()
    assert user == sshd.user
    assert node.endswith("/node") and pm2.endswith("/pm2")
    assert marker_file.exists()
    assert sshd.known_hosts_line().startswith(f"[{HOST}]:{sshd.port} ssh-ed25519 AAAA")


def test_wrong_key_is_rejected(sshd: SshServer, wrong_client_key: Path) -> None:
    result = sshd.run("echo ok", key=wrong_client_key)
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr
    assert result.stdout == ""


def test_free_port_refuses_connections() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, free_port()), timeout=2).close()


def test_changed_host_key_on_same_port_is_detected(sshd_factory: SshdFactory, tmp_path: Path) -> None:
    first = sshd_factory()
    known_hosts = first.write_known_hosts(tmp_path / "known_hosts")
    assert first.run("true", known_hosts=known_hosts).returncode == 0

    first.stop()
    impostor = sshd_factory(port=first.port, client_key=first.client_key)
    assert impostor.port == first.port
    assert impostor.host_public_key != first.host_public_key
    result = impostor.run("echo should-not-run", known_hosts=known_hosts)
    assert result.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
    assert "should-not-run" not in result.stdout

    # Reusing the original host key on the same port is accepted again.
    impostor.stop()
    back = sshd_factory(port=first.port, host_key=first.host_key, client_key=first.client_key)
    assert back.host_public_key == first.host_public_key
    assert back.run("echo ok", known_hosts=known_hosts).stdout == "ok\n"


def _sleeps(pids: list[int]) -> list[int]:
    def cmdline(pid: int) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""

    return [pid for pid in pids if cmdline(pid) == b"sleep\x00300\x00"]


def test_remote_processes_tracks_a_remote_sleep(sshd: SshServer) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    client = subprocess.Popen(
        sshd.ssh_argv(f"sleep 300 # {marker}"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # While the session starts, its shells (and whatever ~/.bashrc runs) match too; wait until only
        # the sleep is left. It is found although bash exec'd `sleep 300` (the comment is not in its
        # cmdline), and the local client, whose cmdline does contain the marker, is not counted.
        deadline = time.monotonic() + 10
        while (pids := remote_processes(marker)) != _sleeps(pids) or not pids:
            assert time.monotonic() < deadline, (pids, sshd.log())
            time.sleep(0.05)
        assert len(pids) == 1
        assert client.pid not in pids

        # Dropping the ssh connection does NOT kill the remote command (no pty, no SIGHUP).
        client.kill()
        client.wait(timeout=5)
        time.sleep(0.3)
        assert remote_processes(marker) == pids

        for pid in pids:
            subprocess.run(["kill", "-KILL", str(pid)], check=True)
        assert wait_remote_processes_gone(marker) == []
    finally:
        client.kill()
        client.wait(timeout=5)


def test_pm2_app_health_and_restart_over_ssh(pm2_app: Pm2App, sshd: SshServer) -> None:
    with urllib.request.urlopen(pm2_app.health_url, timeout=5) as resp:
        assert resp.status == 200
        assert json.load(resp) == {"status": "ok"}

    old_pid = pm2_app.pid()
    result = sshd.run(pm2_app.restart_command)
    assert result.returncode == 0, result.stdout + result.stderr
    new_pid = pm2_app.wait_restarted(old_pid)
    assert new_pid != old_pid
