"""HTTP health checks: any HTTP answer means online, no answer means offline."""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from bot.config import ServerConfig
from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.open_files import check_slots, soft_limit


@dataclass(frozen=True, slots=True)
class HealthResult:
    """What one check of one server found."""

    server: str
    online: bool
    checked_at: datetime
    status: int | None = None
    latency_ms: float | None = None
    reason: str | None = None


def _reason(exc: BaseException, timeout: float) -> str:
    """Why a server gave no HTTP answer, in words an operator can act on."""
    # Order matters: the DNS, certificate and SSL errors are all ClientConnectorError subclasses.
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup failed for {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate rejected: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed without an answer"
    return f"HTTP error: {exc.__class__.__name__}"


class HealthChecker:
    """Checks servers over one shared aiohttp session. Use as an async context manager."""

    def __init__(self, timeout: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.timeout = timeout
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore()

    async def __aenter__(self) -> HealthChecker:
        # No connection limit: a few hung servers must not queue the others behind them.
        # force_close: a reused keep-alive socket says nothing about whether the server answers now.
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        # ceil_threshold: aiohttp rounds the deadline of timeouts of 5 s or more up to a whole second of the
        # loop clock, so the default 5 s would wait up to 6 s; the configured timeout is what is waited.
        timeout = aiohttp.ClientTimeout(total=self.timeout, ceil_threshold=math.inf)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        # Under an open-files limit too low for every server at once, a check waits for a socket (before its
        # timeout starts) rather than fail with "Too many open files": a false outage. Start-up says so.
        self._slots = asyncio.Semaphore(check_slots(soft_limit()))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def check(self, server: ServerConfig) -> HealthResult:
        async with self._slots:
            return await self._check(server)

    async def _check(self, server: ServerConfig) -> HealthResult:
        if self._session is None:
            raise RuntimeError("HealthChecker used outside 'async with'")
        checked_at = self.clock.now()
        started = time.perf_counter()
        try:
            # Redirects are answers too: following them could only turn "online" into a false "offline".
            async with self._session.get(server.health_url, allow_redirects=False) as response:
                latency_ms = (time.perf_counter() - started) * 1000
                return HealthResult(server.name, True, checked_at, response.status, round(latency_ms, 1))
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            return HealthResult(server.name, False, checked_at, reason=_reason(exc, self.timeout))

    async def check_all(self, servers: Iterable[ServerConfig]) -> list[HealthResult]:
        """Check every server at once; results keep the order of `servers`."""
        return list(await asyncio.gather(*(self.check(server) for server in servers)))
