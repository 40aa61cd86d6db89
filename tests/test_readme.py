"""The README's table of commands gives each command's exit statuses: each one is produced here by running
that command, as an operator would, into the situation the table names."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core import heartbeat
from tests.support.cli import cli, running_cli, write_env
from tests.support.fixtures import SlowRestart
from tests.support.gate import World, bot_env
from tests.support.local_http import HttpServer, http_server, refused_port, status
from tests.support.sshd import SshServer
from tests.support.world import server_env, ssh_env

ROOT = Path(__file__).resolve().parent.parent


def documented_exit_codes() -> dict[str, set[int]]:
    """{command: its exit statuses} from the README's table under "On the command line"."""
    text = (ROOT / "README.md").read_text()
    table = text.split("| Command | What it does | Exit status |", 1)[1].split("\n\n", 1)[0]
    codes: dict[str, set[int]] = {}
    for row in table.strip().splitlines()[1:]:  # below the | --- | line
        command, _, status = (cell.strip() for cell in row.strip().strip("|").split(" | "))
        name = re.match(r"`(\w+)", command)
        assert name is not None, row
        codes[name.group(1)] = {int(code) for code in re.findall(r"(?:^|; )(\d+):", status)}
    return codes


@dataclass
class Situation:
    """A directory with a `.env` of `env`, where `command args` is run."""

    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    prepare: Callable[[Path], None] | None = None
    while_restarting: SlowRestart | None = None  # run while `restart Main` with this command is under way


def fresh_heartbeat(data: Path) -> None:
    heartbeat.write(data, heartbeat.Heartbeat(datetime.now(UTC), connected=True))


@pytest.fixture
async def refusing() -> AsyncIterator[HttpServer]:
    """An API that answers, but refuses the bot (PoracleNG's IP filter): degraded."""
    async with http_server({"/health": status(403)}) as server:
        yield server


async def test_every_documented_exit_status_is_what_the_command_returns(
    sshd: SshServer, api: HttpServer, refusing: HttpServer, tmp_path: Path, slow_restart: SlowRestart, world: World
) -> None:
    down = f"http://127.0.0.1:{refused_port()}"
    online = server_env(1, "Main", api.url)
    broken = online | {"PORACLE_SSH_TIMEOUT": "later"}

    def reachable(directory_name: str, pinned: bool = True, command: str = "true") -> dict[str, str]:
        (tmp_path / directory_name).mkdir()
        env = ssh_env(sshd, tmp_path / directory_name / "known_hosts") | server_env(1, "Main", api.url, sshd, command)
        if not pinned:
            (tmp_path / directory_name / "known_hosts").unlink()
        return env | {"PORACLE_DATA_DIR": str(tmp_path / directory_name / "data")}

    (tmp_path / "gated").mkdir()
    gated = bot_env(world.server, tmp_path / "gated", world.api)

    situations: dict[tuple[str, int], Situation] = {
        ("check", 0): Situation(online),
        ("check", 1): Situation(server_env(1, "Main", down)),
        ("check", 2): Situation(broken),
        ("check", 3): Situation(server_env(1, "Main", refusing.url)),
        ("restart", 0): Situation(reachable("restart-0"), ["Main", "--yes"]),
        ("restart", 1): Situation(reachable("restart-1"), ["Main"]),  # nobody at the terminal to confirm
        ("restart", 2): Situation(broken, ["Main", "--yes"]),
        ("restart", 75): Situation(
            reachable("restart-75", command=slow_restart.command), ["Main", "--yes"], while_restarting=slow_restart
        ),
        ("processes", 0): Situation(gated, ["Main"]),
        ("processes", 1): Situation(gated, ["Nope"]),
        ("processes", 2): Situation(reachable("processes-2"), ["Main"]),  # command mode: nothing is sent
        ("logs", 0): Situation(gated, ["Main", world.alpha.name, "--lines", "5"]),
        ("logs", 1): Situation(gated, ["Nope", world.alpha.name]),
        ("logs", 2): Situation(gated, ["Main", "alpha;id"]),  # a name the gate would refuse: nothing is sent
        ("config", 0): Situation(online),
        ("config", 2): Situation(broken),
        ("run", 2): Situation(online),  # no DISCORD_TOKEN
        ("doctor", 0): Situation(reachable("doctor-0") | {"PORACLE_HEALTH_TIMEOUT": "2"}),
        ("doctor", 1): Situation(server_env(1, "Main", down)),
        ("doctor", 2): Situation(broken),
        ("trust", 0): Situation(reachable("trust-0"), ["Main"]),  # already pinned
        ("trust", 1): Situation(reachable("trust-1", pinned=False), ["Main"]),  # not confirmed
        ("trust", 2): Situation(broken, ["Main"]),
        ("gate", 0): Situation(reachable("gate-0")),
        ("gate", 2): Situation(broken),
        ("healthcheck", 0): Situation(online | {"PORACLE_DATA_DIR": str(tmp_path / "hc-0")}, prepare=fresh_heartbeat),
        ("healthcheck", 1): Situation(online | {"PORACLE_DATA_DIR": str(tmp_path / "hc-1")}),
    }
    documented = documented_exit_codes()
    assert {(command, code) for command, codes in documented.items() for code in codes} == set(situations)

    # A few at a time (each run is mostly interpreter start-up): on a busy 2-core machine, 20 at once would
    # keep the slow restart below from even starting in time.
    at_once = asyncio.Semaphore(4)

    async def outcome(command: str, code: int, situation: Situation) -> tuple[str, int, int, str]:
        async with at_once:
            return await run_in(tmp_path / f"{command}-{code}", command, code, situation)

    async def run_in(directory: Path, command: str, code: int, situation: Situation) -> tuple[str, int, int, str]:
        directory.mkdir(exist_ok=True)
        write_env(directory, **situation.env)
        if situation.prepare is not None:
            situation.prepare(Path(situation.env["PORACLE_DATA_DIR"]))
        if situation.while_restarting is None:
            run = await cli(directory, command, *situation.args, timeout=120)
        else:
            async with running_cli(directory, "restart", "Main", "--yes"):
                await situation.while_restarting.started(timeout=60)
                run = await cli(directory, command, *situation.args, timeout=120)
                situation.while_restarting.release()
        return command, code, run.code, run.out + run.err

    results = await asyncio.gather(*(outcome(*key, situation) for key, situation in situations.items()))
    wrong = [
        f"{command}: README says {code}, got {got}:\n{output}" for command, code, got, output in results if got != code
    ]
    assert not wrong, "\n\n".join(wrong)
