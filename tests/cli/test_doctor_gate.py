"""`poracle-bot doctor` by access mode. With ACCESS=gate it asks the REAL gate `hello` over a REAL sshd (in front
of a REAL pm2, tests/support/gate.py) and says what answered: the gate, an old one, a shell, nothing usable.
With ACCESS=command it still opens no session, and says how to move to the gate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot import gate
from tests.support.doctor import doctor, only
from tests.support.gate import GATE, World, bot_env, key_options, old_gate
from tests.support.local_http import HttpServer
from tests.support.sshd import SshdFactory, SshServer

OK_LINE = f"[ OK ] Main: poracle-gate {gate.version()} (protocol 1), allows hello, processes, restart, logs"


def gate_server(world: World, sshd_factory: SshdFactory, options: str) -> SshServer:
    return sshd_factory(authorized_options=options, force_command=False, extra_env=world.env)


async def test_the_gate_answers_with_its_version_and_verbs(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = len(world.log_entries())
    code, lines = await doctor(bot_env(world.server, tmp_path, world.api), capsys)
    assert code == 0, lines
    assert OK_LINE in lines
    assert only(lines, f"[ OK ] Main: SSH login as {world.server.user}@127.0.0.1 works")
    assert lines[-1] == "All good."
    logged = [(entry["event"], entry["verb"]) for entry in world.log_entries()[entries:]]
    assert logged == [("accepted", "hello"), ("done", "hello")]  # hello, and nothing else
    assert not [line for line in lines if "NOTE" in line or "RESTART_CMD" in line]


async def test_an_old_gate_is_named_and_one_without_restart_fails(
    world: World, sshd_factory: SshdFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = gate_server(world, sshd_factory, key_options(str(old_gate(tmp_path))))
    code, lines = await doctor(bot_env(server, tmp_path, world.api), capsys)
    assert code == 1, lines
    assert (
        f"[WARN] Main: poracle-gate 0.9.0 (protocol 1), allows hello, processes; this bot ships the newer "
        f"{gate.version()} — update it: step 1 of `poracle-bot gate` copies the new one"
    ) in lines
    assert only(lines, "[FAIL] Main: poracle-gate there does not allow restart: the bot cannot restart this server")


async def test_a_key_line_without_pty_fails_before_the_first_restart_does(
    world: World, sshd_factory: SshdFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = gate_server(world, sshd_factory, f'restrict,command="{GATE}"')
    code, lines = await doctor(bot_env(server, tmp_path, world.api), capsys)
    assert code == 1, lines
    line = only(lines, "[FAIL] Main: SSH login as")
    assert "add `pty` to its options" in line


@pytest.mark.parametrize(
    ("answered", "words", "fix"),
    [
        (
            "a shell",
            "exit code 127; no answer from poracle-gate",
            " — `poracle-bot gate` prints the three steps that install it",
        ),
        (
            "an empty gate",  # as a copy whose `poracle-bot` was not found left it before step 1 checked
            "no answer from poracle-gate; is it the forced command of the bot's key? Output: (no output)",
            " — it ran and printed nothing, not even an error: ~/bin/poracle-gate there may be empty",
        ),
        (
            "no node",
            "'node': No such file or directory",
            "`poracle-bot gate --node=/full/path/to/node` prints a key line that names it",
        ),
    ],
)
async def test_what_is_not_the_gate_is_named_with_the_fix(
    world: World,
    sshd: SshServer,
    sshd_factory: SshdFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    answered: str,
    words: str,
    fix: str,
) -> None:
    if answered == "a shell":
        server = sshd  # the shared sshd: its key line is plain
    elif answered == "an empty gate":
        (tmp_path / "empty-gate").write_text("")
        server = gate_server(world, sshd_factory, key_options(f"{shutil.which('node')} {tmp_path / 'empty-gate'}"))
    else:
        server = gate_server(world, sshd_factory, key_options(f"{shutil.which('env')} PATH=/nonexistent {GATE}"))
    code, lines = await doctor(bot_env(server, tmp_path, world.api), capsys)
    assert code == 1, lines
    line = only(lines, "[FAIL] Main: poracle-gate is not installed for the bot's key:")
    assert words in line
    assert fix in line and line.endswith(fix if answered != "an empty gate" else "copies it again"), line


async def test_restart_cmd_in_gate_mode_is_a_warning(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = bot_env(world.server, tmp_path, world.api, PORACLE_SERVER_1_RESTART_CMD="pm2 restart all")
    code, lines = await doctor(env, capsys)
    assert code == 0, lines
    assert only(lines, "[WARN] Configuration: PORACLE_SERVER_1_RESTART_CMD: ignored, PORACLE_SERVER_1_ACCESS is gate")
    assert OK_LINE in lines


async def test_command_mode_says_how_to_move_to_the_gate_and_runs_nothing(
    sshd_factory: SshdFactory, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = sshd_factory()
    code, lines = await doctor(bot_env(server, tmp_path, api.url, PORACLE_SERVER_1_ACCESS="command"), capsys)
    assert code == 0, lines
    assert (
        f"[NOTE] Main: PORACLE_SERVER_1_ACCESS=command: the bot's key may run any command as {server.user} — "
        "limit it to poracle-gate: `poracle-bot gate` prints the three steps that install it"
    ) in lines
    assert "Starting session" not in server.log()
