"""HTTP health checks: any HTTP answer means the process answers (online), no answer means offline. An answer
can still say that all is not well: PoracleJS's `webserver: "unhappy"` and PoracleNG's 403 (their IP filters
refusing the bot) and, with METRICS=on, PoracleNG's /metrics unreadable: the server is then degraded.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
import time
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

import aiohttp

from bot.config import ServerConfig
from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.metrics import MetricsError, PoracleMetrics, count, parse_metrics
from bot.core.open_files import check_slots, soft_limit
from bot.core.output import clean_output

HEALTH_BODY_LIMIT = 64 * 1024  # PoracleJS's and PoracleNG's /health bodies are a few dozen bytes
METRICS_BODY_LIMIT = 4 * 1024 * 1024  # PoracleNG's /metrics is some 100 KiB (its histograms, Go's own metrics)
REMOTE_WORDS = 160  # characters of a server's own words (a refusal's reason, a version) shown


class Condition(StrEnum):
    """What one check found."""

    ONLINE = "online"
    DEGRADED = "degraded"  # it answers, but refuses the bot or is stuck
    OFFLINE = "offline"


class Cause(StrEnum):
    """Why a server that answers is degraded."""

    REFUSED = "refused"  # its IP filter refuses the bot
    METRICS = "metrics"  # METRICS=on, but /metrics cannot be read
    QUEUE = "queue"  # PoracleNG's delivery backlog above PORACLE_QUEUE_LIMIT
    SILENCE = "silence"  # no webhook for PORACLE_WEBHOOK_SILENCE minutes

    @property
    def restart_may_help(self) -> bool:
        """A stuck PoracleNG may come unstuck; an IP allow-list or a missing /metrics stays as it is."""
        return self in (Cause.QUEUE, Cause.SILENCE)


def fix(cause: Cause, index: int | None = None) -> str:
    """What an operator can do about it."""
    if cause is Cause.REFUSED:
        return (
            "add the bot's IP address to PoracleJS's server.ipWhitelist (config/local.json) or PoracleNG's "
            "[processor] ip_whitelist (config/config.toml), and take it off their blacklist"
        )
    if cause is Cause.METRICS:
        number = "<N>" if index is None else index
        return f"is it PoracleNG? Set PORACLE_SERVER_{number}_METRICS=off for a server without its /metrics"
    if cause is Cause.QUEUE:
        return (
            "PoracleNG makes alerts faster than it sends them: look for Discord or Telegram rate limits in its "
            "log; a restart empties the queue (the alerts in it are lost)"
        )
    return "check the scanner's webhook URL for this server and the network in between; restart if PoracleNG is stuck"


@dataclass(frozen=True, slots=True)
class HealthResult:
    """What one check of one server found. `online`: the process answers HTTP (any status)."""

    server: str
    online: bool
    checked_at: datetime
    status: int | None = None
    latency_ms: float | None = None
    reason: str | None = None  # why offline, or with `cause` why degraded
    cause: Cause | None = None  # set: it answers, but is degraded
    answer: str | None = None  # what its health body said, e.g. "status healthy, version 5.1.0"
    metrics: PoracleMetrics | None = None  # METRICS=on: what /metrics said

    @property
    def condition(self) -> Condition:
        if not self.online:
            return Condition.OFFLINE
        return Condition.ONLINE if self.cause is None else Condition.DEGRADED

    @property
    def detail(self) -> str | None:
        """What the answer said, in words: the health body's, and the metrics read."""
        parts = [self.answer] if self.answer else []
        if self.metrics is not None:
            queue, webhooks = count(self.metrics.delivery_queue), count(self.metrics.webhooks_received)
            parts.append(f"delivery queue {queue}, {webhooks} webhooks received")
        return ", ".join(parts) or None


class _TooLarge(Exception):
    pass


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, if it has at most `limit` bytes; _TooLarge as soon as it has more."""
    if (response.content_length or 0) > limit:
        raise _TooLarge
    data = bytearray()
    while chunk := await response.content.read(limit + 1 - len(data)):
        data += chunk
        if len(data) > limit:
            raise _TooLarge
    return bytes(data)


async def _json_body(response: aiohttp.ClientResponse) -> object:
    """The body when it is small JSON, else None. Never raises: the server answered, whatever its body."""
    if response.content_type != "application/json":
        return None
    try:
        return json.loads(await _read(response, HEALTH_BODY_LIMIT))
    except (_TooLarge, ValueError, RecursionError, aiohttp.ClientError, TimeoutError, OSError):
        return None


def _words(value: object) -> str | None:
    """A server's own words, safe to show: one line, no terminal codes, cut short."""
    if not isinstance(value, str):
        return None
    text = " ".join(clean_output(value, 10 * REMOTE_WORDS).split())
    return text if len(text) <= REMOTE_WORDS else text[: REMOTE_WORDS - 1] + "…"


def _answered(server: str, checked_at: datetime, status: int, latency_ms: float, body: object) -> HealthResult:
    """What an answer says: refused (PoracleJS's unhappy webserver, any 403: PoracleNG's IP filter answers that
    with an empty body), or online with PoracleNG's status and version."""
    result = HealthResult(server, True, checked_at, status, latency_ms)
    fields = body if isinstance(body, dict) else {}
    why = _words(fields.get("reason"))
    if fields.get("webserver") == "unhappy":
        return replace(result, cause=Cause.REFUSED, reason=f"refuses the bot: {why or 'webserver unhappy'}")
    if status == 403:
        return replace(result, cause=Cause.REFUSED, reason="refuses the bot: HTTP 403" + (f" ({why})" if why else ""))
    said = [f"{key} {text}" for key in ("status", "version") if (text := _words(fields.get(key)))]
    return replace(result, answer=", ".join(said) or None)


def no_answer_reason(exc: BaseException, timeout: float) -> str:
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

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HealthChecker used outside 'async with'")
        return self._session

    async def check(self, server: ServerConfig) -> HealthResult:
        """/health, and with METRICS=on /metrics at the same time: both within the timeout. Under a low
        open-files limit a check waits for a free socket before its timeout starts."""
        async with self._slots:
            health, metrics = await asyncio.gather(self._health(server), self._metrics(server))
        if health.condition is not Condition.ONLINE or metrics is None:
            return health
        if isinstance(metrics, MetricsError):
            return replace(health, cause=Cause.METRICS, reason=f"metrics unreadable: {metrics}")
        return replace(health, metrics=metrics)

    async def _health(self, server: ServerConfig) -> HealthResult:
        session = self.session
        checked_at = self.clock.now()
        started = time.perf_counter()
        try:
            # Redirects are answers too: following them could only turn "online" into a false "offline".
            async with session.get(server.health_url, allow_redirects=False) as response:
                latency_ms = round((time.perf_counter() - started) * 1000, 1)
                return _answered(server.name, checked_at, response.status, latency_ms, await _json_body(response))
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            return HealthResult(server.name, False, checked_at, reason=no_answer_reason(exc, self.timeout))

    async def _metrics(self, server: ServerConfig) -> PoracleMetrics | MetricsError | None:
        """None without METRICS=on; a MetricsError saying why they could not be read."""
        if server.metrics_url is None:
            return None
        try:
            async with self.session.get(server.metrics_url, allow_redirects=False) as response:
                if response.status != 200:
                    return MetricsError(f"HTTP {response.status}")
                data = await _read(response, METRICS_BODY_LIMIT)
        except _TooLarge:
            return MetricsError(f"more than {METRICS_BODY_LIMIT // 1024**2} MiB")
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            return MetricsError(no_answer_reason(exc, self.timeout))
        try:  # in a thread: parsing 100 KiB takes a while, and the loop serves Discord meanwhile
            return await asyncio.to_thread(parse_metrics, data.decode("utf-8", "replace"))
        except MetricsError as exc:
            return MetricsError(_words(str(exc)) or "unreadable")

    async def check_all(self, servers: Iterable[ServerConfig]) -> list[HealthResult]:
        """Check every server at once; results keep the order of `servers`."""
        return list(await asyncio.gather(*(self.check(server) for server in servers)))

    def check_each(self, servers: Iterable[ServerConfig]) -> AsyncGenerator[HealthResult, None]:
        """Start checking every server now (before the first result is asked for); yield each result as it
        comes in, the fastest first. Checks still running when the iterator is closed are cancelled."""
        return _as_completed([asyncio.ensure_future(self.check(server)) for server in servers])


async def _as_completed(tasks: list[asyncio.Future[HealthResult]]) -> AsyncGenerator[HealthResult, None]:
    try:
        for next_result in asyncio.as_completed(tasks):
            yield await next_result
    finally:
        for task in tasks:
            task.cancel()
