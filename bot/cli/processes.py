"""`poracle-bot processes NAME` and `poracle-bot logs NAME PROCESS [--lines N]`: a gate server's pm2 list and
a process's redacted log tail, on the command line."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

from bot.cli.main import EXIT_CONFIG
from bot.config import ConfigError, ServerConfig, Settings
from bot.core.crashloop import CrashTracker
from bot.core.output import format_table
from bot.core.service import GateRequired, PoracleService, process_target, require_gate
from bot.core.store import Store, StoreError


def _gate_server(settings: Settings, name: str) -> ServerConfig | int:
    """The server called `name` with ACCESS=gate; else, after saying why on stderr, the exit status: 1 for
    no such server, 2 for one in command mode."""
    server = settings.server(name)
    if server is None:
        known = ", ".join(s.name for s in settings.servers)
        print(f"poracle-bot: no server called {name!r}; known: {known}", file=sys.stderr)
        return 1
    try:
        require_gate(server)
    except GateRequired as exc:
        print(f"poracle-bot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return server


@contextlib.asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[PoracleService]:
    """The service over the bot's store: its history of restart counts is the bot's."""
    try:
        store = Store.open(settings.data_dir)
    except StoreError as exc:
        raise ConfigError([str(exc)]) from None
    try:
        async with PoracleService(settings, store) as service:
            yield service
    finally:
        store.close()


async def show_processes(settings: Settings, name: str) -> int:
    """0 when every process is online; 1 when one is not, or the list cannot be read (or there is no such
    server); 2 for a server in command mode."""
    server = _gate_server(settings, name)
    if isinstance(server, int):
        return server
    async with _service(settings) as service:
        read = await service.read_processes(server)
        tracker = CrashTracker(
            settings.crash_restarts, timedelta(minutes=settings.crash_window), service.store.load_process_watches()
        )
    if read.processes is None:
        print(f"{server.name}: cannot read the pm2 list: {read.reason}", file=sys.stderr)
        return 1
    report = tracker.report(read)
    print(f"{server.name}: {report.summary()}")
    if read.processes:
        print(format_table(report.table()))
    return 0 if report.all_online else 1


async def show_logs(settings: Settings, name: str, process: str, lines: int) -> int:
    """0 when the log was read; 1 when it could not be (or there is no such server); 2 for a server in
    command mode or a process name the gate refuses (nothing is sent then)."""
    server = _gate_server(settings, name)
    if isinstance(server, int):
        return server
    try:
        process_target(process)
    except ValueError as exc:
        print(f"poracle-bot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    async with _service(settings) as service:
        tail = await service.read_logs(server, process, lines)
    if tail.reason is not None:
        print(f"{server.name}: cannot read the log of {process}: {tail.reason}", file=sys.stderr)
        return 1
    print(f"{tail.name} (id {tail.pm_id}) on {server.name}: the last {lines} lines, redacted", file=sys.stderr)
    print(tail.text)
    return 0
