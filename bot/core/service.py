"""The one place that does the real work: health checks and restarts. Every front end calls this.

It knows nothing of Discord or terminals; it returns small typed results, logs what an operator cares about
and writes every restart into the audit, whoever asked for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from bot.config import ALL, Access, ServerConfig, Settings
from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.gate_protocol import GateRestart, RestartedProcess, parse_restart, restart_command
from bot.core.health import HealthChecker, HealthResult
from bot.core.output import clean_output
from bot.core.ssh import CommandOutcome, CommandResult, SshRunner
from bot.core.store import Origin, RestartRecord, Store

log = logging.getLogger(__name__)

# PoracleJS takes a few seconds to come back after pm2 starts it; PoracleNG's kill_timeout alone is 10 s.
RECOVERY_WAIT = 60.0
RECOVERY_POLL = 2.0


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked for a restart, and from where: what the log and the audit name."""

    origin: Origin
    name: str  # "alice (123456789012345678)" in Discord, the local user on the command line

    def __str__(self) -> str:
        return f"{self.name} (command line)" if self.origin is Origin.CLI else self.name


def restart_request(server: ServerConfig) -> str:
    """What a restart sends the server: its RESTART_CMD, or with ACCESS=gate the gate's restart of every pm2
    process there (and nothing else: a key limited to the gate would run the gate instead of any command)."""
    return restart_command(ALL) if server.access is Access.GATE else server.restart_cmd


def describe_process(process: RestartedProcess) -> str:
    """`PoracleJS (id 0): pid 4242 → 4300, online`"""
    name = process.name if process.name is not None else "(no name)"
    before, after = (pid if pid is not None else "-" for pid in (process.pid_before, process.pid_after))
    return f"{name} (id {process.pm_id}): pid {before} → {after}, {process.status or 'not listed after'}"


@dataclass(frozen=True, slots=True)
class RestartResult:
    """One restart as the admin who asked for it should see it."""

    server: str
    requested_by: Requester
    command: CommandResult | None  # None: refused, a restart of this server was already running
    health: HealthResult | None = None  # the health check after the restart
    gate: GateRestart | None = None  # ACCESS=gate: what the gate restarted, when it answered ok

    def process_lines(self) -> list[str]:
        """One line per pm2 process the gate restarted (none in command mode)."""
        return [describe_process(process) for process in self.gate.processes] if self.gate else []

    @property
    def busy(self) -> bool:
        return self.command is None

    @property
    def succeeded(self) -> bool:
        return self.command is not None and self.command.succeeded

    @property
    def word(self) -> str:
        """The one word (or two) shown for this outcome."""
        if self.command is None:
            return "already restarting"
        return {CommandOutcome.SUCCEEDED: "restarted", CommandOutcome.TIMED_OUT: "timed out"}.get(
            self.command.outcome, "failed"
        )

    @property
    def reason(self) -> str:
        return "a restart of this server is already running" if self.command is None else self.command.reason

    def record(self, at: datetime) -> RestartRecord:
        """The audit row of this restart, started `at`."""
        return RestartRecord(
            self.server,
            at,
            self.requested_by.origin,
            self.requested_by.name,
            self.word,
            self.reason,
            self.command.duration_s if self.command else None,
            self.command.exit_code if self.command else None,
            None if self.health is None else self.health.online,
        )


class PoracleService:
    """Health checks and audited restarts of the configured servers. Use as an async context manager."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock = SYSTEM_CLOCK,
        recovery_wait: float = RECOVERY_WAIT,
        recovery_poll: float = RECOVERY_POLL,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.health = HealthChecker(settings.health_timeout, clock)
        self.ssh = SshRunner(settings)
        self.recovery_wait = recovery_wait
        self.recovery_poll = recovery_poll
        self._restarting: set[str] = set()

    async def __aenter__(self) -> PoracleService:
        await self.health.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.health.__aexit__(*exc_info)

    @property
    def servers(self) -> tuple[ServerConfig, ...]:
        return self.settings.servers

    def is_restarting(self, server: ServerConfig) -> bool:
        return server.name in self._restarting

    async def check_all(self) -> list[HealthResult]:
        return await self.health.check_all(self.servers)

    async def restart(self, server: ServerConfig, requested_by: Requester) -> RestartResult:
        """Restart one server and audit it; refused at once (not queued) while another restart of it runs."""
        if server.name in self._restarting:
            log.warning("Restart of %s by %s refused: already restarting", server.name, requested_by)
            return RestartResult(server.name, requested_by, None)
        self._restarting.add(server.name)
        started = self.clock.now()
        try:
            log.info("Restart of %s requested by %s (%s)", server.name, requested_by, server.ssh_target)
            command, gate = await self._run_restart(server)
            health = await (self._wait_until_online(server) if command.succeeded else self.health.check(server))
        finally:
            self._restarting.discard(server.name)
        result = RestartResult(server.name, requested_by, command, health, gate)
        await self._audit(result, started)
        log.log(
            logging.INFO if result.succeeded else logging.WARNING,
            "Restart of %s by %s: %s (%s) in %.1f s; health check: %s",
            server.name,
            requested_by,
            result.word,
            command.reason,
            command.duration_s,
            "online" if health.online else f"offline ({health.reason})",
        )
        return result

    async def _run_restart(self, server: ServerConfig) -> tuple[CommandResult, GateRestart | None]:
        """The restart the server's access mode calls for, and in gate mode the gate's answer."""
        request = restart_request(server)
        if server.access is Access.COMMAND:
            return await self.ssh.run(server, request, self.settings.ssh_timeout), None
        call = await self.ssh.gate(server, request, parse_restart, self.settings.ssh_timeout)
        if call.reply is None:
            return call.command, None
        if call.reply.log_error:
            log.warning("poracle-gate on %s could not write its log: %s", server.name, call.reply.log_error)
        processes = "; ".join(map(describe_process, call.reply.processes))
        log.info("poracle-gate on %s restarted %s", server.name, processes or "no process")
        return replace(call.command, output=clean_output("\n".join(call.reply.output))), call.reply

    async def _audit(self, result: RestartResult, started: datetime) -> None:
        try:
            await asyncio.to_thread(self.store.record_restarts, [result.record(started)])
        except Exception:  # the restart happened whatever the disk says; the log keeps the record then
            log.exception("Could not write the restart of %s by %s into the audit", result.server, result.requested_by)

    async def restart_many(self, servers: Iterable[ServerConfig], requested_by: Requester) -> list[RestartResult]:
        """Restart several servers at the same time (worst case one budget, not one per server)."""
        return list(await asyncio.gather(*(self.restart(server, requested_by) for server in servers)))

    async def _wait_until_online(self, server: ServerConfig) -> HealthResult:
        deadline = self.clock.monotonic() + self.recovery_wait
        while True:
            result = await self.health.check(server)
            if result.online or self.clock.monotonic() + self.recovery_poll > deadline:
                return result
            await self.clock.sleep(self.recovery_poll)
