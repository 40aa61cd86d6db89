"""The bot's own Prometheus metrics, read back with prometheus-client's own parser: what a round sets, what
the store counts (restarts by origin and outcome, alerts posted and pending), and the endpoint on a real
loopback port. Through the running bot in tests/discord_bot/test_watching.py."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.core.autorestart import NeedsHuman, RailState
from bot.core.exporter import BotMetrics, serving
from bot.core.health import Cause, HealthResult
from bot.core.monitor import Outage, ServerWatch, State
from bot.core.store import RUNNING, Origin, RestartRecord, Store
from tests.support.scrape import Samples, samples
from tests.support.sshd import free_port

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "data")
    yield opened
    opened.close()


def rendered(metrics: BotMetrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return samples(body.decode())


def restart(origin: Origin, outcome: str) -> RestartRecord:
    return RestartRecord("Main", NOW, origin, "someone", outcome, "", 1.0, 0, True)


def test_a_round_sets_each_servers_status_latency_and_last_check(store: Store) -> None:
    connected = [True]
    metrics = BotMetrics(store, lambda: connected[0])
    later = NOW + timedelta(seconds=60)
    metrics.observe_round(
        [
            HealthResult("Main", True, NOW, 200, 12.5),
            HealthResult("NG", True, NOW, 403, 9.0, reason="refuses the bot: HTTP 403", cause=Cause.REFUSED),
            HealthResult("Down", False, NOW, reason="connection refused"),
        ],
        0.75,
        later,
    )
    found = rendered(metrics)
    status = {
        (dict(labels)["server"], dict(labels)["status"]): value
        for (name, labels), value in found.items()
        if name == "poracle_bot_server_status"
    }
    assert status == {
        ("Main", "online"): 1, ("Main", "degraded"): 0, ("Main", "offline"): 0,
        ("NG", "online"): 0, ("NG", "degraded"): 1, ("NG", "offline"): 0,
        ("Down", "online"): 0, ("Down", "degraded"): 0, ("Down", "offline"): 1,
    }  # fmt: skip
    assert found[("poracle_bot_server_latency_seconds", (("server", "Main"),))] == pytest.approx(0.0125)
    assert ("poracle_bot_server_latency_seconds", (("server", "Down"),)) not in found
    assert found[("poracle_bot_server_last_check_timestamp_seconds", (("server", "Down"),))] == NOW.timestamp()
    assert found[("poracle_bot_round_duration_seconds_count", ())] == 1
    assert found[("poracle_bot_round_duration_seconds_sum", ())] == 0.75
    assert found[("poracle_bot_round_duration_seconds_bucket", (("le", "1.0"),))] == 1
    assert found[("poracle_bot_last_round_timestamp_seconds", ())] == later.timestamp()
    assert found[("poracle_bot_discord_connected", ())] == 1
    connected[0] = False
    metrics.observe_round([HealthResult("Main", False, later, reason="connection refused")], 5.0, later)
    again = rendered(metrics)
    assert again[("poracle_bot_discord_connected", ())] == 0
    assert ("poracle_bot_server_latency_seconds", (("server", "Main"),)) not in again  # offline now


def test_restarts_by_origin_and_outcome_and_alerts_posted_and_pending_come_from_the_store(store: Store) -> None:
    origins = [(Origin.DISCORD, "restarted"), (Origin.CLI, "failed"), (Origin.CLI, "failed"), (Origin.CLI, RUNNING)]
    store.record_restarts([restart(origin, outcome) for origin, outcome in [*origins, (Origin.AUTOMATIC, "timed out")]])
    store.record_round(
        [HealthResult("Main", False, NOW, reason="refused")],
        {"Main": ServerWatch(State.DOWN, 2, 0, NOW, NOW, NOW)},
        [Outage("Main", "refused", NOW)],
    )
    (outage,) = store.pending_events()
    store.mark_events([outage.id], "delivered")
    latched = NeedsHuman("Main", "2 automatic restarts in a row failed (timed out)", NOW)
    store.save_auto_restarts({"Main": RailState(needs_human=latched)}, [latched])
    metrics = BotMetrics(store, lambda: True, ["Main", "Other"], lambda: ["Main"])
    found = rendered(metrics)
    restarts = {labels: value for (name, labels), value in found.items() if name == "poracle_bot_restarts_total"}
    assert restarts == {  # not the one still running: it is counted once it ends
        (("origin", "automatic"), ("outcome", "timed out"), ("server", "Main")): 1,
        (("origin", "cli"), ("outcome", "failed"), ("server", "Main")): 2,
        (("origin", "discord"), ("outcome", "restarted"), ("server", "Main")): 1,
    }
    assert found[("poracle_bot_alerts_posted_total", (("kind", "outage"),))] == 1
    assert found[("poracle_bot_alerts_pending", (("kind", "outage"),))] == 0
    assert found[("poracle_bot_alerts_posted_total", (("kind", "needs-human"),))] == 0
    assert found[("poracle_bot_alerts_pending", (("kind", "needs-human"),))] == 1
    assert found[("poracle_bot_auto_restart_needs_human", (("server", "Main"),))] == 1
    assert found[("poracle_bot_auto_restart_needs_human", (("server", "Other"),))] == 0


async def test_the_endpoint_serves_them_on_the_configured_address_only(store: Store) -> None:
    metrics = BotMetrics(store, lambda: True)
    metrics.observe_round([HealthResult("Main", True, NOW, 200, 5.0)], 0.1, NOW)
    port = free_port()
    async with serving(metrics, "127.0.0.1", port) as served, aiohttp.ClientSession() as session:
        assert served
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
        openmetrics = {"Accept": "application/openmetrics-text; version=1.0.0"}
        async with session.get(f"http://127.0.0.1:{port}/metrics", headers=openmetrics) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert (await response.text()).endswith("# EOF\n")
        async with session.get(f"http://127.0.0.1:{port}/") as response:
            assert response.status == 404
    found = samples(text)
    assert found[("poracle_bot_server_status", (("server", "Main"), ("status", "online")))] == 1
    with socket.socket() as probe:  # and nothing listens there any more
        assert probe.connect_ex(("127.0.0.1", port)) != 0


async def test_an_address_that_cannot_be_taken_is_logged_and_the_bot_goes_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with serving(BotMetrics(store, lambda: True), "127.0.0.1", port) as served:
            assert served is False
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage().startswith(
        f"Cannot serve the bot's metrics on 127.0.0.1:{port} (PORACLE_METRICS_LISTEN): "
    )
    assert error.getMessage().endswith("; the bot runs without them")
