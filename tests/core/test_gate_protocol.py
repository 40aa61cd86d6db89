"""The bot's side of the poracle-gate protocol: commands built only from valid values, answers read from raw
session output (pty line ends, junk before), every refusal turned into words. The real gate answers the same
parsers in tests/gate/test_gate_sshd.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.core.gate_protocol import (
    MAX_COMMAND_BYTES,
    GateError,
    GateHello,
    GateLogs,
    GateProcesses,
    GateRestart,
    Pm2Process,
    RestartedProcess,
    hello_command,
    logs_command,
    parse_hello,
    parse_logs,
    parse_processes,
    parse_restart,
    processes_command,
    restart_command,
)


def answer(**fields: object) -> str:
    return json.dumps({"gate": 1, "version": "1.0.0", "ok": True, **fields})


def refusal(error: str, message: str = "why", **fields: object) -> str:
    return json.dumps(
        {"gate": 1, "version": "1.0.0", "ok": False, "verb": None, "error": error, "message": message, **fields}
    )


def test_commands() -> None:
    assert hello_command() == "poracle-gate 1 hello"
    assert processes_command() == "poracle-gate 1 processes"
    assert restart_command("PoracleJS") == "poracle-gate 1 restart PoracleJS"
    assert restart_command(0) == "poracle-gate 1 restart 0"
    assert restart_command("all") == "poracle-gate 1 restart all"
    assert logs_command("poracle@eu-1:main", 200) == "poracle-gate 1 logs poracle@eu-1:main 200"
    assert logs_command(12, 1) == "poracle-gate 1 logs 12 1"
    longest = logs_command("a" * 64, 200)
    assert len(longest.encode()) <= MAX_COMMAND_BYTES


@pytest.mark.parametrize(
    "target",
    [
        "--help",
        "-s",
        ".x",
        "a;id",
        "a b",
        "x\nid",
        "$(id)",
        "a`",
        "a/b",
        "",
        "a" * 65,
        "é",
        "123",
        "007",
        -1,
        10**6,
        True,
    ],
)
def test_targets_the_gate_would_refuse_are_refused_here(target: str | int) -> None:
    with pytest.raises(ValueError):
        restart_command(target)
    with pytest.raises(ValueError):
        logs_command(target, 5)


def test_all_is_for_restart_only() -> None:
    with pytest.raises(ValueError):
        logs_command("all", 5)


@pytest.mark.parametrize("lines", [0, 201, -5, True])
def test_log_line_count_is_bounded(lines: int) -> None:
    with pytest.raises(ValueError):
        logs_command("alpha", lines)


def test_hello_through_a_pty_after_shell_noise() -> None:
    reply = answer(verb="hello", protocols=[1], verbs=["hello", "processes"])
    output = f"Welcome to the server\r\n{{not json\r\n{reply}\r\n"
    assert parse_hello(output) == GateHello(version="1.0.0", protocol=1, verbs=("hello", "processes"))


def test_processes() -> None:
    item = {
        "name": "PoracleJS",
        "pm_id": 0,
        "status": "online",
        "pid": 4242,
        "started_at_ms": 1_700_000_000_000,
        "restarts": 3,
        "unstable_restarts": 0,
        "memory_bytes": 1234,
        "cpu_percent": 0,
        "exit_code": None,
    }
    stopped = {**item, "name": "other", "pm_id": 1, "status": "stopped", "pid": None, "started_at_ms": None}
    parsed = parse_processes(answer(verb="processes", processes=[item, stopped]) + "\n")
    assert parsed == GateProcesses(
        processes=(
            Pm2Process(
                name="PoracleJS",
                pm_id=0,
                status="online",
                pid=4242,
                started_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
                restarts=3,
                unstable_restarts=0,
                memory_bytes=1234,
                cpu_percent=0.0,
                exit_code=None,
            ),
            Pm2Process("other", 1, "stopped", None, None, 3, 0, 1234, 0.0, None),
        )
    )


def test_names_and_words_from_the_gate_are_one_line_of_plain_text() -> None:
    # pm2 takes any name (`pm2 start app.js --name "$(printf ...)"`), and a server can be anyone's.
    evil = "poracle\x1b[2J\n2026-01-01 INFO forged\u2028\x9b31m\u202egnp.exe\x00"
    item = {"name": evil, "pm_id": 0, "status": "online\r\nerrored", "pid": 1, "started_at_ms": None}
    item |= {"restarts": 0, "unstable_restarts": 0, "memory_bytes": None, "cpu_percent": None, "exit_code": None}
    (process,) = parse_processes(answer(verb="processes", processes=[item], log_error="cannot\nwrite")).processes
    assert process.name == "poracle�[2J�2026-01-01 INFO forged��31m�gnp.exe�"
    assert process.status == "online��errored"
    restarted = answer(verb="restart", target="all", exit_code=0, output=[], processes=[{**item, "pm_id": 0}])
    assert parse_restart(restarted).processes[0].name == process.name
    logs = answer(verb="logs", name=evil, pm_id=0, lines=[], error_lines=[], log_error="a\x1b[1mb\nc")
    assert (parse_logs(logs).name, parse_logs(logs).log_error) == (process.name, "a�[1mb�c")
    hello = parse_hello(answer(verb="hello", version="1.0.0\x1b[8m", protocols=[1], verbs=["hello\nrestart"]))
    assert (hello.version, hello.verbs) == ("1.0.0�[8m", ("hello�restart",))
    # Never another process's name: a name the gate takes has no replacement character.
    with pytest.raises(ValueError):
        restart_command(
            parse_processes(answer(verb="processes", processes=[{**item, "name": "poracle\n"}])).processes[0].name
        )


def test_restart_and_logs_carry_the_log_error() -> None:
    restart = answer(
        verb="restart",
        target="alpha",
        exit_code=0,
        output=["[PM2] [alpha](0) ✓"],
        processes=[{"name": "alpha", "pm_id": 0, "pid_before": 10, "pid_after": 11, "status": "online"}],
        log_error="cannot write /x/gate.log: EACCES",
    )
    parsed = parse_restart(restart)
    assert parsed == GateRestart(
        target="alpha",
        exit_code=0,
        output=("[PM2] [alpha](0) ✓",),
        processes=(RestartedProcess("alpha", 0, 10, 11, "online"),),
        log_error="cannot write /x/gate.log: EACCES",
    )
    assert parsed.processes[0].new_pid
    logs = answer(verb="logs", name="alpha", pm_id=0, lines=["a", "b"], error_lines=[])
    assert parse_logs(logs) == GateLogs(name="alpha", pm_id=0, lines=("a", "b"), error_lines=())


def test_an_old_gate_is_named_with_what_to_do() -> None:
    with pytest.raises(GateError) as caught:
        parse_logs(refusal("unknown-verb", verbs=["hello"]))
    assert caught.value.code == "unknown-verb"
    assert str(caught.value) == "gate too old: poracle-gate 1.0.0 does not know 'logs'; update poracle-gate"


@pytest.mark.parametrize(
    ("reply", "code", "words"),
    [
        (refusal("unsupported-protocol", protocols=[2]), "unsupported-protocol", "speaks protocol [2]"),
        # The older side is the one to update.
        (refusal("unsupported-protocol", protocols=[2, 3]), "unsupported-protocol", "protocol 1: update poracle-bot"),
        (refusal("unsupported-protocol", protocols=[0]), "unsupported-protocol", "protocol 1: update poracle-gate"),
        (refusal("not-allowed", verbs=["hello"]), "not-allowed", "does not allow 'logs' (allowed: ['hello'])"),
        (refusal("no-pm2", "pm2 not found"), "no-pm2", "poracle-gate 1.0.0: pm2 not found"),
        ("bash: line 1: poracle-gate: command not found\r\n", "no-reply", "Output: bash: line 1: poracle-gate"),
        ("", "no-reply", "(no output)"),
        ('{"ok": true}', "no-reply", "forced command"),
        (json.dumps({"gate": 2, "ok": True}), "bad-reply", "protocol 2"),
        (answer(verb="hello", protocols=[1], verbs=["hello"]), "bad-reply", "answered 'hello' to 'logs'"),
        (answer(verb="logs", name="a", pm_id="0", lines=[], error_lines=[]), "bad-reply", "'pm_id'"),
        (answer(verb="logs", name="a", pm_id=True, lines=[], error_lines=[]), "bad-reply", "'pm_id'"),
        (answer(verb="logs", name="a", pm_id=0, lines=[1], error_lines=[]), "bad-reply", "'lines'"),
    ],
)
def test_errors_in_words(reply: str, code: str, words: str) -> None:
    with pytest.raises(GateError) as caught:
        parse_logs(reply)
    assert caught.value.code == code
    assert words in str(caught.value)


def test_malformed_lists_and_numbers() -> None:
    with pytest.raises(GateError, match="'processes'"):
        parse_processes(answer(verb="processes", processes=[1]))
    with pytest.raises(GateError, match="'cpu_percent'"):
        parse_processes(
            answer(
                verb="processes",
                processes=[
                    {
                        "name": "a",
                        "pm_id": 0,
                        "status": "online",
                        "pid": 1,
                        "restarts": 0,
                        "unstable_restarts": 0,
                        "cpu_percent": "high",
                    }
                ],
            )
        )
    with pytest.raises(GateError, match="'protocols'"):
        parse_hello(answer(verb="hello", protocols=[2], verbs=[]))
