"""Fixtures many test modules share: a local health API, a marker file for remote commands, a token watch.

Registered through `pytest_plugins` in tests/conftest.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.discord_double import DiscordDouble
from tests.support.local_http import HttpServer, http_server
from tests.support.sshd import SshServer


@pytest.fixture
async def api() -> AsyncIterator[HttpServer]:
    """A PoracleJS stand-in on 127.0.0.1 that answers every health check with 200."""
    async with http_server() as server:
        yield server


@pytest.fixture
def marker(sshd: SshServer) -> Path:
    """A file only the remote command writes: its existence, or its lines, prove whether and how often it ran."""
    return sshd.workdir / f"ran-{uuid.uuid4().hex}"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def token_stays_out_of_the_log(caplog: pytest.LogCaptureFixture, discord_double: DiscordDouble) -> Iterator[None]:
    """Log everything during the test; afterwards the bot token must not be anywhere in it."""
    caplog.set_level(logging.DEBUG)
    yield
    formatter = logging.Formatter()  # with tracebacks, like the production handler
    logged = "\n".join(formatter.format(r) for phase in ("setup", "call") for r in caplog.get_records(phase))
    assert "Synced 1 command(s)" in logged, "the log was not captured: the check below would prove nothing"
    assert discord_double.token not in logged
