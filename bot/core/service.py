"""The one place that does the real work: health checks and restarts. Every front end calls this.

It knows nothing of Discord or terminals; it returns small typed results and logs what an operator cares about.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from bot.config import ALL, ServerConfig, Settings
from bot.core.health import HealthChecker, HealthResult
from bot.core.ssh import CommandOutcome, CommandResult, SshRunner

log = logging.getLogger(__name__)

# PoracleJS takes a few seconds to come back after pm2 starts it; PoracleNG's kill_timeout alone is 10 s.
RECOVERY_WAIT = 60.0
RECOVERY_POLL = 2.0


class UnknownServer(LookupError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"no server called {name!r}; known: {', '.join(known)} or {ALL}")
        self.name = name


@dataclass(frozen=True, slots=True)
class RestartResult:
    """One restart as the admin who asked for it should see it."""

    server: str
    requested_by: str
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


class PoracleService:
    """Health checks and restarts for the configured servers. Use as an async context manager."""

    def __init__(
        self, settings: Settings, *, recovery_wait: float = RECOVERY_WAIT, recovery_poll: float = RECOVERY_POLL
    ) -> None:
        self.settings = settings
        self.health = HealthChecker(settings.health_timeout)
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

    def resolve(self, target: str) -> list[ServerConfig]:
        """`all`, or the one server of that name (any case)."""
        if target.strip().casefold() == ALL:
            return list(self.servers)
        server = self.settings.server(target)
        if server is None:
            raise UnknownServer(target, (s.name for s in self.servers))
        return [server]

    def is_restarting(self, server: ServerConfig) -> bool:
        return server.name in self._restarting

    async def check_all(self) -> list[HealthResult]:
        return await self.health.check_all(self.servers)

    async def restart(self, server: ServerConfig, requested_by: str) -> RestartResult:
        """Restart one server; refused at once (not queued) while another restart of it runs."""
        if server.name in self._restarting:
            log.warning("Restart of %s by %s refused: already restarting", server.name, requested_by)
            return RestartResult(server.name, requested_by, None)
        self._restarting.add(server.name)
        try:
            log.info("Restart of %s requested by %s (%s)", server.name, requested_by, server.ssh_target)
            command = await self.ssh.run(server, server.restart_cmd, self.settings.ssh_timeout)
            health = await (self._wait_until_online(server) if command.succeeded else self.health.check(server))
        finally:
            self._restarting.discard(server.name)
        result = RestartResult(server.name, requested_by, command, health)
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

    async def restart_many(self, servers: Iterable[ServerConfig], requested_by: str) -> list[RestartResult]:
        """Restart several servers at the same time (worst case one budget, not one per server)."""
        return list(await asyncio.gather(*(self.restart(server, requested_by) for server in servers)))

    async def _wait_until_online(self, server: ServerConfig) -> HealthResult:
        deadline = time.monotonic() + self.recovery_wait
        while True:
            result = await self.health.check(server)
            if result.online or time.monotonic() + self.recovery_poll > deadline:
                return result
            await asyncio.sleep(self.recovery_poll)
