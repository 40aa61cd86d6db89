"""PORACLE_HEARTBEAT_URL on the command line: `doctor` requests it once and shows it masked, `config` shows it
masked; its secret appears in no output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import cli, write_env
from tests.support.doctor import doctor, doctor_env, only, pin
from tests.support.local_http import HttpServer, http_server, refused_port
from tests.support.sshd import SshServer

SECRET = "a1b2c3d4-0000-4e5f-8a9b-c0d1e2f3a4b5"
PATH = f"/{SECRET}"


async def test_doctor_requests_the_heartbeat_url_once_and_shows_it_masked(
    sshd: SshServer, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin(sshd, tmp_path)
    async with http_server() as receiver:
        env = doctor_env(sshd, api.url, tmp_path, PORACLE_HEARTBEAT_URL=f"{receiver.url}{PATH}")
        code, lines = await doctor(env, capsys)
    assert code == 0, lines
    line = only(lines, "Heartbeat:")
    assert line.startswith(f"[ OK ] Heartbeat: http://127.0.0.1:{receiver.port}/******** answers (")
    assert line.endswith(" ms); the bot requests it after every round")
    assert receiver.requests == [PATH]
    assert SECRET not in "\n".join(lines)


async def test_doctor_fails_a_heartbeat_url_nobody_answers_and_names_the_variable(
    sshd: SshServer, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin(sshd, tmp_path)
    port = refused_port()
    env = doctor_env(sshd, api.url, tmp_path, PORACLE_HEARTBEAT_URL=f"http://127.0.0.1:{port}{PATH}")
    code, lines = await doctor(env, capsys)
    assert code == 1, lines
    assert only(lines, "Heartbeat:") == (
        f"[FAIL] Heartbeat: http://127.0.0.1:{port}/******** failed: connection refused — check "
        "PORACLE_HEARTBEAT_URL (the ping URL of a healthchecks.io check, or an Uptime Kuma push monitor's URL) and "
        "that this machine may reach it"
    )
    assert SECRET not in "\n".join(lines)


async def test_config_shows_the_heartbeat_url_masked(tmp_path: Path) -> None:
    write_env(
        tmp_path,
        PORACLE_SERVER_1_HOST="192.0.2.10",
        PORACLE_SERVER_1_API="http://192.0.2.10:3030",
        PORACLE_HEARTBEAT_URL=f"https://hc-ping.com{PATH}",
    )
    run = await cli(tmp_path, "config")
    assert run.code == 0, run
    assert "PORACLE_HEARTBEAT_URL=https://hc-ping.com/******** (set)" in run.out
    assert SECRET not in run.out + run.err
