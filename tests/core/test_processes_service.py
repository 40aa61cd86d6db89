"""The pm2 verbs through PoracleService on a REAL sshd whose key forces the REAL gate, in front of a REAL pm2
with a healthy process, a crash-looping one, an errored one and one with secrets (tests/support/gate.py):
the list, a restart of one process (through the same lock and audit as a whole restart), a log tail
redacted twice, and servers in command mode sent nothing at all."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.core.locks import HeldLock, Holder
from bot.core.service import GateRequired, restart_lock_key
from bot.core.store import RestartRecord
from tests.support.fixtures import TESTER, open_service
from tests.support.gate import (
    API_SECRET,
    DB_PASSWORD,
    SECRETS,
    TOKEN,
    URL_PASSWORD,
    WEBHOOK_TOKEN,
    GateHost,
    Recorder,
    bot_env,
    careless_gate,
    key_options,
)
from tests.support.local_http import HttpServer
from tests.support.sshd import SshdFactory, SshServer


def settings_of(host: GateHost, tmp_path: Path, server: SshServer | None = None, **extra: str) -> Settings:
    """Main on `server` (default: the host's own sshd), health-checked on poracle's API."""
    return load_settings(bot_env(server or host.server, tmp_path, host.api, **extra))


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(logging.Formatter().format(record) for record in caplog.records)


async def test_the_list_has_every_process_with_named_fields_only(
    gate_host: GateHost, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_of(gate_host, tmp_path)
    async with open_service(settings) as service:
        read = await service.read_processes(settings.servers[0])
    assert read.reason is None and read.processes is not None
    listed = {p.name: p for p in read.processes}
    assert set(listed) == {"poracle", "helper", "looper", "broken"}
    running = gate_host.running()
    assert (listed["poracle"].status, listed["poracle"].pid) == ("online", running["poracle"])
    assert (listed["broken"].status, listed["broken"].pid) == ("errored", None)
    assert listed["broken"].exit_code == 1
    assert listed["helper"].memory_bytes
    assert [s for s in SECRETS if s in repr(read) or s in logged(caplog)] == []
    gate_host.check_secrets("")


async def test_one_process_restarts_alone_under_the_lock_audited_then_checked(
    gate_host: GateHost, tmp_path: Path
) -> None:
    settings = settings_of(gate_host, tmp_path)
    before = gate_host.running()
    async with open_service(settings, recovery_wait=15, recovery_poll=0.2) as service:
        result = await service.restart(settings.servers[0], TESTER, process="helper")
        history = service.store.history()
    after = gate_host.running()
    assert result.succeeded and result.process == "helper", result
    assert after["helper"] != before["helper"]
    assert after["poracle"] == before["poracle"]
    assert result.gate is not None and result.gate.target == "helper"
    assert [(p.name, p.pid_before, p.pid_after) for p in result.gate.processes] == [
        ("helper", before["helper"], after["helper"])
    ]
    assert result.health is not None and result.health.online
    (record,) = history
    assert isinstance(record, RestartRecord)
    assert (record.server, record.process, record.outcome, record.healthy_after) == (
        "Main",
        "helper",
        "restarted",
        True,
    )


async def test_a_restart_of_one_process_waits_for_no_other_restart_of_its_target(
    gate_host: GateHost, tmp_path: Path
) -> None:
    settings = settings_of(gate_host, tmp_path)
    before = gate_host.steady()
    async with open_service(settings) as service:
        holder = Holder("alice in Discord", ("Main",), datetime.now(UTC))
        held = await service.locks.acquire(restart_lock_key(settings.servers[0]), holder)
        assert isinstance(held, HeldLock)
        with held:
            result = await service.restart(settings.servers[0], TESTER, process="helper")
    assert result.busy and result.word == "already restarting" and result.process == "helper"
    assert gate_host.steady() == before and len(before) == 2


async def test_the_log_is_redacted_by_the_gate_and_again_by_the_bot(
    gate_host: GateHost, sshd_factory: SshdFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_of(gate_host, tmp_path)
    async with open_service(settings) as service:
        tail = await service.read_logs(settings.servers[0], "poracle", 200)
    assert tail.reason is None and (tail.name, tail.requested) == ("poracle", 200)
    assert "DISCORD_TOKEN=[REDACTED] db password [REDACTED]" in tail.lines
    assert "request headers: x-poracle-secret: [REDACTED]" in tail.error_lines
    assert [s for s in SECRETS if s in tail.text or s in logged(caplog)] == []

    # A gate that redacts nothing: the bot's own patterns still hide every secret they can recognise. A
    # password printed bare is beyond them (only the gate knows the environment): that one comes through.
    careless = careless_gate(tmp_path)
    server = sshd_factory(authorized_options=key_options(str(careless)), force_command=False, extra_env=gate_host.env)
    (tmp_path / "careless").mkdir()
    careless_settings = settings_of(gate_host, tmp_path / "careless", server)
    async with open_service(careless_settings) as service:
        raw = await service.read_logs(careless_settings.servers[0], "poracle", 200)
    assert raw.reason is None
    assert DB_PASSWORD in raw.text  # the gate really redacted nothing
    assert [s for s in (TOKEN, WEBHOOK_TOKEN, URL_PASSWORD, API_SECRET) if s in raw.text] == []
    assert "alerts go to https://discord.com/api/webhooks/123456789012345678/[REDACTED]" in raw.text


async def test_an_unknown_process_is_the_gates_refusal_in_words(gate_host: GateHost, tmp_path: Path) -> None:
    settings = settings_of(gate_host, tmp_path)
    async with open_service(settings) as service:
        tail = await service.read_logs(settings.servers[0], "nope", 10)
    assert tail.reason == 'poracle-gate 1.0.1: pm2 has no process "nope"'


@pytest.mark.parametrize("name", ["all", "two words", "$(id)", "a;b", "../etc", "1234567"])
async def test_a_process_name_the_gate_would_refuse_sends_nothing(
    gate_host: GateHost, tmp_path: Path, name: str
) -> None:
    settings = settings_of(gate_host, tmp_path)
    logged_before = gate_host.log_text()
    before = gate_host.steady()
    async with open_service(settings) as service:
        with pytest.raises(ValueError):
            await service.read_logs(settings.servers[0], name, 10)
        with pytest.raises(ValueError):
            await service.restart(settings.servers[0], TESTER, process=name)
        assert service.store.history() == []
    assert gate_host.log_text() == logged_before  # the gate was not even asked
    assert gate_host.steady() == before and len(before) == 2


async def test_a_list_that_does_not_come_in_time_is_a_reason(
    gate_host: GateHost, sshd_factory: SshdFactory, tmp_path: Path
) -> None:
    server = sshd_factory(authorized_options=key_options("sleep 30"), force_command=False)
    settings = settings_of(gate_host, tmp_path, server)
    async with open_service(settings) as service:
        started = time.monotonic()
        read = await service.read_processes(settings.servers[0], 1.0)
        took = time.monotonic() - started
    assert read.processes is None
    assert read.reason in ("no process list within 1 s", "no result within 1 s; the command was stopped")
    assert took < 5


async def test_every_round_reads_the_gate_servers_only_within_the_health_timeout(
    gate_host: GateHost, api: HttpServer, tmp_path: Path
) -> None:
    env = bot_env(gate_host.server, tmp_path, gate_host.api, PORACLE_HEALTH_TIMEOUT="3")
    env |= {"PORACLE_SERVER_2_NAME": "Plain", "PORACLE_SERVER_2_HOST": "127.0.0.1", "PORACLE_SERVER_2_API": api.url}
    settings = load_settings(env)
    async with open_service(settings) as service:
        reads = await service.read_all_processes()
    assert [(read.server, read.reason) for read in reads] == [("Main", None)]


async def test_a_server_in_command_mode_is_sent_nothing_but_its_restart_cmd(
    recording_sshd: tuple[SshServer, Recorder], api: HttpServer, tmp_path: Path
) -> None:
    server, recorder = recording_sshd
    settings = load_settings(bot_env(server, tmp_path, api.url, PORACLE_SERVER_1_ACCESS="command"))
    main = settings.servers[0]
    async with open_service(settings) as service:
        for attempt in (
            service.read_processes(main),
            service.read_logs(main, "poracle", 10),
            service.restart(main, TESTER, process="poracle"),
        ):
            with pytest.raises(GateRequired) as refused:
                await attempt
            assert str(refused.value) == (
                "Main: this needs PORACLE_SERVER_1_ACCESS=gate (`poracle-bot gate` shows how)"
            )
        assert await service.read_all_processes() == []
        assert service.store.history() == []
    assert recorder.commands() == []
