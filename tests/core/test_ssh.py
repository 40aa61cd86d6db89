"""Restarts over a real OpenSSH sshd on 127.0.0.1 through PoracleService / SshRunner: every outcome is honest."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import asyncssh
import pytest

from bot.config import Settings, load_settings
from bot.core.gate_protocol import parse_processes
from bot.core.hostkeys import KnownHosts
from bot.core.service import NOT_STARTED_REASON, STOPPED_REASON, Requester, RestartResult
from bot.core.ssh import CommandOutcome, SshRunner
from bot.core.store import Origin, Store
from tests.support.fixtures import TESTER, SlowRestart, audit, lines, open_service
from tests.support.local_http import HttpServer, http_server, refused_port
from tests.support.sshd import SshdFactory, SshServer, free_port, remote_processes, trust, wait_remote_processes_gone
from tests.support.unprivileged import UNPRIVILEGED, run_unprivileged
from tests.support.waiting import eventually


def make_settings(
    sshd: SshServer,
    known_hosts: Path,
    api: str,
    command: str,
    *,
    policy: str = "strict",
    names: tuple[str, ...] = ("Test",),
    **extra: str,
) -> Settings:
    """One server block per name, all on `sshd`; `extra` overrides any variable."""
    env = {
        "PORACLE_SSH_KEY_PATH": str(sshd.client_key),
        "PORACLE_SSH_KNOWN_HOSTS": str(known_hosts),
        "PORACLE_SSH_HOST_KEY_POLICY": policy,
        "PORACLE_SSH_TIMEOUT": "20",
        "PORACLE_SSH_CONNECT_TIMEOUT": "5",
        "PORACLE_HEALTH_TIMEOUT": "1",
        "PORACLE_DATA_DIR": str(known_hosts.parent / "data"),
    }
    for number, name in enumerate(names, 1):
        env |= {
            f"PORACLE_SERVER_{number}_NAME": name,
            f"PORACLE_SERVER_{number}_HOST": "127.0.0.1",
            f"PORACLE_SERVER_{number}_SSH_PORT": str(sshd.port),
            f"PORACLE_SERVER_{number}_SSH_USER": sshd.user,
            f"PORACLE_SERVER_{number}_API": api,
            f"PORACLE_SERVER_{number}_RESTART_CMD": command,
        }
    return load_settings(env | extra)


@pytest.fixture
def pinned(sshd: SshServer, tmp_path: Path) -> Path:
    """A known_hosts file that trusts the shared sshd."""
    return sshd.write_known_hosts(tmp_path / "known_hosts")


def read(path: Path) -> str:
    return path.read_text()


def key_secret(path: Path) -> str:
    """A piece of the private key's body that must never show up anywhere."""
    body = [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]
    return body[1][:40]


async def test_success_runs_the_command_and_captures_output(
    sshd: SshServer, pinned: Path, api: HttpServer, marker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(sshd, pinned, api.url, f"echo restarting; touch {marker}; echo done")
    async with open_service(settings) as service:
        (server,) = settings.select("test")
        result = await service.restart(server, Requester(Origin.DISCORD, "alice#1234"))
    assert marker.exists()
    assert result.succeeded and not result.busy
    assert result.word == "restarted"
    assert result.command is not None
    assert result.command.outcome is CommandOutcome.SUCCEEDED
    assert result.command.exit_code == 0
    assert result.command.output == "restarting\ndone"
    assert 0 < result.command.duration_s < 10
    assert result.health is not None and result.health.online and result.health.status == 200
    assert api.requests == ["/health"]

    # The log tells who asked and how it ended.
    service_lines = [r.getMessage() for r in caplog.records if r.name == "bot.core.service"]
    assert any("Restart of Test requested by alice#1234" in line for line in service_lines), service_lines
    assert any("Restart of Test by alice#1234: restarted (exit code 0)" in line for line in service_lines)
    # Secrets: the private key's contents appear in no log line and no result.
    secret = key_secret(sshd.client_key)
    assert secret not in caplog.text
    assert secret not in repr(result)
    # The audit has it, whoever asked: the service writes it, not the front end.
    store = Store.open(settings.data_dir)
    (audited,) = store.history()
    store.close()
    assert audited == result.record(audited.at)
    assert (audited.origin, audited.requested_by, audited.outcome) == (Origin.DISCORD, "alice#1234", "restarted")


async def test_the_output_of_a_restart_command_is_redacted_before_anyone_sees_it(
    sshd: SshServer, pinned: Path, api: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A RESTART_CMD of the operator's that prints what pm2 knows (`pm2 restart --update-env`, `pm2 env 0`).
    token = "MTAxMjM0NTY3ODkwMTIzNDU2Nzg5.GaBcDe.abcdefghijklmnopqrstuvwxyz012345"
    printed = f"echo DISCORD_TOKEN={token}; echo 'database: mysql://poracle:hunter2pw@db/poracle'; exit 1"
    settings = make_settings(sshd, pinned, api.url, printed)
    async with open_service(settings) as service:
        result = await service.restart(settings.servers[0], Requester(Origin.DISCORD, "bob"))
    assert result.command is not None and result.command.exit_code == 1
    assert result.command.output == "DISCORD_TOKEN=[REDACTED]\ndatabase: mysql://poracle:[REDACTED]@db/poracle"
    assert token[:24] not in caplog.text and "hunter2pw" not in caplog.text


@pytest.mark.parametrize(
    "answer",
    [
        # Something else than the gate answers (a wrapper, a shell profile): its output is quoted in the reason.
        r"printf '\033[2J\033]0;title\007hello\nDISCORD_TOKEN=hunter2token\n[ OK ] forged line\n'",
        # A gate (or something posing as one) refuses in words the bot did not choose.
        """echo '{"gate": 1, "ok": false, "error": "pm2-failed", "message": """
        """"boom\\u001b[31m\\n[ OK ] forged line token=hunter2token\\u0007"}'""",
    ],
)
async def test_remote_words_in_a_reason_are_one_clean_line_with_no_secret(
    sshd: SshServer, pinned: Path, api: HttpServer, answer: str
) -> None:
    settings = make_settings(sshd, pinned, api.url, "true")
    called = await SshRunner(settings).gate(settings.servers[0], answer, parse_processes, 10)
    reason = called.command.reason
    assert called.reply is None and called.command.outcome is CommandOutcome.FAILED, called
    assert "forged line" in reason, reason
    assert "hunter2token" not in reason and "[REDACTED]" in reason, reason
    assert reason.isprintable() and "[31m" not in reason and "[2J" not in reason, reason


async def test_nonzero_exit_is_a_failure_with_its_code_and_output(
    sshd: SshServer, pinned: Path, api: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(sshd, pinned, api.url, "echo 'partial work'; echo 'boom' >&2; exit 3")
    async with open_service(settings) as service:
        result = await service.restart(settings.servers[0], Requester(Origin.DISCORD, "bob"))
    assert not result.succeeded
    assert result.word == "failed"
    assert result.command is not None
    assert result.command.outcome is CommandOutcome.FAILED
    assert result.command.exit_code == 3
    assert result.reason == "exit code 3"
    assert result.command.output == "partial work\nboom"  # stderr is kept too
    assert result.health is not None and result.health.online  # checked once, not waited for
    assert api.requests == ["/health"]
    warnings = [r for r in caplog.records if r.name == "bot.core.service" and r.levelno == logging.WARNING]
    assert any("by bob: failed (exit code 3)" in r.getMessage() for r in warnings)


async def test_killed_by_a_signal_is_a_failure(sshd: SshServer, pinned: Path, api: HttpServer) -> None:
    settings = make_settings(sshd, pinned, api.url, "echo before; kill -TERM $$")
    async with open_service(settings) as service:
        result = await service.restart(settings.servers[0], TESTER)
    assert result.command is not None
    assert result.command.outcome is CommandOutcome.FAILED
    assert result.command.output == "before"
    assert "TERM" in result.reason or "143" in result.reason


async def test_timeout_stops_the_remote_command_and_keeps_output(
    sshd: SshServer, pinned: Path, api: HttpServer
) -> None:
    tag = f"poracle-timeout-{uuid.uuid4().hex}"
    settings = make_settings(sshd, pinned, api.url, f"echo started; sleep 300 # {tag}", PORACLE_SSH_TIMEOUT="1")
    async with open_service(settings) as service:
        started = time.monotonic()
        task = asyncio.create_task(service.restart(settings.servers[0], TESTER))
        # The command really ran remotely: otherwise "gone afterwards" below would prove nothing.
        seen_running: list[int] = []
        while not task.done() and not seen_running:
            seen_running = remote_processes(tag)
            await asyncio.sleep(0.02)
        result = await task
        elapsed = time.monotonic() - started
    assert seen_running, "the remote sleep was never seen running"
    assert result.command is not None
    assert result.command.outcome is CommandOutcome.TIMED_OUT
    assert result.word == "timed out"
    assert "1 s" in result.reason
    assert result.command.output == "started"
    assert result.command.exit_code is None
    assert elapsed < 8
    left = await asyncio.to_thread(wait_remote_processes_gone, tag, 5.0)
    assert left == [], f"remote command still running after the timeout: {left}"


async def test_wrong_port_is_a_connection_error(sshd: SshServer, pinned: Path, api: HttpServer) -> None:
    settings = make_settings(sshd, pinned, api.url, "true", PORACLE_SERVER_1_SSH_PORT=str(free_port()))
    async with open_service(settings) as service:
        result = await service.restart(settings.servers[0], TESTER)
    assert result.command is not None
    assert result.command.outcome is CommandOutcome.CONNECTION_ERROR
    assert "refused" in result.reason
    assert result.health is not None and result.health.online  # the API is still checked and reported


async def test_rejected_key_is_a_connection_error(
    sshd: SshServer, pinned: Path, api: HttpServer, marker: Path, wrong_client_key: Path
) -> None:
    settings = make_settings(sshd, pinned, api.url, f"touch {marker}", PORACLE_SSH_KEY_PATH=str(wrong_client_key))
    async with open_service(settings) as service:
        result = await service.restart(settings.servers[0], TESTER)
    assert result.command is not None
    assert result.command.outcome is CommandOutcome.CONNECTION_ERROR
    assert "rejected" in result.reason
    assert not marker.exists()


async def test_unknown_host_under_strict_is_refused(
    sshd: SshServer, tmp_path: Path, api: HttpServer, marker: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("# nothing trusted yet\n")
    settings = make_settings(sshd, known_hosts, api.url, f"touch {marker}", policy="strict")
    result = await SshRunner(settings).run(settings.servers[0], f"touch {marker}", 10)
    assert result.outcome is CommandOutcome.CONNECTION_ERROR
    assert "not trusted" in result.reason
    assert "SHA256:" in result.reason  # the offered key's fingerprint, to compare by hand
    assert not marker.exists()
    assert known_hosts.read_text() == "# nothing trusted yet\n"


@pytest.mark.parametrize("policy", ["strict", "accept-new"])
async def test_a_malformed_known_hosts_file_is_a_reason_not_a_crash(
    sshd: SshServer, tmp_path: Path, api: HttpServer, marker: Path, policy: str
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_line() + "\nhalf-a-line-edited-by-hand\n")
    settings = make_settings(sshd, known_hosts, api.url, f"touch {marker}", policy=policy)
    async with open_service(settings) as service:
        result = await service.restart(settings.servers[0], TESTER)
    assert result.command is not None
    assert result.command.outcome is CommandOutcome.CONNECTION_ERROR
    assert str(known_hosts) in result.reason
    assert "half-a-line-edited-by-hand" in result.reason  # asyncssh quotes the line it cannot read
    assert not marker.exists()
    assert service.running_restart(settings.servers[0]) is None


async def test_accept_new_pins_on_first_contact_and_runs(
    sshd: SshServer, tmp_path: Path, api: HttpServer, marker: Path
) -> None:
    known_hosts = tmp_path / "data" / "known_hosts"  # neither the file nor its directory exist yet
    settings = make_settings(sshd, known_hosts, api.url, f"touch {marker}", policy="accept-new")
    runner = SshRunner(settings)
    first = await runner.run(settings.servers[0], f"touch {marker}", 10)
    assert first.succeeded, first
    assert marker.exists()
    assert known_hosts.read_text() == sshd.known_hosts_line() + "\n"
    # The OpenSSH client trusts the pinned file as written.
    assert sshd.run("true", known_hosts=known_hosts).returncode == 0
    # The second contact uses the pin and does not add a second line.
    second = await runner.run(settings.servers[0], "echo again", 10)
    assert second.succeeded and second.output == "again"
    assert known_hosts.read_text() == sshd.known_hosts_line() + "\n"


async def test_changed_host_key_under_accept_new_is_refused(
    sshd_factory: SshdFactory, tmp_path: Path, api: HttpServer
) -> None:
    original = sshd_factory()
    known_hosts = tmp_path / "known_hosts"
    ran = original.workdir / f"ran-{uuid.uuid4().hex}"
    settings = make_settings(original, known_hosts, api.url, f"touch {ran}", policy="accept-new")
    runner = SshRunner(settings)
    assert (await runner.run(settings.servers[0], "true", 10)).succeeded
    pinned = known_hosts.read_bytes()
    assert original.host_public_key.encode() in pinned

    original.stop()
    impostor = sshd_factory(port=original.port, client_key=original.client_key)  # a fresh host key
    assert impostor.host_public_key != original.host_public_key
    result = await runner.run(settings.servers[0], f"touch {ran}", 10)
    assert result.outcome is CommandOutcome.CONNECTION_ERROR
    assert "CHANGED" in result.reason
    assert str(known_hosts) in result.reason  # tells the operator which file to fix
    assert not ran.exists()
    assert known_hosts.read_bytes() == pinned


async def test_an_edit_of_known_hosts_takes_effect_at_the_next_connection(
    sshd: SshServer, pinned: Path, api: HttpServer, marker: Path
) -> None:
    settings = make_settings(sshd, pinned, api.url, f"touch {marker}")
    runner = SshRunner(settings)  # one runner: it keeps the parsed file between connections
    assert (await runner.run(settings.servers[0], "true", 10)).succeeded
    trusted = pinned.read_text()
    # Another ed25519 key in its place: the same length, so only the text itself tells the edit apart.
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()[1]
    pinned.write_text(trusted.replace(sshd.host_public_key.split()[1], other))
    assert len(pinned.read_text()) == len(trusted)
    result = await runner.run(settings.servers[0], f"touch {marker}", 10)
    assert result.outcome is CommandOutcome.CONNECTION_ERROR
    assert "CHANGED" in result.reason
    assert not marker.exists()
    pinned.write_text(trusted)
    assert (await runner.run(settings.servers[0], f"touch {marker}", 10)).succeeded
    assert marker.exists()


def test_known_hosts_is_parsed_again_only_when_its_text_changed(sshd: SshServer, pinned: Path) -> None:
    known_hosts = KnownHosts(pinned)
    first = known_hosts.load()
    assert known_hosts.load() is first  # a thousand servers' lines are not parsed again for every connection
    pinned.write_text("# emptied by hand\n")
    assert known_hosts.load() is not first
    assert known_hosts.keys_for(sshd.host, sshd.port) == []


async def test_policy_off_connects_and_warns(
    sshd: SshServer, tmp_path: Path, api: HttpServer, marker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    known_hosts = tmp_path / "known_hosts"
    settings = make_settings(sshd, known_hosts, api.url, f"touch {marker}", policy="off")
    async with open_service(settings) as service:
        result = await service.restart(settings.servers[0], TESTER)
    assert result.succeeded, result
    assert marker.exists()
    assert not known_hosts.exists()  # nothing pinned when not checking
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "bot.core.ssh"]
    assert any("Host key checking is OFF" in line and str(sshd.port) in line for line in warnings), warnings


def write_passphrase_key(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "correct horse", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return path


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("missing", "cannot read SSH key"),
        ("directory", "cannot read SSH key"),
        ("garbage", "is not a private key"),
        ("public", "is not a private key"),
        ("passphrase", "has a passphrase"),
    ],
)
async def test_unusable_key_file_gives_a_clear_reason_and_runs_nothing(
    sshd: SshServer,
    pinned: Path,
    api: HttpServer,
    marker: Path,
    tmp_path: Path,
    kind: str,
    words: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = tmp_path / "bot_key"
    if kind == "directory":
        key.mkdir()
    elif kind == "garbage":
        key.write_text("this is not a key\n")
    elif kind == "public":
        key.write_text(read(Path(f"{sshd.client_key}.pub")))
    elif kind == "passphrase":
        write_passphrase_key(key)
    settings = make_settings(sshd, pinned, api.url, f"touch {marker}", PORACLE_SSH_KEY_PATH=str(key))
    async with open_service(settings) as service:
        result = await service.restart(settings.servers[0], TESTER)
    assert result.command is not None
    assert result.command.outcome is CommandOutcome.CONNECTION_ERROR
    assert words in result.reason
    assert str(key) in result.reason
    assert not marker.exists()
    if kind == "passphrase":
        secret = key_secret(key)
        assert secret not in caplog.text and secret not in repr(result)


async def test_a_second_restart_of_the_same_server_is_refused_at_once(
    sshd: SshServer, pinned: Path, api: HttpServer, slow_restart: SlowRestart
) -> None:
    settings = make_settings(sshd, pinned, api.url, slow_restart.command)
    async with open_service(settings) as service:
        (server,) = service.servers
        first = asyncio.create_task(service.restart(server, Requester(Origin.DISCORD, "first")))
        await slow_restart.started()
        assert service.running_restart(server) is not None
        second = await service.restart(server, Requester(Origin.DISCORD, "second"))
        assert not first.done(), "the refusal waited for the running restart"
        assert second.busy and not second.succeeded
        assert second.word == "already restarting"
        assert second.reason.startswith("a restart of this server is already running, started by first in Discord at ")
        assert second.requested_by == Requester(Origin.DISCORD, "second")
        assert second.health is None
        slow_restart.release()
        done = await first
        assert service.running_restart(server) is None
        # Once the first is over, a new restart is accepted again.
        third = await service.restart(server, Requester(Origin.DISCORD, "third"))
        audited = [row.requested_by for row in service.store.history()]
    assert done.succeeded and third.succeeded
    assert slow_restart.runs == 2  # the refused one ran nothing
    assert sorted(audited) == ["first", "third"]


def spans(results: list[RestartResult]) -> list[tuple[float, ...]]:
    """When each command's sleep began and ended, as it printed them (the remote clock is this machine's)."""
    found = [tuple(map(float, r.command.output.split()[-2:])) for r in results if r.command]
    assert len(found) == len(results) and all(len(span) == 2 for span in found), found
    return found


TIMED = "date +%s.%N; sleep 1; date +%s.%N"


async def test_restart_all_runs_distinct_ssh_targets_concurrently(
    sshd: SshServer, sshd_factory: SshdFactory, tmp_path: Path, api: HttpServer
) -> None:
    others = [sshd_factory(client_key=sshd.client_key) for _ in range(2)]
    known_hosts = trust(tmp_path / "known_hosts", sshd, *others)
    ports = {f"PORACLE_SERVER_{n}_SSH_PORT": str(other.port) for n, other in enumerate(others, 2)}
    settings = make_settings(sshd, known_hosts, api.url, TIMED, names=("One", "Two", "Three"), **ports)
    async with open_service(settings) as service:
        results = await service.restart_many(settings.select("ALL"), TESTER)
    assert [r.server for r in results] == ["One", "Two", "Three"]
    assert all(r.succeeded for r in results), results
    ran = spans(results)
    # All three sleeps were running at the same moment: every one started before any one ended. (This, not
    # the time taken, is the proof: on two busy cores three ssh logins alone can take seconds.)
    assert max(start for start, _ in ran) < min(end for _, end in ran), ran


async def test_entries_on_one_ssh_target_run_each_command_once_one_after_another(
    sshd: SshServer, pinned: Path, api: HttpServer, marker: Path
) -> None:
    # Alpha and Beta: one SSH target, one command (one pm2 behind two entries). Gamma: same target, its own.
    shared, own = f"echo shared >> {marker}; {TIMED}", f"echo own >> {marker}; {TIMED}"
    async with http_server() as beta_api:
        settings = make_settings(
            sshd, pinned, api.url, shared, names=("Alpha", "Beta", "Gamma"),
            PORACLE_SERVER_2_API=beta_api.url, PORACLE_SERVER_3_RESTART_CMD=own,
        )  # fmt: skip
        async with open_service(settings) as service:
            results = await service.restart_many(settings.select("all"), Requester(Origin.DISCORD, "alice"))
            audited = service.store.history()
        beta_checks = list(beta_api.requests)
    alpha, beta, gamma = results
    assert [r.server for r in results] == ["Alpha", "Beta", "Gamma"]
    assert all(r.succeeded for r in results), results
    assert read(marker) == "shared\nown\n"  # the shared command ran once, for both entries
    assert alpha.command is beta.command  # one run, reported for each entry on it
    # Each entry is checked on its own API: Beta's answered although Beta's command was Alpha's.
    assert beta.health is not None and beta.health.online and beta_checks == ["/health"]
    assert api.requests == ["/health", "/health"]  # Alpha's and Gamma's
    (_, shared_end), (own_start, _) = spans([alpha, gamma])
    assert own_start > shared_end, "two commands on one SSH target overlapped"
    assert sorted((row.server, row.requested_by, row.outcome) for row in audited) == [
        ("Alpha", "alice", "restarted"), ("Beta", "alice", "restarted"), ("Gamma", "alice", "restarted"),
    ]  # fmt: skip


async def test_a_restart_while_all_runs_on_its_ssh_target_is_refused_naming_the_holder(
    sshd: SshServer, pinned: Path, api: HttpServer, slow_restart: SlowRestart, marker: Path
) -> None:
    gamma_ran = marker.with_name(marker.name + "-gamma")
    settings = make_settings(
        sshd, pinned, api.url, slow_restart.command, names=("Alpha", "Beta", "Gamma"),
        PORACLE_SERVER_3_RESTART_CMD=f"touch {gamma_ran}",
    )  # fmt: skip
    alpha, beta, gamma = settings.servers
    async with open_service(settings) as service:
        everything = asyncio.create_task(service.restart_many([alpha, beta], Requester(Origin.DISCORD, "alice (1)")))
        await slow_restart.started()
        again = await service.restart(beta, TESTER)
        neighbour = await service.restart(gamma, TESTER)
        running = service.running_restart(gamma)
        slow_restart.release()
        results = await everything
    held_by = "started by alice (1) in Discord at "
    assert again.busy and again.reason.startswith(f"a restart of this server is already running, {held_by}")
    assert neighbour.busy
    assert neighbour.reason.startswith(f"a restart of Alpha, Beta on the same SSH target is already running, {held_by}")
    assert neighbour.reason.endswith(" UTC")
    assert running is not None and running.holder is not None and running.holder.servers == ("Alpha", "Beta")
    assert not gamma_ran.exists()
    assert [r.word for r in results] == ["restarted", "restarted"]
    assert slow_restart.runs == 1


async def test_a_lock_that_cannot_be_taken_runs_nothing_and_says_why(
    sshd: SshServer, pinned: Path, api: HttpServer, marker: Path
) -> None:
    settings = make_settings(sshd, pinned, api.url, f"touch {marker}")
    settings.data_dir.mkdir()
    (settings.data_dir / "locks").write_text("a file where the lock directory should be")  # fails for root too
    async with open_service(settings) as service:
        result = await service.restart(settings.servers[0], TESTER)
        (audited,) = service.store.history()
    assert result.word == "failed" and result.command is not None
    assert result.command.outcome is CommandOutcome.CONNECTION_ERROR
    assert result.reason.startswith(f"cannot use the lock file {settings.data_dir / 'locks'}/")
    assert result.reason.endswith("; nothing was run (PORACLE_DATA_DIR must be writable)")
    assert not marker.exists()
    assert audited.outcome == "failed"


async def test_after_restart_the_api_still_down_is_offline_after_the_recovery_wait(
    sshd: SshServer, pinned: Path
) -> None:
    dead = f"http://127.0.0.1:{refused_port()}"
    settings = make_settings(sshd, pinned, dead, "true")
    async with open_service(settings, recovery_wait=1, recovery_poll=0.2) as service:
        started = time.monotonic()
        result = await service.restart(settings.servers[0], TESTER)
        elapsed = time.monotonic() - started
    assert result.succeeded  # the command did succeed: the health answer is reported beside it
    assert result.command is not None
    assert result.health is not None
    assert not result.health.online
    assert result.health.reason == "connection refused"
    # It kept trying for about the recovery wait (1 s) after the command, then gave up.
    waited = elapsed - result.command.duration_s
    assert 0.7 <= waited < 2.0, waited


async def test_after_restart_the_service_coming_back_late_is_online(sshd: SshServer, pinned: Path) -> None:
    port = refused_port()
    settings = make_settings(sshd, pinned, f"http://127.0.0.1:{port}", "true")

    async def come_back_later(ready: asyncio.Event, stop: asyncio.Event) -> None:
        await asyncio.sleep(0.5)
        async with http_server(port=port):
            ready.set()
            await stop.wait()

    ready, stop = asyncio.Event(), asyncio.Event()
    async with open_service(settings, recovery_wait=10, recovery_poll=0.2) as service:
        async with asyncio.TaskGroup() as tasks:
            server_task = tasks.create_task(come_back_later(ready, stop))
            result = await service.restart(settings.servers[0], TESTER)
            stop.set()
        del server_task
    assert ready.is_set()
    assert result.health is not None and result.health.online and result.health.status == 200


async def test_once_stopping_a_restart_in_its_recovery_wait_ends_soon_and_no_new_one_starts(
    sshd: SshServer, pinned: Path, marker: Path
) -> None:
    dead = f"http://127.0.0.1:{refused_port()}"
    settings = make_settings(sshd, pinned, dead, f"echo ran >> {marker}", names=("Main", "Other"))
    main, other = settings.servers
    async with open_service(settings, recovery_wait=30, recovery_poll=0.2, stop_recovery_wait=0.5) as service:
        started = time.monotonic()
        running = asyncio.create_task(service.restart(main, TESTER))
        await eventually(lambda: lines(marker) == ["ran"], "the command")  # now waiting for Main to answer
        service.stop()
        refused = await service.restart(other, TESTER)
        assert not await service.wait_restarts(0)
        result = await running
        elapsed = time.monotonic() - started
        assert await service.wait_restarts(0)
    assert result.succeeded and result.health is not None and not result.health.online
    assert elapsed < 5, f"{elapsed:.1f} s: the 30 s recovery wait was not cut short"
    assert (refused.word, refused.reason) == ("failed", NOT_STARTED_REASON)
    assert lines(marker) == ["ran"]  # Other's command never ran
    assert [row.server for row in audit(settings.data_dir)] == ["Main"]


@pytest.mark.parametrize("how", ["interrupt", "cancel"])
async def test_a_restart_ended_before_its_command_is_interrupted_hung_up_on_and_audited(
    sshd: SshServer, pinned: Path, api: HttpServer, marker: Path, how: str
) -> None:
    # interrupt(): the bot is stopping and cannot wait; cancel: its caller is gone (Ctrl-C on the command line).
    tag = f"long-{uuid.uuid4().hex}"
    settings = make_settings(sshd, pinned, api.url, f"echo started >> {marker}; sleep 30; echo done {tag}")
    async with open_service(settings) as service:
        running = asyncio.create_task(service.restart(settings.servers[0], TESTER))
        await eventually(lambda: lines(marker) == ["started"], "the command")
        assert remote_processes(tag)  # the shell running it: proves the check below can see it
        if how == "interrupt":
            service.stop()
            service.interrupt()
            result = await running
            assert (result.word, result.reason) == ("interrupted", STOPPED_REASON)
        else:
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
        assert await service.wait_restarts(0)
    (row,) = audit(settings.data_dir)
    assert (row.outcome, row.reason, row.exit_code) == ("interrupted", STOPPED_REASON, None)
    assert await asyncio.to_thread(wait_remote_processes_gone, tag) == []
    assert lines(marker) == ["started"]


async def test_unknown_server_names_the_known_ones(sshd: SshServer, pinned: Path, api: HttpServer) -> None:
    settings = make_settings(sshd, pinned, api.url, "true", names=("Alpha", "Beta"))
    with pytest.raises(LookupError) as caught:
        settings.select("gamma")
    assert [s.name for s in settings.select("beta")] == ["Beta"]
    assert [s.name for s in settings.select(" All ")] == ["Alpha", "Beta"]
    assert "Alpha" in str(caught.value) and "Beta" in str(caught.value) and "all" in str(caught.value)


async def test_a_key_that_cannot_be_pinned_is_refused_and_says_why(
    sshd: SshServer, tmp_path: Path, api: HttpServer, marker: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the known_hosts directory should be")  # fails for root too
    settings = make_settings(sshd, blocker / "known_hosts", api.url, f"touch {marker}", policy="accept-new")
    result = await SshRunner(settings).run(settings.servers[0], f"touch {marker}", 10)
    assert result.outcome is CommandOutcome.CONNECTION_ERROR
    assert "cannot pin the host key" in result.reason and "PORACLE_SSH_KNOWN_HOSTS" in result.reason
    assert not marker.exists()


async def test_a_key_restricted_without_pty_gets_a_reason_that_names_the_fix(
    sshd_factory: SshdFactory, tmp_path: Path, api: HttpServer, marker: Path
) -> None:
    server = sshd_factory()
    authorized = server.base_dir / "authorized_keys"
    key = authorized.read_text().strip().splitlines()[-1]
    authorized.write_text(f'restrict,command="touch {marker}" {key}\n')
    settings = make_settings(server, server.write_known_hosts(tmp_path / "known_hosts"), api.url, "true")
    result = await SshRunner(settings).run(settings.servers[0], "true", 10)
    assert result.outcome is CommandOutcome.CONNECTION_ERROR
    assert "refused a terminal" in result.reason and "restrict,pty" in result.reason
    assert not marker.exists()


def _run_with_home(settings: Settings, command: str) -> tuple[str, str]:
    """In the unprivileged child: run `command` on the first server; the outcome and its reason."""
    result = asyncio.run(SshRunner(settings).run(settings.servers[0], command, 20))
    return result.outcome.value, result.reason


def test_the_ssh_client_needs_nothing_from_home_as_an_unprivileged_user(sshd: SshServer) -> None:
    """The Docker image's user once kept HOME=/root: asyncssh looked into ~/.ssh on connect and stopped with
    "cannot connect: Permission denied" before a packet left. Nothing of the bot's comes from HOME."""
    own = Path(tempfile.mkdtemp(prefix="poracle-unprivileged-"))  # not under pytest's root-only tmp dirs
    try:
        key = own / "key"
        shutil.copy(sshd.client_key, key)
        known_hosts = sshd.write_known_hosts(own / "known_hosts")
        if os.geteuid() == 0:
            for path in (own, key, known_hosts):
                os.chown(path, UNPRIVILEGED, UNPRIVILEGED)
        key.chmod(0o600)
        settings = make_settings(sshd, known_hosts, "http://127.0.0.1:9", "true", PORACLE_SSH_KEY_PATH=str(key))
        home = own / "someone-elses-home"  # as /root is to uid 1000: no way in
        (home / ".ssh").mkdir(parents=True)
        home.chmod(0o700)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HOME", str(home))
            outcome = run_unprivileged(_run_with_home, settings, "echo hello")
    finally:
        shutil.rmtree(own, ignore_errors=True)
    assert outcome == ("succeeded", "exit code 0")
