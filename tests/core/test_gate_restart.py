"""PORACLE_SERVER_<N>_ACCESS=gate through PoracleService: a restart is poracle-gate's `restart all`, on a REAL
sshd whose key line forces the REAL gate, in front of a REAL pm2 with two apps (tests/support/gate.py).
What the gate did comes back typed; what it refuses is a failure in its words; secrets never come back."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.core.gate_protocol import parse_processes, processes_command
from bot.core.service import RestartResult
from bot.core.ssh import CommandOutcome, SshRunner
from tests.support.fixtures import TESTER, open_service
from tests.support.gate import GATE, SECRETS, World, bot_env, key_options, old_gate
from tests.support.local_http import HttpServer
from tests.support.sshd import SshdFactory, SshServer


async def restart(env: dict[str, str]) -> RestartResult:
    settings = load_settings(env)
    async with open_service(settings, recovery_wait=15, recovery_poll=0.2) as service:
        return await service.restart(settings.servers[0], TESTER)


def gate_server(world: World, sshd_factory: SshdFactory, gate_command: str) -> SshServer:
    """Another sshd in front of the world's pm2, its key line forcing `gate_command`."""
    return sshd_factory(authorized_options=key_options(gate_command), force_command=False, extra_env=world.env)


async def test_a_restart_is_the_gates_restart_of_every_process(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = world.running()
    result = await restart(bot_env(world.server, tmp_path, world.api))
    after = world.running()
    assert result.succeeded and result.word == "restarted", result
    assert result.command is not None and result.command.exit_code == 0
    assert result.health is not None and result.health.online
    apps = (world.alpha, world.beta)
    assert all(after[world.key(app)] != before[world.key(app)] for app in apps)
    assert result.gate is not None and result.gate.target == "all"
    assert {(p.name, p.pm_id, p.pid_before, p.pid_after, p.status) for p in result.gate.processes} == {
        (app.name, world.pm_ids[app.name], before[world.key(app)], after[world.key(app)], "online") for app in apps
    }
    pid = f"pid {before[world.key(world.alpha)]} → {after[world.key(world.alpha)]}"
    assert f"alpha (id {world.pm_ids['alpha']}): {pid}, online" in result.process_lines()
    assert "✓" in result.command.output  # pm2's own words, as the gate relayed them
    assert "{" not in result.command.output  # not the gate's JSON
    restarted = [r.getMessage() for r in caplog.records if r.getMessage().startswith("poracle-gate on Main restarted")]
    assert restarted == [f"poracle-gate on Main restarted {'; '.join(result.process_lines())}"]
    logged = "\n".join(logging.Formatter().format(record) for record in caplog.records)
    assert [s for s in SECRETS if s in repr(result) or s in logged] == []
    world.check_secrets("")


async def test_a_refusal_is_a_failure_in_the_gates_words_and_nothing_restarts(
    world: World, sshd_factory: SshdFactory, tmp_path: Path
) -> None:
    server = gate_server(world, sshd_factory, f"{GATE} --allow=hello,processes")
    before = world.running()
    result = await restart(bot_env(server, tmp_path, world.api))
    assert world.running() == before
    assert result.word == "failed" and result.gate is None
    assert result.command is not None and result.command.outcome is CommandOutcome.FAILED
    assert result.reason == (
        "poracle-gate 1.0.1 on this server does not allow 'restart' (allowed: ['hello', 'processes'])"
    )
    assert result.command.exit_code == 1
    assert result.health is not None and result.health.online  # checked all the same


async def test_an_old_gate_without_the_verb_says_update_it(
    world: World, sshd_factory: SshdFactory, tmp_path: Path
) -> None:
    server = gate_server(world, sshd_factory, str(old_gate(tmp_path)))
    before = world.running()
    result = await restart(bot_env(server, tmp_path, world.api))
    assert world.running() == before
    assert result.word == "failed"
    assert result.reason == "gate too old: poracle-gate 0.9.0 does not know 'restart'; update poracle-gate"


async def test_a_key_without_the_gate_fails_and_says_what_answered(
    sshd: SshServer, api: HttpServer, tmp_path: Path
) -> None:
    result = await restart(bot_env(sshd, tmp_path, api.url))  # the shared sshd: its key runs a shell
    assert result.word == "failed" and result.gate is None
    assert result.reason.startswith(
        "exit code 127; no answer from poracle-gate; is it the forced command of the bot's key? Output: "
    ), result.reason
    assert "poracle-gate: command not found" in result.reason
    assert result.command is not None and result.command.exit_code == 127


async def test_a_gate_that_does_not_answer_in_time_is_stopped(
    world: World, sshd_factory: SshdFactory, tmp_path: Path, api: HttpServer
) -> None:
    server = gate_server(world, sshd_factory, "sleep 30")
    result = await restart(bot_env(server, tmp_path, api.url, PORACLE_SSH_TIMEOUT="1"))
    assert result.word == "timed out" and result.gate is None
    assert result.reason == "no result within 1 s; the command was stopped"


async def test_a_verb_that_only_reads_needs_no_pty(world: World, sshd_factory: SshdFactory, tmp_path: Path) -> None:
    server = sshd_factory(authorized_options=f'restrict,command="{GATE}"', force_command=False, extra_env=world.env)
    settings = load_settings(bot_env(server, tmp_path, world.api))
    call = await SshRunner(settings).gate(settings.servers[0], processes_command(), parse_processes, 20, pty=False)
    assert call.command.succeeded, call
    assert call.reply is not None
    assert {(p.name, p.pid) for p in call.reply.processes} == {
        (a.name, world.pid(a)) for a in (world.alpha, world.beta)
    }


async def test_two_entries_on_one_gate_restart_its_pm2_once(world: World, tmp_path: Path) -> None:
    env = bot_env(world.server, tmp_path, world.api)
    env |= {key.replace("_1_", "_2_"): value for key, value in env.items() if key.startswith("PORACLE_SERVER_1_")}
    settings = load_settings(env | {"PORACLE_SERVER_2_NAME": "Other"})
    entries = len(world.log_entries())
    async with open_service(settings, recovery_wait=15, recovery_poll=0.2) as service:
        results = await service.restart_many(settings.servers, TESTER)
    assert [(r.server, r.word) for r in results] == [("Main", "restarted"), ("Other", "restarted")]
    assert results[0].gate is not None and results[0].gate == results[1].gate
    restarts = [e for e in world.log_entries()[entries:] if e["event"] == "accepted" and e["verb"] == "restart"]
    assert len(restarts) == 1
