"""The command line as an operator runs it: `python -m bot ...` in a directory with a `.env`."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import re
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from bot.cli.main import EXIT_BUSY, EXIT_DEGRADED, main
from bot.config import load_settings
from bot.core import heartbeat
from bot.core.service import ABANDONED_REASON, INTERRUPTED, Requester
from bot.core.store import RUNNING, Origin, RestartRecord, Store
from tests.support.cli import cli, running_cli, write_env
from tests.support.fixtures import SlowRestart, open_service
from tests.support.local_http import HttpServer, http_server, refused_port, status
from tests.support.poracle_http import PoracleJsLike, PoracleNgLike, poracle_js, poracle_ng
from tests.support.sshd import SshServer


def server_env(number: int, name: str, api: str, **fields: str) -> dict[str, str]:
    base = {"NAME": name, "HOST": "127.0.0.1", "API": api} | fields
    return {f"PORACLE_SERVER_{number}_{field}": value for field, value in base.items()}


def ssh_env(sshd: SshServer, directory: Path, name: str, api: str, command: str) -> dict[str, str]:
    return {
        "PORACLE_DATA_DIR": str(directory / "data"),
        "PORACLE_SSH_KEY_PATH": str(sshd.client_key),
        "PORACLE_SSH_KNOWN_HOSTS": str(sshd.write_known_hosts(directory / "known_hosts")),
        "PORACLE_SSH_HOST_KEY_POLICY": "strict",
        **server_env(1, name, api, SSH_PORT=str(sshd.port), SSH_USER=sshd.user, RESTART_CMD=command),
    }


def rows(table: str) -> list[list[str]]:
    """The table's cells, split on runs of 2+ spaces."""
    return [re.split(r" {2,}", line.strip()) for line in table.strip().splitlines()]


# ------------------------------------------------------------------------------------------------ check


async def test_check_all_online_exits_0(tmp_path: Path) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response(text="ok")

    async with http_server({"/a/health": slow, "/b/health": status(500)}) as http:
        write_env(tmp_path, **server_env(1, "Alpha", f"{http.url}/a"), **server_env(2, "Beta Server", f"{http.url}/b"))
        run = await cli(tmp_path, "check")
    assert run.code == 0, run
    table = rows(run.out)
    assert table[0] == ["SERVER", "STATUS", "HTTP", "LATENCY", "REASON"]
    assert [row[:3] for row in table[1:]] == [["Alpha", "online", "200"], ["Beta Server", "online", "500"]]
    for row in table[1:]:
        assert row[3].endswith(" ms") and float(row[3].removesuffix(" ms")) >= 0
    assert float(table[1][3].removesuffix(" ms")) >= 50
    assert sorted(http.requests) == ["/a/health", "/b/health"]


async def test_check_with_one_offline_exits_1(tmp_path: Path) -> None:
    async with http_server() as http:
        write_env(
            tmp_path,
            **server_env(1, "Up", http.url),
            **server_env(2, "Down", f"http://127.0.0.1:{refused_port()}"),
        )
        run = await cli(tmp_path, "check")
    assert run.code == 1, run
    table = rows(run.out)
    assert table[1][:3] == ["Up", "online", "200"]
    assert table[2] == ["Down", "offline", "-", "-", "connection refused"]


async def test_check_shows_degraded_servers_and_exits_3_when_no_server_is_offline(tmp_path: Path) -> None:
    refusing, stuck = PoracleJsLike(refusing="ip 127.0.0.1 not in whitelist"), PoracleNgLike(queue=350)
    async with poracle_js(refusing) as js, poracle_ng(stuck) as ng, poracle_ng(PoracleNgLike(queue=2)) as fine:
        servers = server_env(1, "JS", js.url) | server_env(2, "NG", ng.url, METRICS="on")
        write_env(tmp_path, **servers, **server_env(3, "Fine", fine.url, METRICS="on"))
        degraded = await cli(tmp_path, "check")
        write_env(tmp_path, **servers, **server_env(3, "Down", f"http://127.0.0.1:{refused_port()}"))
        down = await cli(tmp_path, "check")
    assert degraded.code == EXIT_DEGRADED == 3, degraded
    table = rows(degraded.out)
    assert [row[:3] + row[4:] for row in table[1:]] == [
        ["JS", "degraded", "200", "refuses the bot: ip 127.0.0.1 not in whitelist"],
        ["NG", "degraded", "200", "delivery queue 350 > 180"],
        ["Fine", "online", "200", "status healthy, version 5.1.0, delivery queue 2, 0 webhooks received"],
    ]
    assert down.code == 1, down  # offline outranks degraded
    assert rows(down.out)[3][:2] == ["Down", "offline"]


@pytest.mark.parametrize("before", [True, False], ids=["before-the-command", "after-the-command"])
async def test_env_file_option(tmp_path: Path, before: bool) -> None:
    elsewhere = tmp_path / "conf"
    elsewhere.mkdir()
    async with http_server() as http:
        write_env(elsewhere, **server_env(1, "FromOption", http.url))
        option = ["--env-file", str(elsewhere / ".env")]
        run = await cli(tmp_path, *([*option, "check"] if before else ["check", *option, "-v"]))
    assert run.code == 0, run
    assert "FromOption" in run.out


@pytest.mark.parametrize("before", [True, False], ids=["before-the-command", "after-the-command"])
@pytest.mark.parametrize("missing", ["no-such.env", "a-directory"])
async def test_an_env_file_that_is_not_there_is_an_error(
    tmp_path: Path, api: HttpServer, before: bool, missing: str
) -> None:
    write_env(tmp_path, **server_env(1, "FromDefault", api.url))  # what would be checked if the option were lost
    (tmp_path / "a-directory").mkdir()
    option = ["--env-file", str(tmp_path / missing)]
    run = await cli(tmp_path, *([*option, "check"] if before else ["check", *option]))
    assert run.code == 2, run
    assert f"--env-file {tmp_path / missing}: " in run.err
    assert run.out == "" and api.requests == []


async def test_an_env_file_that_is_not_utf8_is_an_error_naming_it(tmp_path: Path, api: HttpServer) -> None:
    (tmp_path / ".env").write_bytes(
        f"PORACLE_SERVER_1_HOST=127.0.0.1\nPORACLE_SERVER_1_API={api.url}\n".encode() + b"X=\xff\n"
    )
    run = await cli(tmp_path, "check")
    assert run.code == 2, run
    assert ".env: cannot read this .env file" in run.err
    assert api.requests == []


# Each of these ended in a Python traceback: the value passed validation and broke the command later.
@pytest.mark.parametrize(
    ("command", "variable", "value", "code"),
    [
        ("check", "PORACLE_HEALTH_TIMEOUT", "inf", 2),  # OverflowError in the HTTP client's timeout
        ("check", "PORACLE_SERVER_1_API", "http://a..b:3030", 2),  # UnicodeError encoding the host name
        ("healthcheck", "PORACLE_HEALTH_INTERVAL", "1000000000000000000", 1),  # OverflowError in timedelta
        ("healthcheck", "PORACLE_HEALTH_TIMEOUT", "1e309", 1),
    ],
)
async def test_absurd_values_are_errors_not_tracebacks(
    tmp_path: Path, api: HttpServer, command: str, variable: str, value: str, code: int
) -> None:
    data = tmp_path / "data"
    heartbeat.write(data, heartbeat.Heartbeat(datetime.now(UTC), connected=True))
    env = server_env(1, "Main", api.url) | {"PORACLE_DATA_DIR": str(data), variable: value}
    write_env(tmp_path, **env)
    run = await cli(tmp_path, command)  # cli() fails on any traceback
    assert run.code == code, run
    assert f"{variable}: " in run.err, run
    assert run.out == "" and api.requests == []


async def test_a_misspelt_server_block_is_pointed_out(tmp_path: Path, api: HttpServer) -> None:
    misspelt = {"PORACLE_SEVRER_2_HOST": "127.0.0.1", "PORACLE_SERVER2_API": api.url}
    write_env(tmp_path, **server_env(1, "Main", api.url), **misspelt)
    run = await cli(tmp_path, "check")
    assert run.code == 0, run  # the good server is checked; the others are named, not silently dropped
    assert "PORACLE_SEVRER_2_HOST: not a setting; did you mean PORACLE_SERVER_2_HOST?" in run.err
    assert "PORACLE_SERVER2_API: not a setting; did you mean PORACLE_SERVER_2_API?" in run.err
    assert [row[0] for row in rows(run.out)[1:]] == ["Main"]


async def test_a_config_whose_only_server_block_is_misspelt_fails(tmp_path: Path, api: HttpServer) -> None:
    write_env(tmp_path, PORACLE_SEVRER_1_HOST="127.0.0.1", PORACLE_SEVRER_1_API=api.url, PORACLE_DOWN_AFTER="x")
    run = await cli(tmp_path, "check")
    assert run.code == 2, run
    assert "PORACLE_SEVRER_1_HOST: not a setting; did you mean PORACLE_SERVER_1_HOST?" in run.err
    assert "PORACLE_SERVER_1_HOST: no servers configured" in run.err
    assert "PORACLE_DOWN_AFTER: " in run.err
    assert run.out == "" and api.requests == []


@pytest.mark.parametrize("command", ["check", "doctor"])
async def test_a_command_run_away_from_its_env_says_where_it_looked(tmp_path: Path, command: str) -> None:
    run = await cli(tmp_path, command)
    assert run.code == 2, run
    hint = (
        f"no .env in {tmp_path} and no PORACLE_ or DISCORD_ variable set: run poracle-bot in the directory of "
        "your .env, or pass --env-file PATH"
    )
    assert hint in (run.err if command == "check" else run.out), run
    assert list(tmp_path.iterdir()) == []  # nothing was made


async def test_an_env_without_servers_is_not_taken_for_a_missing_one(tmp_path: Path) -> None:
    write_env(tmp_path, PORACLE_DOWN_AFTER="3")
    run = await cli(tmp_path, "check")
    assert run.code == 2, run
    assert "PORACLE_SERVER_1_HOST: no servers configured" in run.err
    assert "no .env in" not in run.err


# ---------------------------------------------------------------------------------------------- restart


async def test_restart_yes_runs_and_exits_0(sshd: SshServer, tmp_path: Path, api: HttpServer) -> None:
    marker = sshd.workdir / f"cli-{uuid.uuid4().hex}"
    write_env(tmp_path, **ssh_env(sshd, tmp_path, "Main", api.url, f"echo hello from pm2; touch {marker}"))
    run = await cli(tmp_path, "restart", "main", "--yes")
    assert run.code == 0, run
    assert marker.exists()
    lines = run.out.splitlines()
    assert lines[0] == f"Main: ssh {sshd.user}@127.0.0.1:{sshd.port} -- echo hello from pm2; touch {marker}"
    assert lines[1].startswith("Main: restarted (exit code 0) in ")
    assert "  | hello from pm2" in lines
    assert "  answers its health check: yes" in lines


async def test_a_restart_cannot_run_without_its_audit(sshd: SshServer, tmp_path: Path, api: HttpServer) -> None:
    marker = sshd.workdir / f"cli-{uuid.uuid4().hex}"
    (tmp_path / "data").write_text("a file where the data directory should be")
    write_env(tmp_path, **ssh_env(sshd, tmp_path, "Main", api.url, f"touch {marker}"))
    run = await cli(tmp_path, "restart", "Main", "--yes")
    assert run.code == 2, run
    assert "PORACLE_DATA_DIR" in run.err
    assert not marker.exists()


async def test_restart_failure_exits_nonzero(sshd: SshServer, tmp_path: Path, api: HttpServer) -> None:
    write_env(tmp_path, **ssh_env(sshd, tmp_path, "Main", api.url, "echo 'pm2: not found'; exit 127"))
    run = await cli(tmp_path, "restart", "Main", "-y")
    assert run.code != 0, run
    assert "Main: failed (exit code 127)" in run.out
    assert "  | pm2: not found" in run.out


async def test_restart_connection_error_exits_nonzero(sshd: SshServer, tmp_path: Path, api: HttpServer) -> None:
    env = ssh_env(sshd, tmp_path, "Main", api.url, "true") | {"PORACLE_SERVER_1_SSH_PORT": str(refused_port())}
    write_env(tmp_path, **env)
    run = await cli(tmp_path, "restart", "Main", "--yes")
    assert run.code != 0, run
    assert "Main: failed (SSH connection refused" in run.out


@pytest.mark.parametrize("answer", [b"n\n", b"\n", None], ids=["n", "enter", "closed"])
async def test_restart_without_yes_runs_nothing_unless_confirmed(
    sshd: SshServer, tmp_path: Path, api: HttpServer, answer: bytes | None
) -> None:
    marker = sshd.workdir / f"cli-{uuid.uuid4().hex}"
    write_env(tmp_path, **ssh_env(sshd, tmp_path, "Main", api.url, f"touch {marker}"))
    run = await cli(tmp_path, "restart", "Main", stdin=answer)
    assert run.code != 0, run
    assert "[y/N]" in run.out
    assert "Cancelled: nothing was run." in run.out
    assert not marker.exists()


async def test_restart_confirmed_with_y_runs(sshd: SshServer, tmp_path: Path, api: HttpServer) -> None:
    # The other side of the test above: the same prompt answered "y" does run the command.
    marker = sshd.workdir / f"cli-{uuid.uuid4().hex}"
    write_env(tmp_path, **ssh_env(sshd, tmp_path, "Main", api.url, f"touch {marker}"))
    run = await cli(tmp_path, "restart", "Main", stdin=b"y\n")
    assert run.code == 0, run
    assert marker.exists()


async def test_restart_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    write_env(tmp_path, **server_env(1, "Alpha", "http://192.0.2.1"), **server_env(2, "Beta", "http://192.0.2.2"))
    run = await cli(tmp_path, "restart", "nosuch", "--yes")
    assert run.code != 0, run
    assert "nosuch" in run.err
    assert "Alpha" in run.err and "Beta" in run.err and "all" in run.err
    assert run.out == ""


# ----------------------------------------------- one restart per server at a time, across processes


async def test_a_restart_while_the_bot_restarts_that_server_is_refused_at_once_naming_it(
    sshd: SshServer, tmp_path: Path, api: HttpServer, slow_restart: SlowRestart
) -> None:
    env = ssh_env(sshd, tmp_path, "Main", api.url, slow_restart.command)
    write_env(tmp_path, **env)
    settings = load_settings(env)
    async with open_service(settings) as service:  # the bot's service, in this process
        bot = asyncio.create_task(service.restart(settings.servers[0], Requester(Origin.DISCORD, "alice (123)")))
        await slow_restart.started()
        run = await cli(tmp_path, "restart", "Main", "--yes")
        still_running = not bot.done()
        slow_restart.release()
        restarted = await bot
        audited = [(row.requested_by, row.outcome) for row in service.store.history()]
    assert run.code == EXIT_BUSY, run
    assert still_running, "the command line waited for the bot's restart"
    (refusal,) = [line for line in run.out.splitlines() if line.startswith("Main: ")][1:]
    assert refusal.startswith(
        "Main: already restarting (a restart of this server is already running, started by alice (123) in Discord at "
    )
    assert restarted.succeeded
    assert slow_restart.runs == 1
    assert audited == [("alice (123)", "restarted")]


@pytest.mark.parametrize("tidied_by", ["the next restart", "a bot starting"])
async def test_a_second_command_line_is_refused_naming_the_first_which_killed_leaves_no_lock_behind(
    sshd: SshServer, tmp_path: Path, api: HttpServer, slow_restart: SlowRestart, tidied_by: str
) -> None:
    env = ssh_env(sshd, tmp_path, "Main", api.url, slow_restart.command)
    write_env(tmp_path, **env)
    settings = load_settings(env)

    def audit() -> list[tuple[Origin, str, str]]:
        with contextlib.closing(Store.open(settings.data_dir)) as store:
            return [(row.origin, row.outcome, row.reason) for row in store.history() if isinstance(row, RestartRecord)]

    async with running_cli(tmp_path, "restart", "Main", "--yes") as first:
        await slow_restart.started()
        second = await cli(tmp_path, "restart", "main", "--yes")
        async with open_service(settings) as service:  # a bot starting now: the first still runs, its row too
            assert await service.end_abandoned_restarts() == 0
        first.send_signal(signal.SIGKILL)  # no chance to clean up: the kernel drops its lock
        await first.wait()
    assert audit() == [(Origin.CLI, RUNNING, "")]  # what the killed one left
    if tidied_by == "a bot starting":
        async with open_service(settings) as service:
            assert await service.end_abandoned_restarts() == 1
        assert audit() == [(Origin.CLI, INTERRUPTED, ABANDONED_REASON)]
    assert second.code == EXIT_BUSY, second
    holder = f"{getpass.getuser()} on the command line (pid {first.pid})"
    assert (
        f"Main: already restarting (a restart of this server is already running, started by {holder} at " in second.out
    )
    assert slow_restart.runs == 1
    slow_restart.release()  # the next command returns at once
    third = await cli(tmp_path, "restart", "Main", "--yes")
    assert third.code == 0, third
    assert "Main: restarted (exit code 0)" in third.out
    assert slow_restart.runs == 2
    # Under the lock the killed one's row can only be a leftover: it ends, and the new one is audited.
    assert audit() == [(Origin.CLI, "restarted", "exit code 0"), (Origin.CLI, INTERRUPTED, ABANDONED_REASON)]


# ----------------------------------------------------------------------------------------------- config


async def test_config_masks_the_token_and_shows_defaults(tmp_path: Path) -> None:
    token = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.the-real-token-text"
    write_env(tmp_path, DISCORD_TOKEN=token, **server_env(1, "Alpha", "http://192.0.2.1:3030"))
    run = await cli(tmp_path, "config")
    assert run.code == 0, run
    assert token not in run.out + run.err
    assert "the-real-token-text" not in run.out + run.err
    shown = dict(line.split("=", 1) for line in run.out.splitlines())
    assert shown["DISCORD_TOKEN"] == "******** (set)"
    assert shown["DISCORD_ADMIN_ROLE_IDS"] == "(unset)"
    assert shown["PORACLE_SSH_HOST_KEY_POLICY"] == "accept-new"
    assert shown["PORACLE_SSH_TIMEOUT"] == "30.0"
    assert shown["PORACLE_HEALTH_TIMEOUT"] == "5.0"
    assert shown["PORACLE_SSH_KNOWN_HOSTS"] == "/app/data/known_hosts"
    assert shown["PORACLE_SERVER_1_NAME"] == "Alpha"
    assert shown["PORACLE_SERVER_1_SSH_USER"] == "root"
    assert shown["PORACLE_SERVER_1_SSH_PORT"] == "22"
    assert shown["PORACLE_SERVER_1_HEALTH_PATH"] == "/health"
    assert shown["PORACLE_SERVER_1_RESTART_CMD"] == "pm2 restart all"


async def test_config_error_exits_2(tmp_path: Path) -> None:
    write_env(tmp_path, PORACLE_SERVER_1_HOST="127.0.0.1", PORACLE_SERVER_1_SSH_PORT="twenty-two")
    run = await cli(tmp_path, "config")
    assert run.code == 2, run
    assert "PORACLE_SERVER_1_API: required" in run.err
    assert "PORACLE_SERVER_1_SSH_PORT" in run.err
    assert run.out == ""


# ------------------------------------------------------------------------------------------------- help


async def test_help_exits_0_without_any_configuration(tmp_path: Path) -> None:
    commands: list[list[str]] = [[], ["check"], ["restart"], ["config"], ["run"]]
    # At once: each run is mostly interpreter start-up and imports.
    runs = await asyncio.gather(*(cli(tmp_path, *command, "--help") for command in commands))
    for command, run in zip(commands, runs, strict=True):
        assert run.code == 0, (command, run)
        assert run.out.startswith("usage: poracle-bot")
        assert " ".join(["poracle-bot", *command]) in run.out.splitlines()[0]
    assert "--yes" in runs[2].out


async def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    run = await cli(tmp_path)
    assert run.code == 2
    assert "usage:" in run.err


@pytest.mark.parametrize(
    ("options", "bot_level", "libraries_level"),
    [
        ([], logging.WARNING, logging.WARNING),
        (["-v"], logging.INFO, logging.INFO),
        (["-vv"], logging.DEBUG, logging.INFO),
    ],
)
def test_verbose_twice_shows_the_bots_debug_lines_and_not_the_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], bot_level: int, libraries_level: int
) -> None:
    write_env(tmp_path, **server_env(1, "Main", "http://192.0.2.1:3030"))
    monkeypatch.chdir(tmp_path)
    root, handlers, bot_logger = logging.getLogger(), logging.getLogger().handlers[:], logging.getLogger("bot")
    levels = root.level, bot_logger.level
    try:
        assert main([*options, "config"]) == 0
        assert logging.getLogger("bot.core.selfheal").getEffectiveLevel() == bot_level
        assert logging.getLogger("discord.gateway").getEffectiveLevel() == libraries_level
    finally:  # main() sets up logging for a whole process: give pytest's back
        root.handlers[:] = handlers
        root.setLevel(levels[0])
        bot_logger.setLevel(levels[1])
