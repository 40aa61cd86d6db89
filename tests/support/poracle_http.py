"""PoracleJS and PoracleNG as the bot sees them over HTTP, on 127.0.0.1: their /health bodies, their IP
filters refusing the bot, and PoracleNG's /metrics in the Prometheus text format (the metric names, types and
quirks of poracle-facts-checked.md sections 1, 6 and 7). Tests change the fields while the server runs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.local_http import HttpServer, http_server


@dataclass
class PoracleJsLike:
    """PoracleJS 4.8's /health: always HTTP 200; its IP allow-list refusing the caller answers unhappy."""

    refusing: str | None = None  # the reason PoracleJS gives, e.g. "ip 127.0.0.1 not in whitelist"

    async def health(self, request: web.Request) -> web.Response:
        if self.refusing is not None:
            return web.json_response({"webserver": "unhappy", "reason": self.refusing})
        return web.json_response({"webserver": "happy", "query": dict(request.query), "port": "3030"})


@dataclass
class PoracleNgLike:
    """PoracleNG 5.x: /health (with `version` as on its develop branch), /metrics, and its IP filter, which
    answers 403 with an empty body on every route. `webhooks` per type: no series before the first one."""

    version: str | None = "5.1.0"
    refusing: bool = False
    queue: float = 0  # poracle_delivery_queue_depth
    webhooks: dict[str, float] = field(default_factory=dict)
    metrics_asked: int = 0

    async def health(self, request: web.Request) -> web.Response:
        if self.refusing:
            return web.Response(status=403)
        body: dict[str, object] = {"status": "healthy"}
        if self.version is not None:
            body |= {"version": self.version, "capabilities": {"buttons": True, "snapshots": True}}
        return web.json_response(body)

    async def metrics(self, request: web.Request) -> web.Response:
        self.metrics_asked += 1
        if self.refusing:
            return web.Response(status=403)
        return web.Response(text=self.metrics_text(), content_type="text/plain", charset="utf-8")

    def metrics_text(self) -> str:
        """What promhttp writes: HELP and TYPE lines, Go's own metrics, a histogram, and the per-platform
        "queue" gauges (sends in flight, at most 10) beside the real backlog."""
        lines = [
            "# HELP go_goroutines Number of goroutines that currently exist.",
            "# TYPE go_goroutines gauge",
            "go_goroutines 87",
            "# HELP poracle_delivery_discord_queue_depth Discord sends in flight",
            "# TYPE poracle_delivery_discord_queue_depth gauge",
            "poracle_delivery_discord_queue_depth 10",
            "# HELP poracle_delivery_queue_depth Delivery jobs waiting",
            "# TYPE poracle_delivery_queue_depth gauge",
            f"poracle_delivery_queue_depth {self.queue:g}",
            "# HELP poracle_processor_webhook_batch_size Webhook items per POST",
            "# TYPE poracle_processor_webhook_batch_size histogram",
            'poracle_processor_webhook_batch_size_bucket{le="10"} 3',
            'poracle_processor_webhook_batch_size_bucket{le="+Inf"} 4',
            "poracle_processor_webhook_batch_size_sum 57",
            "poracle_processor_webhook_batch_size_count 4",
        ]
        if self.webhooks:
            lines += [
                "# HELP poracle_processor_webhooks_received_total Webhooks received",
                "# TYPE poracle_processor_webhooks_received_total counter",
                *(f'poracle_processor_webhooks_received_total{{type="{t}"}} {n:g}' for t, n in self.webhooks.items()),
            ]
        return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def poracle_js(fake: PoracleJsLike) -> AsyncIterator[HttpServer]:
    async with http_server({"/health": fake.health}) as server:
        yield server


@contextlib.asynccontextmanager
async def poracle_ng(fake: PoracleNgLike) -> AsyncIterator[HttpServer]:
    async with http_server({"/health": fake.health, "/metrics": fake.metrics}) as server:
        yield server
