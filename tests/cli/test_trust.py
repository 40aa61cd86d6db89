"""`poracle-bot trust` against a real sshd: pins the host key it is shown, refuses without confirmation, and
says loudly when a different key is pinned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.trust import trust_servers
from bot.config import Settings, load_settings
from bot.core.hostkeys import KnownHosts
from bot.core.ssh import SshRunner
from tests.support.cli import cli, write_env
from tests.support.sshd import SshdFactory, SshServer, free_port

OTHER_HOST_LINE = "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"


def settings_for(sshd: SshServer, known_hosts: Path, policy: str = "strict") -> Settings:
    return load_settings(
        {
            "PORACLE_SSH_KEY_PATH": str(sshd.client_key),
            "PORACLE_SSH_KNOWN_HOSTS": str(known_hosts),
            "PORACLE_SSH_HOST_KEY_POLICY": policy,
            "PORACLE_SSH_CONNECT_TIMEOUT": "5",
            "PORACLE_SERVER_1_NAME": "Main",
            "PORACLE_SERVER_1_HOST": sshd.host,
            "PORACLE_SERVER_1_SSH_PORT": str(sshd.port),
            "PORACLE_SERVER_1_SSH_USER": sshd.user,
            "PORACLE_SERVER_1_API": "http://127.0.0.1:9",
        }
    )


class Answers:
    """What a person types at each confirmation prompt; remembers the questions."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.questions: list[str] = []

    def __call__(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer


def pinned_keys(settings: Settings, sshd: SshServer) -> list[str]:
    keys = KnownHosts(settings.ssh_known_hosts).keys_for(sshd.host, sshd.port)
    return [key.export_public_key().decode().strip() for key in keys]


async def test_pins_the_host_key_and_a_strict_login_then_works(
    sshd: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(sshd, tmp_path / "data" / "known_hosts")
    server = settings.servers[0]
    before = await SshRunner(settings).run(server, "true", 10)
    assert not before.succeeded and "not trusted" in before.reason

    answers = Answers(True)
    assert await trust_servers(settings, settings.servers, assume_yes=False, confirm=answers) == 0
    out = capsys.readouterr().out
    assert "SHA256:" in out and "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub" in out
    assert len(answers.questions) == 1
    assert pinned_keys(settings, sshd) == [sshd.host_public_key]
    assert settings.ssh_known_hosts.read_text() == sshd.known_hosts_line() + "\n"

    after = await SshRunner(settings).run(server, "true", 10)
    assert after.succeeded, after


async def test_refuses_without_confirmation(
    sshd: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(sshd, tmp_path / "known_hosts")
    assert await trust_servers(settings, settings.servers, assume_yes=False, confirm=Answers(False)) == 1
    assert "Main: nothing pinned" in capsys.readouterr().out
    assert not settings.ssh_known_hosts.exists()


def test_cli_without_a_terminal_pins_nothing_and_with_yes_pins(sshd: SshServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    env_file = tmp_path / ".env"
    env_file.write_text(
        "\n".join(
            f"{name}={value}"
            for name, value in {
                "PORACLE_SSH_KEY_PATH": sshd.client_key,
                "PORACLE_SSH_KNOWN_HOSTS": known_hosts,
                "PORACLE_SERVER_1_NAME": "Main",
                "PORACLE_SERVER_1_HOST": sshd.host,
                "PORACLE_SERVER_1_SSH_PORT": sshd.port,
                "PORACLE_SERVER_1_SSH_USER": sshd.user,
                "PORACLE_SERVER_1_API": "http://127.0.0.1:9",
            }.items()
        )
    )

    def trust(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "bot", "--env-file", str(env_file), "trust", *args]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    refused = trust("Main")
    assert refused.returncode == 1, refused
    assert "nothing pinned" in refused.stdout
    assert not known_hosts.exists()

    pinned = trust("--yes")  # all servers by default
    assert pinned.returncode == 0, pinned
    assert known_hosts.read_text() == sshd.known_hosts_line() + "\n"

    again = trust("main")
    assert again.returncode == 0
    assert "already pinned" in again.stdout
    assert known_hosts.read_text() == sshd.known_hosts_line() + "\n"

    unknown = trust("nope")
    assert unknown.returncode == 1
    assert "no server called 'nope'" in unknown.stderr


@pytest.fixture
def reinstalled(sshd: SshServer, sshd_factory: SshdFactory, tmp_path: Path) -> tuple[SshServer, Path, str]:
    """A server whose host key changed (same login): known_hosts pins its old key among other lines.
    Returns the server, the known_hosts file and that file's text."""
    server = sshd_factory(client_key=sshd.client_key)
    known_hosts = tmp_path / "known_hosts"
    text = "# pinned by hand\n" + OTHER_HOST_LINE + f"[127.0.0.1]:{server.port} {sshd.host_public_key}\n"
    known_hosts.write_text(text)
    return server, known_hosts, text


async def test_a_changed_key_is_replaced_only_with_replace_and_confirmation(
    reinstalled: tuple[SshServer, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    server, known_hosts, before = reinstalled
    settings = settings_for(server, known_hosts)

    answers = Answers(True)  # a person who would say yes to anything is not even asked without --replace
    assert await trust_servers(settings, settings.servers, assume_yes=False, confirm=answers) == 1
    out = capsys.readouterr().out
    assert "WARNING" in out and "has CHANGED" in out and "intercepting" in out
    assert "poracle-bot trust Main --replace" in out
    assert answers.questions == []
    assert known_hosts.read_bytes() == before.encode()

    answers = Answers(False)
    assert await trust_servers(settings, settings.servers, assume_yes=False, replace=True, confirm=answers) == 1
    assert answers.questions and "Replace" in answers.questions[0]
    assert known_hosts.read_bytes() == before.encode()

    assert await trust_servers(settings, settings.servers, assume_yes=False, replace=True, confirm=Answers(True)) == 0
    assert pinned_keys(settings, server) == [server.host_public_key]
    assert known_hosts.read_text() == "# pinned by hand\n" + OTHER_HOST_LINE + server.known_hosts_line() + "\n"
    assert (await SshRunner(settings).run(settings.servers[0], "true", 10)).succeeded


async def test_cli_yes_alone_never_replaces_a_changed_key(reinstalled: tuple[SshServer, Path, str]) -> None:
    server, known_hosts, before = reinstalled
    directory = known_hosts.parent
    env = {
        "PORACLE_SSH_KEY_PATH": str(server.client_key),
        "PORACLE_SSH_KNOWN_HOSTS": str(known_hosts),
        "PORACLE_SERVER_1_NAME": "Main",
        "PORACLE_SERVER_1_HOST": server.host,
        "PORACLE_SERVER_1_SSH_PORT": str(server.port),
        "PORACLE_SERVER_1_SSH_USER": server.user,
        "PORACLE_SERVER_1_API": "http://127.0.0.1:9",
    }
    write_env(directory, **env)
    refused = await cli(directory, "trust", "Main", "--yes")
    assert refused.code == 1, refused
    assert "has CHANGED" in refused.out and "poracle-bot trust Main --replace" in refused.out
    assert known_hosts.read_bytes() == before.encode()

    unanswered = await cli(directory, "trust", "Main", "--replace")  # no terminal: nobody confirmed
    assert unanswered.code == 1, unanswered
    assert known_hosts.read_bytes() == before.encode()

    replaced = await cli(directory, "trust", "--replace", "--yes")
    assert replaced.code == 0, replaced
    assert known_hosts.read_text() == "# pinned by hand\n" + OTHER_HOST_LINE + server.known_hosts_line() + "\n"


async def test_cli_pins_into_the_data_directory_when_known_hosts_is_not_set(sshd: SshServer, tmp_path: Path) -> None:
    data = tmp_path / "state"
    env = {
        "PORACLE_SSH_KEY_PATH": str(sshd.client_key),
        "PORACLE_DATA_DIR": str(data),
        "PORACLE_SERVER_1_HOST": sshd.host,
        "PORACLE_SERVER_1_SSH_PORT": str(sshd.port),
        "PORACLE_SERVER_1_API": "http://127.0.0.1:9",
    }
    write_env(tmp_path, **env)
    run = await cli(tmp_path, "trust", "--yes")
    assert run.code == 0, run
    assert f"in {data / 'known_hosts'}" in run.out
    assert (data / "known_hosts").read_text() == sshd.known_hosts_line() + "\n"


async def test_unreachable_server_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(
        {
            "PORACLE_SSH_KNOWN_HOSTS": str(tmp_path / "known_hosts"),
            "PORACLE_SERVER_1_NAME": "Main",
            "PORACLE_SERVER_1_HOST": "127.0.0.1",
            "PORACLE_SERVER_1_SSH_PORT": str(free_port()),
            "PORACLE_SERVER_1_API": "http://127.0.0.1:9",
        }
    )
    assert await trust_servers(settings, settings.servers, assume_yes=True, confirm=Answers(True)) == 1
    assert "Main: cannot fetch the host key" in capsys.readouterr().out
    assert not settings.ssh_known_hosts.exists()
