"""The heartbeat push (PORACLE_HEARTBEAT_URL): someone watching the watcher. After every completed round the
bot requests the URL, as healthchecks.io and Uptime Kuma's push monitors expect; when the pushes stop (the bot
died, hung, or lost its network) that service raises the alarm.

A push runs beside the rounds, bounded by PORACLE_HEALTH_TIMEOUT, and at most one at a time (a round that
comes while one hangs pushes nothing), so it never slows or stops the monitor. A failure is logged once when a
streak of them begins and once when a push works again. The URL carries a secret (the check's key): only its
scheme and host are ever shown.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl

import aiohttp
from pydantic import SecretStr

from bot.config import masked_url
from bot.core.health import no_answer_reason

log = logging.getLogger(__name__)


class HeartbeatPush:
    """Requests the heartbeat URL; `after_round` in the background, `push` to wait for the answer (doctor)."""

    def __init__(self, url: SecretStr, timeout: float) -> None:
        self._url = url
        self.shown = masked_url(url.get_secret_value())
        self.timeout = timeout
        self.failing = False  # a streak of failures is on: it was logged
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    async def push(self) -> str | None:
        """One request of the URL: None when it was answered with a 2xx, else why not (never the URL)."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.timeout, ceil_threshold=math.inf)
            self._session = aiohttp.ClientSession(timeout=timeout)
        try:
            async with self._session.get(self._url.get_secret_value()) as response:
                if not 200 <= response.status < 300:
                    return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            return no_answer_reason(exc, self.timeout)
        return None

    def after_round(self) -> None:
        """Push in the background, unless the last push is still waiting for its answer."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._push_and_log(), name="poracle-heartbeat-push")

    async def _push_and_log(self) -> None:
        try:
            problem = await self.push()
        except Exception as exc:  # a bug; its text could hold the URL, so only its kind is logged
            problem = f"unexpected {type(exc).__name__}"
        if problem is not None and not self.failing:
            self.failing = True
            log.warning(
                "Heartbeat push to %s failed: %s; the monitor goes on (logged once until a push works again)",
                self.shown,
                problem,
            )
        elif problem is None and self.failing:
            self.failing = False
            log.info("Heartbeat push to %s works again", self.shown)

    async def settled(self) -> None:
        """Wait for the push in flight, if any, to be answered or to give up."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
