"""The cross-process lock on real files with the real flock(2), in this process and in others (also as an
unprivileged user); how the service keys restarts and words a refusal."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from bot.config import ServerConfig
from bot.core.locks import HeldLock, Holder, LockDir, Locked, LockError
from bot.core.service import refusal_reason, restart_lock_key
from tests.support.unprivileged import FORK, UNPRIVILEGED, become_unprivileged

KEY = "restart-root@127.0.0.1:22"
SINCE = datetime(2025, 6, 1, 14, 2, 3, tzinfo=UTC)
ALICE = Holder("alice (123) in Discord", ("Main",), SINCE)
ROOT = Holder("root on the command line (pid 4242)", ("Main", "Backup"), SINCE, pid=4242)


@pytest.fixture
def locks(tmp_path: Path) -> LockDir:
    return LockDir(tmp_path / "data" / "locks")


@pytest.fixture
def file_lock(locks: LockDir) -> Iterator[Any]:
    """Take the flock of KEY's file directly, as another process would, without writing a record."""
    opened: list[int] = []

    def take(mode: int) -> int:
        locks.directory.mkdir(parents=True, exist_ok=True)
        opened.append(os.open(locks.path(KEY), os.O_RDWR | os.O_CREAT))
        fcntl.flock(opened[-1], mode | fcntl.LOCK_NB)
        return opened[-1]

    yield take
    for fd in opened:
        os.close(fd)


async def test_the_first_lock_makes_the_directory_records_its_holder_and_release_empties_it(
    locks: LockDir,
) -> None:
    assert not locks.directory.exists()
    held = await locks.acquire(KEY, ALICE)
    assert isinstance(held, HeldLock)
    mode = stat.S_IMODE(locks.directory.stat().st_mode)
    assert mode & 0o700 == 0o700 and mode & 0o022 == 0, oct(mode)  # the bot's own, writable by it alone
    path = locks.directory / "restart-root@127.0.0.1:22.lock"  # named for the target: an operator can tell
    assert locks.path(KEY) == path
    assert stat.S_IMODE(path.stat().st_mode) & 0o022 == 0
    assert Holder.decode(path.read_bytes()) == ALICE
    assert locks.locked(KEY) == Locked(KEY, ALICE)
    held.release()
    held.release()  # twice is harmless
    assert path.read_bytes() == b""
    assert locks.locked(KEY) is None
    again = await locks.acquire(KEY, ROOT)
    assert isinstance(again, HeldLock)
    again.release()


async def test_a_second_taker_is_refused_at_once_even_in_the_same_process_and_told_who(tmp_path: Path) -> None:
    locks = LockDir(tmp_path / "locks", settle=5)  # a wait for a record would show as seconds below
    with await locks.acquire(KEY, ALICE) as held:
        assert isinstance(held, HeldLock)
        started = time.monotonic()
        refused = await locks.acquire(KEY, ROOT)
        assert time.monotonic() - started < 1.0
        assert refused == Locked(KEY, ALICE)
        other = await locks.acquire("restart-root@127.0.0.1:2222", ROOT)  # another key is another lock
        assert isinstance(other, HeldLock)
        other.release()
    assert locks.locked(KEY) is None  # the `with` block released it


async def test_a_look_at_the_lock_does_not_refuse_a_taker(locks: LockDir, file_lock: Any) -> None:
    looking = file_lock(fcntl.LOCK_SH)  # what `LockDir.locked` takes, for a moment, in another process
    taking = asyncio.create_task(locks.acquire(KEY, ALICE))
    await asyncio.sleep(0)  # its first try has run: refused, and no record to show, so it waits
    assert not taking.done()
    fcntl.flock(looking, fcntl.LOCK_UN)
    held = await taking
    assert isinstance(held, HeldLock)
    held.release()


async def test_a_lock_held_without_a_record_is_refused_after_the_settle_time(locks: LockDir, file_lock: Any) -> None:
    file_lock(fcntl.LOCK_EX)  # a holder that has not written its record (yet)
    started = time.monotonic()
    refused = await LockDir(locks.directory, settle=0.2).acquire(KEY, ALICE)
    assert time.monotonic() - started >= 0.2
    assert refused == Locked(KEY, None)
    assert (
        refusal_reason("Main", refused) == "a restart of this server is already running (its holder could not be read)"
    )


async def test_a_crashed_holders_record_is_not_believed(locks: LockDir) -> None:
    locks.directory.mkdir(parents=True)
    locks.path(KEY).write_bytes(ALICE.encode())  # left by a holder that died: the file is not locked
    assert locks.locked(KEY) is None
    assert locks.path(KEY).read_bytes() == b""  # cleared, so no refusal names the dead holder
    held = await locks.acquire(KEY, ROOT)
    assert isinstance(held, HeldLock)
    assert locks.locked(KEY) == Locked(KEY, ROOT)
    held.release()


async def test_an_unusable_lock_directory_is_an_error_that_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "locks"
    blocker.write_text("a file where the lock directory should be")  # fails for root too
    locks = LockDir(blocker)
    with pytest.raises(LockError) as caught:
        await locks.acquire(KEY, ALICE)
    assert str(caught.value).startswith(f"cannot use the lock file {blocker / 'restart-root@127.0.0.1:22.lock'}: ")
    assert locks.locked(KEY) is None  # a look cannot tell; taking the lock says why


@pytest.mark.parametrize(
    "raw",
    [b"", b'{"who": "alice"', b"[]", b'{"who": 1, "servers": [], "since": "2025-06-01T14:02:03+00:00", "pid": 1}',
     b'{"who": "a", "servers": "Main", "since": "2025-06-01T14:02:03+00:00", "pid": 1}',
     b'{"who": "a", "servers": ["Main"], "since": "yesterday", "pid": 1}'],
    ids=["empty", "half-written", "not-an-object", "who-not-text", "servers-not-a-list", "since-not-a-time"],
)  # fmt: skip
def test_a_record_that_is_not_one_names_nobody(raw: bytes) -> None:
    assert Holder.decode(raw) is None


# -- in other processes: a real unprivileged user, as the Docker image runs the bot


def _take_and_report(directory: str, who: str, pipe: Connection, hold: bool) -> None:
    """A child process: become the unprivileged user, try the lock, say what happened; if it got the lock
    and `hold`, keep it until the parent says so."""
    become_unprivileged()

    async def run() -> None:
        taken = await LockDir(Path(directory)).acquire(KEY, Holder(who, ("Main",), SINCE))
        if isinstance(taken, Locked):
            pipe.send(("refused", taken.holder.who if taken.holder else None, taken.holder and taken.holder.pid))
            return
        pipe.send(("held", who, os.getpid()))
        if hold:
            pipe.recv()
        taken.release()

    asyncio.run(run())


def test_an_unprivileged_user_makes_and_shares_the_locks_in_a_data_dir_it_owns() -> None:
    fork = FORK
    data = Path(tempfile.mkdtemp(prefix="poracle-locks-"))
    try:
        if os.geteuid() == 0:
            os.chown(data, UNPRIVILEGED, UNPRIVILEGED)
        os.chmod(data, 0o755)
        directory = str(data / "locks")

        def child(who: str, hold: bool) -> tuple[Any, Connection]:
            ours, theirs = fork.Pipe()
            process = fork.Process(target=_take_and_report, args=(directory, who, theirs, hold))
            process.start()
            return process, ours

        first, first_pipe = child("first", True)
        assert first_pipe.poll(15), "the first child never reported"
        state, _, first_pid = first_pipe.recv()
        assert state == "held"
        second, second_pipe = child("second", False)
        second.join(15)
        assert second_pipe.recv() == ("refused", "first", first_pid)
        first_pipe.send("release")
        first.join(15)
        third, third_pipe = child("third", False)
        third.join(15)
        assert third_pipe.recv()[0] == "held"
        assert [p.exitcode for p in (first, second, third)] == [0, 0, 0]

        made = (data / "locks").stat()
        lock_file = (data / "locks" / "restart-root@127.0.0.1:22.lock").stat()
        owner = UNPRIVILEGED if os.geteuid() == 0 else os.geteuid()
        assert (made.st_uid, lock_file.st_uid) == (owner, owner)
        assert stat.S_IMODE(made.st_mode) & 0o022 == 0
    finally:
        shutil.rmtree(data, ignore_errors=True)


# -- how the service keys a restart and words a refusal


def server(host: str, user: str = "root", port: int = 22) -> ServerConfig:
    return ServerConfig(
        index=1, name="Main", host=host, api="http://192.0.2.1", ssh_user=user, ssh_port=port, ssh_key_path=Path("k")
    )


def test_the_restart_lock_is_per_ssh_target_however_its_host_is_spelt() -> None:
    assert restart_lock_key(server("Poracle.Example.COM.")) == restart_lock_key(server("poracle.example.com"))
    assert restart_lock_key(server("0:0::1")) == restart_lock_key(server("::1")) == "restart-root@::1:22"
    assert restart_lock_key(server("192.0.2.7")) == "restart-root@192.0.2.7:22"
    keys = {restart_lock_key(s) for s in (server("192.0.2.7"), server("192.0.2.7", "pm2"), server("192.0.2.7", port=2))}
    assert len(keys) == 3  # another user has another pm2; another port may be another machine


def test_a_refusal_names_the_holder_and_what_it_restarts() -> None:
    assert refusal_reason("Main", Locked(KEY, ALICE)) == (
        "a restart of this server is already running, started by alice (123) in Discord at 14:02:03 UTC"
    )
    assert refusal_reason("Backup", Locked(KEY, ROOT)) == (
        "a restart of this server is already running, started by root on the command line (pid 4242) at 14:02:03 UTC"
    )
    assert refusal_reason("Other", Locked(KEY, ROOT)) == (
        "a restart of Main, Backup on the same SSH target is already running, started by root on the command "
        "line (pid 4242) at 14:02:03 UTC"
    )
    many = Holder("bob (7) in Discord", ("A", "B", "C", "D", "E"), SINCE)
    assert refusal_reason("Z", Locked(KEY, many)).startswith("a restart of A, B, C and 2 more on the same SSH target")
    assert refusal_reason("Main", None) == "a restart of this server is already running"
