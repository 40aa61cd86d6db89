"""Locks that hold across processes: the bot, the command line and a second command line see each other.

One file per key in <PORACLE_DATA_DIR>/locks/, locked with flock(2), exclusive and non-blocking: a second
taker is refused at once, never queued. flock because the kernel drops the lock with its holder: a process
that crashes or is SIGKILLed leaves no lock to clean up by hand. And two open()s of one file conflict even
in one process, so the same lock keeps the bot's own concurrent tasks apart. Python opens files
close-on-exec, so no child process inherits a lock.

The holder writes who it is into the file once it has the lock, so a refused process can say who holds it;
releasing empties the file. A holder that crashed leaves its record behind without the lock, so a record is
believed only while its file is locked. Lock files are never deleted: a taker that had just opened one
would lock a file nobody else sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

DIR_NAME = "locks"
# A holder writes its record a moment after taking the lock, and a look that takes none (`LockDir.locked`)
# holds the file for a moment too: a refused taker waits this long for a record before it gives up.
SETTLE = 0.5
_RECORD_LIMIT = 64 * 1024


class LockError(Exception):
    """A lock file that cannot be used at all, in words naming the path."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock: what the refused side shows."""

    who: str  # "alice (123) in Discord", "root on the command line (pid 4242)"
    servers: tuple[str, ...]  # what it is doing under the lock
    since: datetime
    pid: int = field(default_factory=os.getpid)

    def encode(self) -> bytes:
        data = {"who": self.who, "servers": list(self.servers), "since": self.since.isoformat(), "pid": self.pid}
        return json.dumps(data).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Holder | None:
        """The record in a lock file; None when it is empty, half written or not a record."""
        try:
            data = json.loads(raw)
            who, servers, since, pid = data["who"], data["servers"], datetime.fromisoformat(data["since"]), data["pid"]
        except (ValueError, KeyError, TypeError):
            return None
        if not (isinstance(who, str) and isinstance(servers, list) and isinstance(pid, int)):
            return None
        return cls(who, tuple(servers), since, pid) if all(isinstance(name, str) for name in servers) else None


@dataclass(frozen=True, slots=True)
class Locked:
    """A lock another holder has: the answer instead of the lock."""

    key: str
    holder: Holder | None  # None: its record could not be read


class HeldLock:
    """A lock this process holds until `release` (or the end of its `with` block)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):  # an old record is harmless: it is not believed without the lock
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # the only descriptor of this open file: closing it releases the flock
        self._fd = -1

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class LockDir:
    """The lock files in one directory (created when the first lock is taken)."""

    def __init__(self, directory: Path, *, settle: float = SETTLE) -> None:
        self.directory = directory
        self.settle = settle

    def path(self, key: str) -> Path:
        return self.directory / f"{quote(key, safe='@:._-')}.lock"

    async def acquire(self, key: str, holder: Holder) -> HeldLock | Locked:
        """Take the lock of `key` now, or say who has it. Waits (up to `settle`) only while the lock is held
        but its record is not there yet. Nothing is held across an await: cancelled, it holds no lock."""
        deadline = time.monotonic() + self.settle
        while True:
            taken = self._take(key, holder)
            if isinstance(taken, HeldLock) or taken.holder is not None or time.monotonic() >= deadline:
                return taken
            await asyncio.sleep(0.01)

    def _take(self, key: str, holder: Holder) -> HeldLock | Locked:
        path = self.path(key)
        try:
            self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _unusable(path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            found = _record(fd)
            os.close(fd)
            return Locked(key, found)
        except OSError as exc:  # e.g. a file system without locks
            os.close(fd)
            raise _unusable(path, exc) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise _unusable(path, exc) from None
        return HeldLock(fd)

    def locked(self, key: str) -> Locked | None:
        """Who has the lock of `key` now, without taking it; None when nobody has (or it cannot be told:
        `acquire` then says why)."""
        try:
            fd = os.open(self.path(key), os.O_RDWR)
        except OSError:  # never taken here yet, or unusable
            return None
        try:
            try:
                # Shared: two looks at once do not refuse each other; a taker meanwhile waits (`settle`).
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return Locked(key, _record(fd))
            if os.fstat(fd).st_size:  # a crashed holder's record: cleared, so no refusal repeats it
                os.ftruncate(fd, 0)
            return None
        except OSError:
            return None
        finally:
            os.close(fd)


def _unusable(path: Path, exc: OSError) -> LockError:
    return LockError(f"cannot use the lock file {path}: {exc.strerror or exc}")


def _record(fd: int) -> Holder | None:
    try:
        return Holder.decode(os.pread(fd, _RECORD_LIMIT, 0))
    except OSError:
        return None
