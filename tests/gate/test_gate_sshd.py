"""poracle-gate as the forced command of a key on a REAL OpenSSH sshd, in front of a REAL pm2 running two
apps; one has secrets in its environment and prints them to its logs.

Every byte the gate sends back, and its own log, is checked for the secrets after every command. The world
(tests/support/gate.py): one pm2 daemon and one sshd serve the whole module.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from bot.core.gate_protocol import (
    VERBS,
    GateError,
    hello_command,
    logs_command,
    parse_hello,
    parse_logs,
    parse_processes,
    parse_restart,
    processes_command,
    read_reply,
    restart_command,
)
from tests.support.gate import GATE, World, key_options
from tests.support.sshd import SshdFactory


def test_hello_names_the_version_and_the_verbs(world: World) -> None:
    done = world.ssh(hello_command())
    assert done.returncode == 0, done
    hello = parse_hello(done.stdout)
    assert hello.protocol == 1
    assert hello.verbs == VERBS
    assert re.fullmatch(r"\d+\.\d+\.\d+", hello.version)
    accepted, finished = world.log_entries()[-2:]
    assert accepted["event"] == "accepted" and finished["event"] == "done"
    assert accepted["client"] == "127.0.0.1" and isinstance(accepted["client_port"], int)


def test_processes_lists_both_with_named_fields_only(world: World) -> None:
    done = world.ssh(processes_command())
    assert done.returncode == 0, done
    listed = {p.name: p for p in parse_processes(done.stdout).processes}
    assert set(listed) == {"alpha", "beta"}
    assert (listed["alpha"].pid, listed["beta"].pid) == (world.pid(world.alpha), world.pid(world.beta))
    assert listed["alpha"].status == "online" and listed["alpha"].memory_bytes
    assert listed["alpha"].started_at is not None
    raw = json.loads(done.stdout.splitlines()[-1])["processes"][0]
    assert set(raw) == {
        "name",
        "pm_id",
        "status",
        "pid",
        "started_at_ms",
        "restarts",
        "unstable_restarts",
        "memory_bytes",
        "cpu_percent",
        "exit_code",
    }


@pytest.mark.parametrize(("restarted", "by"), [("alpha", "name"), ("beta", "id")])
def test_restart_one_changes_that_pid_only(world: World, restarted: str, by: str) -> None:
    app = world.alpha if restarted == "alpha" else world.beta
    pm_id = world.pm_ids[app.name]
    before = world.running()
    done = world.ssh(restart_command(app.name if by == "name" else pm_id))
    assert done.returncode == 0, done
    after = world.running()
    assert {key for key in before if after.get(key) != before[key]} == {world.key(app)}
    reply = parse_restart(done.stdout)
    assert (reply.target, reply.exit_code) == ((app.name if by == "name" else str(pm_id)), 0)
    assert [(p.name, p.pm_id, p.pid_before, p.pid_after) for p in reply.processes] == [
        (app.name, pm_id, before[world.key(app)], after[world.key(app)])
    ]
    assert any("✓" in line for line in reply.output), reply.output


def test_restart_all(world: World) -> None:
    before = world.running()
    done = world.ssh(restart_command("all"))
    assert done.returncode == 0, done
    after = world.running()
    reply = parse_restart(done.stdout)
    apps = (world.alpha, world.beta)
    assert {(p.pid_before, p.pid_after) for p in reply.processes} == {
        (before[world.key(a)], after[world.key(a)]) for a in apps
    }
    assert all(before[world.key(a)] != after[world.key(a)] for a in apps)
    assert after["pm2"] == before["pm2"]  # the same daemon


def test_logs_are_the_tail_and_redacted(world: World) -> None:
    done = world.ssh(logs_command("alpha", 200))
    assert done.returncode == 0, done
    logs = parse_logs(done.stdout)
    assert logs.name == "alpha"
    assert "gate-test app alpha ready" in logs.lines
    assert "logging in to discord with [REDACTED]" in logs.lines
    assert "DISCORD_TOKEN=[REDACTED] db password [REDACTED]" in logs.lines
    assert (
        "alerts go to https://discord.com/api/webhooks/123456789012345678/[REDACTED] "
        "and data to mysql://poracle:[REDACTED]@127.0.0.1:3306/poracle"
    ) in logs.lines
    assert "request headers: x-poracle-secret: [REDACTED]" in logs.error_lines
    last = parse_logs(world.ssh(logs_command(logs.pm_id, 1)).stdout)
    assert last.lines == logs.lines[-1:]


async def test_restart_under_a_pty_as_the_bot_runs_it(world: World) -> None:
    old = world.pid(world.beta)
    status, output = await world.ssh_pty(restart_command("beta"))
    assert status == 0, output
    assert output.endswith("}\r\n")
    reply = parse_restart(output)
    assert reply.processes[0].pid_before == old
    assert reply.processes[0].pid_after == world.pid(world.beta) != old


async def test_logs_under_a_pty(world: World) -> None:
    status, output = await world.ssh_pty(logs_command("alpha", 50))
    assert status == 0, output
    assert "gate-test app alpha ready" in parse_logs(output).lines


# --------------------------------------------------------------------------------------------- refused

REFUSED = [
    ("id", "bad-syntax"),
    ("pm2 delete all", "bad-syntax"),
    ("touch {marker}", "bad-syntax"),
    ("poracle-gate 1 restart alpha; touch {marker}", "bad-syntax"),
    ("poracle-gate 1 restart $(touch {marker})", "bad-syntax"),
    ("poracle-gate 1 restart `touch {marker}`", "bad-syntax"),
    ("poracle-gate 1 restart alpha\ntouch {marker}", "bad-syntax"),
    ("poracle-gate 1 restart alpha && touch {marker}", "bad-syntax"),
    ("poracle-gate 1 restart alpha | touch {marker}", "bad-syntax"),
    ("poracle-gate 1 restart alpha > {marker}", "bad-syntax"),
    ("poracle-gate 1 restart 'alpha'", "bad-syntax"),
    ("poracle-gate 1 restart al\\pha", "bad-syntax"),
    ("poracle-gate 1 restart nosuch", "unknown-process"),
    ("poracle-gate 1 restart 99", "unknown-process"),
    ("poracle-gate 1 restart --help", "bad-arguments"),
    ("poracle-gate 1 restart -s", "bad-arguments"),
    ("poracle-gate 1 logs alpha 201", "bad-arguments"),
    ("poracle-gate 1 restart " + "a" * 10_000, "too-long"),
    ("poracle-gate 1 delete all", "unknown-verb"),
    ("poracle-gate 2 restart all", "unsupported-protocol"),
    (" ", "empty"),
    ("", "no-command"),  # the OpenSSH client asks for a login shell when the command is empty
]


@pytest.mark.parametrize(("command", "error"), REFUSED, ids=[f"{e}:{c[:40]!r}" for c, e in REFUSED])
def test_refused_and_nothing_runs(world: World, command: str, error: str) -> None:
    marker = world.server.workdir / f"ran-{uuid.uuid4().hex}"
    before = world.running()
    done = world.ssh(command.format(marker=marker))
    assert done.returncode == 1, done
    with pytest.raises(GateError) as refused:
        read_reply(done.stdout, "restart")
    assert refused.value.code == error
    assert not marker.exists()
    assert world.running() == before
    entry = world.log_entries()[-1]
    assert (entry["event"], entry["error"], entry["client"]) == ("refused", error, "127.0.0.1")


async def test_an_interactive_login_is_refused(world: World) -> None:
    status, output = await world.ssh_pty(None)
    assert status == 1, output
    with pytest.raises(GateError) as refused:
        read_reply(output, "hello")
    assert refused.value.code == "no-command"
    assert world.log_entries()[-1]["error"] == "no-command"


# ------------------------------------------------------------------------------------ operator options


def test_key_line_and_config_file_each_take_verbs_away(world: World, sshd_factory: SshdFactory, tmp_path: Path) -> None:
    config = tmp_path / "gate.json"
    config.write_text(json.dumps({"allow": ["hello", "processes", "restart"]}))
    server = sshd_factory(
        authorized_options=key_options(f"node {GATE} --allow=hello,processes,logs --config={config}"),
        force_command=False,
        extra_env=world.env,
    )
    assert parse_hello(world.ssh(hello_command(), server).stdout).verbs == ("hello", "processes")
    before = world.running()
    for command in (restart_command("alpha"), logs_command("alpha", 5)):
        done = world.ssh(command, server)
        assert done.returncode == 1, done
        assert json.loads(done.stdout)["error"] == "not-allowed"
        assert world.log_entries()[-1]["event"] == "refused"
    assert world.running() == before
    assert len(parse_processes(world.ssh(processes_command(), server).stdout).processes) == 2


def test_no_pm2_is_a_clear_failure(world: World, sshd_factory: SshdFactory) -> None:
    server = sshd_factory(
        authorized_options=key_options(f"{GATE} --pm2=/nonexistent/bin/pm2"), force_command=False, extra_env=world.env
    )
    done = world.ssh(processes_command(), server)
    assert done.returncode == 2, done
    with pytest.raises(GateError, match="not an executable file: /nonexistent/bin/pm2") as failed:
        parse_processes(done.stdout)
    assert failed.value.code == "no-pm2"
    assert world.log_entries()[-1]["event"] == "failed"


def test_a_log_it_cannot_write_does_not_stop_the_verb_nor_pass_in_silence(
    world: World, sshd_factory: SshdFactory
) -> None:
    server = sshd_factory(
        authorized_options=key_options(f"{GATE} --log=/dev/null/gate.log"), force_command=False, extra_env=world.env
    )
    done = world.ssh(processes_command(), server)
    assert done.returncode == 0, done
    assert "poracle-gate: cannot write /dev/null/gate.log" in done.stderr
    reply = parse_processes(done.stdout)
    assert reply.log_error is not None and "/dev/null/gate.log" in reply.log_error
    assert len(reply.processes) == 2  # pm2 found on PATH: no --pm2 on this key
