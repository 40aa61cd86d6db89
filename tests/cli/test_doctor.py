"""`poracle-bot doctor` against a real sshd and a real HTTP API on 127.0.0.1: each problem it claims to find
gives its own line and a non-zero exit; all good gives 0; it never pins a key or runs anything remotely."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.core.store import Store
from tests.support.cli import User, cli, unprivileged_user, write_env
from tests.support.doctor import doctor, doctor_env, only, pin
from tests.support.local_http import HttpServer, http_server, refused_port
from tests.support.poracle_http import PoracleJsLike, PoracleNgLike, poracle_js, poracle_ng
from tests.support.sshd import SshdFactory, SshServer, generate_key


@pytest.fixture
async def api() -> AsyncIterator[HttpServer]:
    async with http_server() as http:
        yield http


async def test_all_good_exits_0_with_a_checklist(
    sshd: SshServer, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known_hosts = pin(sshd, tmp_path)
    env = doctor_env(sshd, api.url, tmp_path, PORACLE_SSH_HOST_KEY_POLICY="strict")
    code, lines = await doctor(env, capsys)
    assert code == 0, lines
    assert lines[-1] == "All good."
    assert all(line.startswith("[ OK ]") for line in lines[:-1] if not line.startswith("[NOTE] Main: ")), lines
    assert only(lines, "Main: API answers (HTTP 200,")
    assert only(lines, "Main: host key ssh-ed25519 SHA256:", "is pinned")
    assert only(lines, f"Main: SSH login as {sshd.user}@127.0.0.1 works")
    assert only(lines, "SSH key:", "no passphrase")
    assert known_hosts.read_text() == sshd.known_hosts_line() + "\n"
    assert api.requests == ["/health"]


async def test_login_runs_nothing_on_the_server(
    sshd_factory: SshdFactory, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = sshd_factory()  # its own log: no other test's sessions in it
    code, lines = await doctor(doctor_env(server, api.url, tmp_path), capsys)
    assert code == 0, lines
    log = server.log()
    assert "Accepted publickey" in log
    assert "Starting session" not in log, log  # no channel: not even a `command=` forced command would run


async def test_unknown_key_under_accept_new_is_a_warning_and_not_pinned(
    sshd: SshServer, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = doctor_env(sshd, api.url, tmp_path, PORACLE_SSH_HOST_KEY_POLICY="accept-new")
    code, lines = await doctor(env, capsys)
    assert code == 0, lines
    line = only(lines, "[WARN] Main: host key ssh-ed25519 SHA256:", "not pinned yet")
    assert "poracle-bot trust Main" in line
    assert only(lines, "[ OK ] Main: SSH login as")  # the login was still checked
    assert not (tmp_path / "data" / "known_hosts").exists()


async def test_missing_discord_settings_are_warnings_only(
    sshd: SshServer, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin(sshd, tmp_path)
    env = doctor_env(sshd, api.url, tmp_path)
    for name in ("DISCORD_TOKEN", "DISCORD_ADMIN_ROLE_IDS", "DISCORD_ALERT_CHANNEL_ID"):
        del env[name]
    code, lines = await doctor(env, capsys)
    assert code == 0, lines
    assert only(lines, "[WARN] Discord: DISCORD_TOKEN")
    assert only(lines, "[WARN] Discord: DISCORD_ADMIN_ROLE_IDS")


async def test_missing_key(
    sshd: SshServer, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin(sshd, tmp_path)
    missing = tmp_path / "no_such_key"
    code, lines = await doctor(doctor_env(sshd, api.url, tmp_path, PORACLE_SSH_KEY_PATH=str(missing)), capsys)
    assert code == 1
    line = only(lines, "[FAIL] SSH key: cannot read SSH key", str(missing))
    assert "PORACLE_SSH_KEY_PATH" in line
    assert not [line for line in lines if "SSH login" in line]  # reported once, at the key
    assert lines[-1] == "1 problem(s) found."


@pytest.fixture
def locked_key(tmp_path: Path) -> Path:
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(key)], check=True)
    return key


async def test_key_with_a_passphrase(
    sshd: SshServer, locked_key: Path, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin(sshd, tmp_path)
    key = locked_key
    code, lines = await doctor(doctor_env(sshd, api.url, tmp_path, PORACLE_SSH_KEY_PATH=str(key)), capsys)
    assert code == 1
    assert only(lines, "[FAIL] SSH key:", "has a passphrase")


async def test_public_half_instead_of_the_private_key(
    sshd: SshServer, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin(sshd, tmp_path)
    env = doctor_env(sshd, api.url, tmp_path, PORACLE_SSH_KEY_PATH=f"{sshd.client_key}.pub")
    code, lines = await doctor(env, capsys)
    assert code == 1
    assert only(lines, "[FAIL] SSH key:", "is not a private key")


async def test_rejected_key(
    sshd: SshServer, wrong_client_key: Path, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin(sshd, tmp_path)
    env = doctor_env(sshd, api.url, tmp_path, PORACLE_SSH_KEY_PATH=str(wrong_client_key))
    code, lines = await doctor(env, capsys)
    assert code == 1
    assert only(lines, "[ OK ] SSH key:")  # the key itself is fine: the server does not accept it
    line = only(lines, "[FAIL] Main: SSH login as", "SSH key rejected by")
    assert "authorized_keys" in line


async def test_unknown_host_key_under_strict(
    sshd: SshServer, sshd_factory: SshdFactory, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = sshd_factory(client_key=sshd.client_key)  # its own log: a login there would show
    env = doctor_env(unknown, api.url, tmp_path, PORACLE_SSH_HOST_KEY_POLICY="strict")
    code, lines = await doctor(env, capsys)
    assert code == 1
    line = only(lines, "[FAIL] Main: host key ssh-ed25519", "not pinned and the policy is strict")
    assert "poracle-bot trust Main" in line
    assert not (tmp_path / "data" / "known_hosts").exists()
    # The bot would not log in to a key nobody pinned: neither does doctor.
    assert not [line for line in lines if "SSH login" in line]
    assert "Accepted publickey" not in unknown.log()


@pytest.mark.parametrize("policy", ["strict", "accept-new"])
async def test_changed_host_key(
    policy: str,
    sshd: SshServer,
    sshd_factory: SshdFactory,
    api: HttpServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    impostor = sshd_factory(client_key=sshd.client_key)  # same login, another host key
    known_hosts = tmp_path / "data" / "known_hosts"
    known_hosts.parent.mkdir()
    known_hosts.write_text(f"[127.0.0.1]:{impostor.port} {sshd.host_public_key}\n")
    env = doctor_env(impostor, api.url, tmp_path, PORACLE_SSH_HOST_KEY_POLICY=policy)
    code, lines = await doctor(env, capsys)
    assert code == 1
    line = only(lines, "[FAIL] Main: host key has CHANGED")
    assert "poracle-bot trust Main" in line
    assert not [line for line in lines if "SSH login" in line]  # no login to a possible man in the middle
    assert "Accepted publickey" not in impostor.log()
    assert known_hosts.read_text() == f"[127.0.0.1]:{impostor.port} {sshd.host_public_key}\n"


async def test_api_down(sshd: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pin(sshd, tmp_path)
    code, lines = await doctor(doctor_env(sshd, f"http://127.0.0.1:{refused_port()}", tmp_path), capsys)
    assert code == 1
    line = only(lines, "[FAIL] Main: API does not answer", "connection refused")
    assert "0.0.0.0" in line


async def test_a_server_refusing_the_bot_or_stuck_is_a_warning_with_the_fix(
    sshd: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin(sshd, tmp_path)
    refusing, stuck = PoracleJsLike(refusing="ip 127.0.0.1 not in whitelist"), PoracleNgLike(queue=350)
    async with poracle_js(refusing) as js, poracle_ng(stuck) as ng:
        env = doctor_env(sshd, js.url, tmp_path, PORACLE_SSH_HOST_KEY_POLICY="strict")
        env |= {f"PORACLE_SERVER_2_{k}": v for k, v in {"NAME": "NG", "HOST": sshd.host, "API": ng.url}.items()}
        env |= {"PORACLE_SERVER_2_SSH_PORT": str(sshd.port), "PORACLE_SERVER_2_SSH_USER": sshd.user}
        code, lines = await doctor(env | {"PORACLE_SERVER_2_METRICS": "on"}, capsys)
        stuck.queue = 0
        _, healthy = await doctor(env | {"PORACLE_SERVER_2_METRICS": "on"}, capsys)
    assert code == 0, lines  # warnings: the bot can still watch and restart them
    js_line = only(lines, "[WARN] Main: API answers (HTTP 200, ")
    assert js_line.endswith(") but refuses the bot: ip 127.0.0.1 not in whitelist — add the bot's IP address to "
        "PoracleJS's server.ipWhitelist (config/local.json) or PoracleNG's [processor] ip_whitelist "
        "(config/config.toml), and take it off their blacklist")  # fmt: skip
    assert only(lines, "[WARN] NG: API answers", "but delivery queue 350 > 180 — PoracleNG makes alerts faster")
    assert only(healthy, "[ OK ] NG: API answers (HTTP 200, ").endswith(
        "; status healthy, version 5.1.0, delivery queue 0, 0 webhooks received)"
    )


async def test_ssh_not_reachable(api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = generate_key(tmp_path / "key")
    env = {
        "PORACLE_SSH_KEY_PATH": str(key),
        "PORACLE_SSH_KNOWN_HOSTS": str(tmp_path / "known_hosts"),
        "PORACLE_SERVER_1_NAME": "Main",
        "PORACLE_SERVER_1_HOST": "127.0.0.1",
        "PORACLE_SERVER_1_SSH_PORT": str(refused_port()),
        "PORACLE_SERVER_1_API": api.url,
    }
    code, lines = await doctor(env, capsys)
    assert code == 1
    assert only(lines, "[FAIL] Main: cannot reach SSH at", "connection refused")


@pytest.fixture
def bot_home() -> Iterator[tuple[User, Path]]:
    """A directory of the unprivileged user the CLI runs as, with a private key of theirs in it. Not under
    tmp_path: pytest's temporary directories are root's alone (mode 0700) when the tests run as root."""
    user = unprivileged_user()
    home = Path(tempfile.mkdtemp(prefix="poracle-doctor-"))
    generate_key(home / "key")
    for path in (home, home / "key", home / "key.pub"):
        os.chown(path, user.uid, user.gid)
    yield user, home
    for directory in [home, *home.rglob("*")]:  # a test's read-only directories: not root, rmtree needs w
        if directory.is_dir():
            directory.chmod(0o755)
    shutil.rmtree(home)


def as_bot_user(user: User, path: Path, mode: int | None = None) -> Path:
    os.chown(path, user.uid, user.gid)
    if mode is not None:
        path.chmod(mode)
    return path


def state_dir(user: User, home: Path) -> Path:
    """The bot's data directory with a real database in it, all the bot user's."""
    data = home / "data"
    Store.open(data).close()
    for path in data.iterdir():
        as_bot_user(user, path)
    return as_bot_user(user, data)


def unprivileged_env(home: Path, **extra: str) -> dict[str, str]:
    """Doctor for one server that does not answer (its lines are not what these tests are about)."""
    return {
        "PORACLE_SSH_KEY_PATH": str(home / "key"),
        "PORACLE_DATA_DIR": str(home / "data"),
        "PORACLE_SERVER_1_NAME": "Main",
        "PORACLE_SERVER_1_HOST": "127.0.0.1",
        "PORACLE_SERVER_1_SSH_PORT": str(refused_port()),
        "PORACLE_SERVER_1_API": f"http://127.0.0.1:{refused_port()}",
    } | extra


def listing(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file below `directory` with its size and mode: doctor must leave it as it was."""
    return {
        str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mode) for path in directory.rglob("*")
    }


def a_file_in_the_way(user: User, home: Path) -> dict[str, str]:
    (home / "a-file").write_text("")  # a directory path through a file: root cannot write there either
    return {"PORACLE_DATA_DIR": str(home / "a-file" / "data")}


def known_hosts_through_a_file(user: User, home: Path) -> dict[str, str]:
    (home / "a-file").write_text("")
    return {"PORACLE_SSH_KNOWN_HOSTS": str(home / "a-file" / "known_hosts")}


def read_only_data_dir(user: User, home: Path) -> dict[str, str]:
    state_dir(user, home).chmod(0o555)
    return {}


def read_only_database(user: User, home: Path) -> dict[str, str]:
    (state_dir(user, home) / "poracle.db").chmod(0o444)  # say, left by a `restart` run as another user
    return {}


def read_only_wal(user: User, home: Path) -> dict[str, str]:
    wal = state_dir(user, home) / "poracle.db-wal"  # SQLite's write-ahead log, there while the bot runs
    wal.touch()
    as_bot_user(user, wal, 0o444)
    return {}


def read_only_known_hosts(user: User, home: Path) -> dict[str, str]:
    data = state_dir(user, home)
    (data / "known_hosts").write_text("")
    as_bot_user(user, data / "known_hosts", 0o444)
    return {}


def known_hosts_in_a_read_only_directory(user: User, home: Path) -> dict[str, str]:
    state_dir(user, home)
    keys = home / "keys"
    keys.mkdir()
    as_bot_user(user, keys, 0o555)
    return {"PORACLE_SSH_KNOWN_HOSTS": str(keys / "known_hosts")}


@pytest.mark.parametrize(
    ("make", "subject", "words"),
    [
        (a_file_in_the_way, "Data", "is not a directory"),
        (read_only_data_dir, "Data", "Permission denied"),
        (read_only_database, "Data", "poracle.db: Permission denied"),
        (read_only_wal, "Data", "poracle.db-wal: Permission denied"),
        (known_hosts_through_a_file, "Host keys", "is not a directory"),
        (read_only_known_hosts, "Host keys", "known_hosts: Permission denied"),
        (known_hosts_in_a_read_only_directory, "Host keys", "Permission denied"),
    ],
)
async def test_state_the_bot_user_cannot_write_fails(
    bot_home: tuple[User, Path], make: Callable[[User, Path], dict[str, str]], subject: str, words: str
) -> None:
    user, home = bot_home
    write_env(home, **unprivileged_env(home, **make(user, home)))
    before = listing(home)
    run = await cli(home, "doctor", as_user=user)
    assert run.code == 1, run
    line = only(run.out.splitlines(), f"[FAIL] {subject}:", "cannot be written")
    assert words in line, line
    assert listing(home) == before  # no scratch file left, no SQLite file created, no mode changed


async def test_state_the_bot_user_can_write_passes_and_is_left_as_it_was(bot_home: tuple[User, Path]) -> None:
    user, home = bot_home
    data = state_dir(user, home)
    (data / "known_hosts").write_text("")
    as_bot_user(user, data / "known_hosts")
    write_env(home, **unprivileged_env(home))
    before = listing(home)
    run = await cli(home, "doctor", as_user=user)
    lines = run.out.splitlines()
    assert only(lines, f"[ OK ] Data: {data} is writable")
    assert only(lines, f"[ OK ] Host keys: {data / 'known_hosts'} is usable (policy accept-new)")
    assert listing(home) == before


@pytest.mark.parametrize("relative", [False, True])
async def test_a_data_directory_not_made_yet_is_named_where_it_will_be(
    sshd: SshServer,
    api: HttpServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    relative: bool,
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative PORACLE_DATA_DIR is relative to where the bot starts
    fresh = tmp_path / "state" / "fresh"
    setting = "state/fresh" if relative else str(fresh)
    env = doctor_env(sshd, api.url, tmp_path, PORACLE_DATA_DIR=setting, PORACLE_SSH_KNOWN_HOSTS=str(tmp_path / "kh"))
    code, lines = await doctor(env, capsys)
    shown = f"state/fresh (from here: {fresh})" if relative else str(fresh)
    assert only(lines, "Data:") == f"[ OK ] Data: {shown} does not exist yet; the bot can create it", (code, lines)
    assert not (tmp_path / "state").exists()  # doctor made nothing


async def test_a_file_that_is_not_a_database_fails(
    sshd: SshServer, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin(sshd, tmp_path)
    (tmp_path / "data" / "poracle.db").write_text("not a database\n")
    code, lines = await doctor(doctor_env(sshd, api.url, tmp_path), capsys)
    assert code == 1
    assert only(lines, "[FAIL] Data:", "poracle.db is not a SQLite database")


async def test_known_hosts_lines_that_cannot_be_used_are_named_by_number(
    sshd: SshServer, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known_hosts = pin(sshd, tmp_path)
    good = known_hosts.read_text()
    garbage = "# a comment is fine\n\ngarbage\nhost ssh-ed25519 not-base64\n|1|bad|hash ssh-ed25519 AAAA\n@bogus h k\n"
    known_hosts.write_text(good + garbage)
    code, lines = await doctor(doctor_env(sshd, api.url, tmp_path), capsys)
    assert code == 1, lines
    line = only(lines, "[FAIL] Host keys:", f"{known_hosts} line 4:", "garbage")
    assert "also line(s) 5, 6, 7" in line
    assert not [line for line in lines if "host key" in line or "SSH login" in line]  # not compared, no login
    assert only(lines, "[ OK ] Main: API answers")
    assert lines[-1] == "1 problem(s) found."
    assert known_hosts.read_text() == good + garbage


async def test_a_key_asyncssh_would_skip_without_a_word_fails(
    sshd: SshServer, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known_hosts = pin(sshd, tmp_path)
    known_hosts.write_text(known_hosts.read_text() + "other.example ssh-ed25519 AAAAnot-a-key\n")
    code, lines = await doctor(doctor_env(sshd, api.url, tmp_path), capsys)
    assert code == 1, lines
    assert only(lines, "[FAIL] Host keys:", "line 2: no host key asyncssh can read")


async def test_two_servers_each_get_their_lines(
    sshd: SshServer, api: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin(sshd, tmp_path)
    env = doctor_env(sshd, api.url, tmp_path) | {
        "PORACLE_SERVER_2_NAME": "Secondary",
        "PORACLE_SERVER_2_HOST": "127.0.0.1",
        "PORACLE_SERVER_2_API": f"http://127.0.0.1:{refused_port()}",
        "PORACLE_SERVER_2_SSH_PORT": str(refused_port()),
    }
    code, lines = await doctor(env, capsys)
    assert code == 1
    assert only(lines, "[ OK ] Main: API answers")
    assert only(lines, "[FAIL] Secondary: API does not answer")
    assert only(lines, "[FAIL] Secondary: cannot reach SSH")
    assert lines[-1] == "2 problem(s) found."


def test_bad_config_lists_each_problem_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "PORACLE_SERVER_1_HOST=not a host\nPORACLE_SERVER_1_API=ftp://x\nPORACLE_SSH_HOST_KEY_POLICY=maybe\n"
    )
    code = main(["--env-file", str(env_file), "doctor"])
    out, err = capsys.readouterr()
    assert code == 2  # a configuration error, as for every other command
    lines = out.splitlines()
    assert only(lines, "[FAIL] Configuration: PORACLE_SERVER_1_HOST")
    assert only(lines, "[FAIL] Configuration: PORACLE_SERVER_1_API")
    assert only(lines, "[FAIL] Configuration: PORACLE_SSH_HOST_KEY_POLICY")
    assert "Traceback" not in out + err
