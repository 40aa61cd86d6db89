"""Fixtures many test modules share: local health APIs, a round counter, a marker file for remote commands,
a token watch. Registered through `pytest_plugins` in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.config import Settings
from bot.core.service import PoracleService, Requester
from bot.core.store import FILE_NAME, Origin, RestartRecord, Store
from tests.support.discord_double import DiscordDouble
from tests.support.local_http import HttpServer, SwitchableServer, http_server
from tests.support.sshd import SshServer

TESTER = Requester(Origin.CLI, "tester")


@pytest.fixture
async def api() -> AsyncIterator[HttpServer]:
    """A PoracleJS stand-in on 127.0.0.1 that answers every health check with 200."""
    async with http_server() as server:
        yield server


@pytest.fixture
async def counter() -> AsyncIterator[HttpServer]:
    """A configured server that always answers: each monitor round asks it once, so it counts rounds."""
    async with http_server() as server:
        yield server


@pytest.fixture
async def switchable() -> AsyncIterator[Callable[[], SwitchableServer]]:
    """Make health servers that start up and can be taken down and brought back; all stopped at the end."""
    made: list[SwitchableServer] = []

    def make() -> SwitchableServer:
        made.append(SwitchableServer())
        return made[-1]

    yield make
    for server in made:
        if server.is_up:
            await server.down()


@pytest.fixture
def marker(sshd: SshServer) -> Path:
    """A file only the remote command writes: its existence, or its lines, prove whether and how often it ran."""
    return sshd.workdir / f"ran-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class SlowRestart:
    """A restart command that runs until the test lets it end: it adds a line to `marker` when it starts,
    then waits for the release file. So a test acts while the command surely runs, without guessing how
    long an ssh login takes; it gives up by itself after 30 s, should a test never release it."""

    marker: Path
    release_file: Path

    @property
    def command(self) -> str:
        return (
            f"echo ran >> {self.marker}; i=0; "
            f"while [ ! -e {self.release_file} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done"
        )

    async def started(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            assert time.monotonic() < deadline, f"the restart command never started ({self.marker})"
            await asyncio.sleep(0.02)

    def release(self) -> None:
        self.release_file.touch()

    @property
    def runs(self) -> int:
        return len(lines(self.marker))


@pytest.fixture
def slow_restart(marker: Path) -> Iterator[SlowRestart]:
    restart = SlowRestart(marker, marker.with_name(marker.name + "-release"))
    yield restart
    restart.release()


@contextlib.asynccontextmanager
async def open_service(settings: Settings, **options: float) -> AsyncIterator[PoracleService]:
    """The core service over a store in PORACLE_DATA_DIR (its restarts are audited there)."""
    store = Store.open(settings.data_dir)
    try:
        async with PoracleService(settings, store, **options) as service:
            yield service
    finally:
        store.close()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def deliveries(data_dir: Path) -> list[tuple[str, str, str]]:
    """(kind, server, delivery) of every alert the store recorded, oldest first. The store has no reader for
    delivery states (only for pending ones), so this reads its table, as an operator with sqlite3 would."""
    with contextlib.closing(sqlite3.connect(data_dir / FILE_NAME)) as db:
        rows = db.execute(
            "SELECT kind, name, delivery FROM events JOIN servers ON servers.id = server_id ORDER BY events.id"
        ).fetchall()
    return [(str(kind), str(name), str(delivery)) for kind, name, delivery in rows]


def audit(data_dir: Path) -> list[RestartRecord]:
    """The restart audit in PORACLE_DATA_DIR, newest first, as /poracle history reads it."""
    store = Store.open(data_dir)
    try:
        return [entry for entry in store.history() if isinstance(entry, RestartRecord)]
    finally:
        store.close()


@pytest.fixture
def token_stays_out_of_the_log(caplog: pytest.LogCaptureFixture, discord_double: DiscordDouble) -> Iterator[None]:
    """Log everything during the test; afterwards the bot token must not be anywhere in it."""
    caplog.set_level(logging.DEBUG)
    yield
    formatter = logging.Formatter()  # with tracebacks, like the production handler
    logged = "\n".join(formatter.format(r) for phase in ("setup", "call") for r in caplog.get_records(phase))
    assert "Synced 1 command(s)" in logged, "the log was not captured: the check below would prove nothing"
    assert discord_double.token not in logged
