"""The one place that does the real work: health checks and restarts. Every front end calls this.

It knows nothing of Discord or terminals; it returns small typed results, logs what an operator cares about
and writes every restart into the audit, whoever asked for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.config import ServerConfig, Settings
from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.health import HealthChecker, HealthResult
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


@dataclass(frozen=True, slots=True)
class RestartResult:
    """One restart as the admin who asked for it should see it."""

    server: str
    requested_by: Requester
    command: CommandResult | None  # None: refused, a restart of this server was already running
    health: HealthResult | None = None  # the health check after the restart

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

    def check_each(self) -> AsyncGenerator[HealthResult, None]:
        """Every server checked at once from now on; each result as soon as it is in."""
        return self.health.check_each(self.servers)

    async def restart(self, server: ServerConfig, requested_by: Requester) -> RestartResult:
        """Restart one server and audit it; refused at once (not queued) while another restart of it runs."""
        if server.name in self._restarting:
            log.warning("Restart of %s by %s refused: already restarting", server.name, requested_by)
            return RestartResult(server.name, requested_by, None)
        self._restarting.add(server.name)
        started = self.clock.now()
        try:
            log.info("Restart of %s requested by %s (%s)", server.name, requested_by, server.ssh_target)
            command = await self.ssh.run(server, server.restart_cmd, self.settings.ssh_timeout)
            health = await (self._wait_until_online(server) if command.succeeded else self.health.check(server))
        finally:
            self._restarting.discard(server.name)
        result = RestartResult(server.name, requested_by, command, health)
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
