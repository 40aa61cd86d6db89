"""The bot's own metrics for Prometheus (PORACLE_METRICS_LISTEN), kept in a prometheus-client registry of their
own and served in its exposition format (whichever the scraper asks for) at http://<listen>/metrics.

Each round sets the servers' gauges and observes its duration; restarts and alerts are counted from the store
at each scrape, so the command line's restarts count too and a restarted bot goes on from its totals.

The metrics (the README's table has them all, with their labels):
- poracle_bot_server_status{server, status}: 1 for the last check's status (online, degraded, offline), else 0
- poracle_bot_server_latency_seconds{server}: the last check's answer time, absent while offline
- poracle_bot_server_last_check_timestamp_seconds{server}
- poracle_bot_restarts_total{server, origin, outcome}: the audit's restarts (origin discord, cli, automatic)
- poracle_bot_alerts_posted_total{kind} and poracle_bot_alerts_pending{kind}: the outbox's alerts
- poracle_bot_round_duration_seconds (histogram) and poracle_bot_last_round_timestamp_seconds
- poracle_bot_discord_connected: 1 while connected to Discord's gateway
- poracle_bot_auto_restart_needs_human{server}: 1 while automatic restarts wait for a person
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.core.health import Condition, HealthResult
from bot.core.store import Store

log = logging.getLogger(__name__)

PATH = "/metrics"
# From a round of quick answers to one that waits out hung servers (PORACLE_HEALTH_TIMEOUT, 5 s by default).
ROUND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _FromStore(Collector):
    """What the store counts, read at each scrape: restarts by origin and outcome, alerts posted and pending."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration: the store is read at each scrape

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "poracle_bot_restarts",
            "Restarts in the audit, by server, origin and outcome",
            labels=["server", "origin", "outcome"],
        )
        for server, origin, outcome, count in self.store.restart_counts():
            restarts.add_metric([server, origin, outcome], count)
        posted = CounterMetricFamily("poracle_bot_alerts_posted", "Alerts posted to Discord, by kind", labels=["kind"])
        pending = GaugeMetricFamily(
            "poracle_bot_alerts_pending", "Alerts waiting to be posted, by kind", labels=["kind"]
        )
        counts = self.store.alert_counts()
        for kind in sorted({kind for kind, _, _ in counts}):
            posted.add_metric([kind], sum(n for k, delivery, n in counts if k == kind and delivery == "delivered"))
            pending.add_metric([kind], sum(n for k, delivery, n in counts if k == kind and delivery == "pending"))
        yield from (restarts, posted, pending)


class _NeedsHuman(Collector):
    def __init__(self, servers: Sequence[str], latched: Callable[[], Iterable[str]]) -> None:
        self.servers = servers
        self.latched = latched

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "poracle_bot_auto_restart_needs_human",
            "1 while automatic restarts of the server wait for a person",
            labels=["server"],
        )
        latched = set(self.latched())
        for server in self.servers:
            family.add_metric([server], 1.0 if server in latched else 0.0)
        yield family


class BotMetrics:
    """The registry and its metrics. `connected`: the alert sink's; `auto_restarting`: the servers with
    AUTO_RESTART=on, `needs_human` the ones of those whose rails wait for a person."""

    def __init__(
        self,
        store: Store,
        connected: Callable[[], bool],
        auto_restarting: Sequence[str] = (),
        needs_human: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=False)
        self.status = Gauge(
            "poracle_bot_server_status",
            "1 for the last check's status of the server",
            ["server", "status"],
            registry=registry,
        )
        self.latency = Gauge(
            "poracle_bot_server_latency_seconds", "The last check's answer time", ["server"], registry=registry
        )
        self.last_check = Gauge(
            "poracle_bot_server_last_check_timestamp_seconds",
            "When the server was last checked",
            ["server"],
            registry=registry,
        )
        self.round_duration = Histogram(
            "poracle_bot_round_duration_seconds",
            "How long a round of checks took",
            buckets=ROUND_BUCKETS,
            registry=registry,
        )
        self.last_round = Gauge(
            "poracle_bot_last_round_timestamp_seconds", "When the last round ended", registry=registry
        )
        discord = Gauge("poracle_bot_discord_connected", "1 while connected to Discord's gateway", registry=registry)
        discord.set_function(lambda: 1.0 if connected() else 0.0)
        registry.register(_FromStore(store))
        if auto_restarting:
            registry.register(_NeedsHuman(auto_restarting, needs_human))

    def observe_round(self, results: Iterable[HealthResult], seconds: float, ended: datetime) -> None:
        for result in results:
            for condition in Condition:
                self.status.labels(result.server, condition.value).set(1.0 if result.condition is condition else 0.0)
            if result.online and result.latency_ms is not None:
                self.latency.labels(result.server).set(result.latency_ms / 1000)
            else:
                with contextlib.suppress(KeyError):  # no answer, no answer time
                    self.latency.remove(result.server)
            self.last_check.labels(result.server).set(result.checked_at.timestamp())
        self.round_duration.observe(seconds)
        self.last_round.set(ended.timestamp())

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition the scraper's Accept header asks for, and its content type. Reads the store."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


@contextlib.asynccontextmanager
async def serving(metrics: BotMetrics, host: str, port: int) -> AsyncIterator[bool]:
    """Serve `metrics` at http://host:port/metrics for the block; False when the address cannot be taken (the
    bot goes on without them: its alerts matter more than its metrics)."""

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = await asyncio.to_thread(metrics.render, request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get(PATH, scrape)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        log.error(
            "Cannot serve the bot's metrics on %s (PORACLE_METRICS_LISTEN): %s; the bot runs without them",
            shown,
            exc.strerror or exc,
        )
        yield False
        return
    log.info("Serving the bot's Prometheus metrics at http://%s%s", shown, PATH)
    try:
        yield True
    finally:
        await runner.cleanup()
