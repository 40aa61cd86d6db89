"""The open-files limit at community-host scale: every server is checked at once, each check a socket. Under a
limit too low for that the CLI raises it up to the hard limit, or says so once and checks a few at a time, never
failing checks with "Too many open files"."""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path

from aiohttp import web

from bot.core import open_files
from tests.support.cli import Run, cli, write_env
from tests.support.local_http import HttpServer, http_server, refused_port

SERVERS = 200  # need: 200 x 3 + 64 = 664 descriptors
LOW = 128  # well below, yet enough for Python, the event loop and a few dozen sockets


def servers_env(http: HttpServer, count: int) -> dict[str, str]:
    env = {"PORACLE_HEALTH_TIMEOUT": "10"}
    for number in range(1, count + 1):
        env |= {f"PORACLE_SERVER_{number}_HOST": "127.0.0.1", f"PORACLE_SERVER_{number}_API": f"{http.url}/s{number}"}
    return env


async def check(tmp_path: Path, limit: tuple[int, int], *options: str) -> tuple[Run, HttpServer, int]:
    """`check` of SERVERS servers whose answers take a while, so that all of them are in flight at once."""
    in_flight = most = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.1)
        in_flight -= 1
        return web.Response(text="ok")

    async with http_server({f"/s{n}/health": slow for n in range(1, SERVERS + 1)}) as http:
        write_env(tmp_path, **servers_env(http, SERVERS))
        run = await cli(tmp_path, *options, "check", open_files=limit)
    return run, http, most


async def test_a_limit_that_cannot_be_raised_is_said_once_and_every_check_still_answers(tmp_path: Path) -> None:
    run, http, most = await check(tmp_path, (LOW, LOW))
    assert "Too many open files" not in run.out + run.err, run
    assert run.code == 0, run
    assert run.out.count(" online ") == SERVERS
    assert len(http.requests) == SERVERS  # each server checked once: none skipped, none retried
    assert most <= open_files.check_slots(LOW)  # a few at a time, within the limit
    warnings = [line for line in run.err.splitlines() if "RLIMIT_NOFILE" in line]
    assert len(warnings) == 1, run.err
    assert (
        f"the open-files limit (RLIMIT_NOFILE) is {LOW}, and its hard limit {LOW} cannot be raised by the bot: "
        f"{SERVERS} server(s) need about {open_files.needed(SERVERS)}, so health checks run "
        f"{open_files.check_slots(LOW)} at a time"
    ) in warnings[0]
    assert "ulimits: nofile: {soft: 65536, hard: 65536}` in docker-compose.yml" in warnings[0]
    assert "`ulimit -n 65536`" in warnings[0]


async def test_a_low_soft_limit_is_raised_to_the_hard_one_and_all_are_checked_at_once(tmp_path: Path) -> None:
    hard = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096)
    assert hard >= open_files.needed(SERVERS), "the test process's own hard limit is too low for this test"
    run, http, most = await check(tmp_path, (LOW, hard), "--verbose")
    assert "Too many open files" not in run.out + run.err, run
    assert run.code == 0, run
    assert run.out.count(" online ") == SERVERS
    assert len(http.requests) == SERVERS
    assert most == SERVERS  # nothing waited for a socket
    assert f"Open files: open-files limit {hard} (raised from {LOW} to the hard limit); {SERVERS} server(s)" in run.err
    assert "RLIMIT_NOFILE" not in run.err


async def test_doctor_fails_a_limit_too_low_for_the_servers(tmp_path: Path) -> None:
    count = 30  # need 154
    ssh_port = str(refused_port())
    env = {}
    for number in range(1, count + 1):
        fields = {"HOST": "127.0.0.1", "API": f"http://127.0.0.1:{refused_port()}", "SSH_PORT": ssh_port}
        env |= {f"PORACLE_SERVER_{number}_{field}": value for field, value in fields.items()}
    write_env(tmp_path, PORACLE_DATA_DIR=str(tmp_path / "data"), **env)
    run = await cli(tmp_path, "doctor", open_files=(LOW, LOW))
    assert run.code == 1, run
    lines = [line for line in run.out.splitlines() if line.startswith("[FAIL] Open files: ")]
    assert len(lines) == 1, run.out
    need = f"{count} server(s) need about {open_files.needed(count)}"
    assert f"is {LOW}, and its hard limit {LOW} cannot be raised by the bot: {need}" in lines[0]
    assert "— raise it: `ulimits: nofile:" in lines[0]
    assert "Too many open files" not in run.out + run.err
