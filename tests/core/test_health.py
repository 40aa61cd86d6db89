"""Health checks against real HTTP servers on 127.0.0.1: any answer is online, no answer is offline."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.config import ServerConfig, load_settings
from bot.core.health import HealthChecker
from tests.support.local_http import delayed, http_server, hung_server, refused_port, status


def servers(*apis: str) -> tuple[ServerConfig, ...]:
    env = {}
    for number, api in enumerate(apis, 1):
        env[f"PORACLE_SERVER_{number}_HOST"] = "127.0.0.1"
        env[f"PORACLE_SERVER_{number}_API"] = api
    return load_settings(env).servers


async def test_any_http_answer_is_online_with_its_status_and_latency() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.2)
        return web.Response(text="late but alive")

    routes = {"/ok/health": status(200), "/broken/health": status(500), "/locked/health": status(401)}
    async with http_server({**routes, "/slow/health": slow}) as http, HealthChecker(timeout=2) as checker:
        ok, broken, locked, late = servers(
            f"{http.url}/ok", f"{http.url}/broken", f"{http.url}/locked", f"{http.url}/slow"
        )
        results = await checker.check_all([ok, broken, locked, late])
    assert [(r.server, r.online, r.status, r.reason) for r in results] == [
        ("Server 1", True, 200, None),
        ("Server 2", True, 500, None),
        ("Server 3", True, 401, None),
        ("Server 4", True, 200, None),
    ]
    for result in results:
        assert result.latency_ms is not None and 0 < result.latency_ms < 2000
    assert results[3].latency_ms is not None and results[3].latency_ms >= 190  # measured, not made up
    assert sorted(http.requests) == ["/broken/health", "/locked/health", "/ok/health", "/slow/health"]


async def test_the_configured_health_path_is_asked_for() -> None:
    async with http_server() as http:
        env = {
            "PORACLE_SERVER_1_HOST": "127.0.0.1",
            "PORACLE_SERVER_1_API": f"{http.url}/api/",
            "PORACLE_SERVER_1_HEALTH_PATH": "/status",
        }
        settings = load_settings(env)
        async with HealthChecker(settings.health_timeout) as checker:
            (result,) = await checker.check_all(settings.servers)
    assert result.online
    assert http.requests == ["/api/status"]


async def test_refused_port_is_offline() -> None:
    (server,) = servers(f"http://127.0.0.1:{refused_port()}")
    async with HealthChecker(timeout=2) as checker:
        result = await checker.check(server)
    assert not result.online
    assert result.status is None and result.latency_ms is None
    assert result.reason == "connection refused"


async def test_a_server_that_never_answers_is_offline_after_the_timeout() -> None:
    async with hung_server() as hung, HealthChecker(timeout=0.5) as checker:
        (server,) = servers(hung.url)
        started = time.monotonic()
        result = await checker.check(server)
        elapsed = time.monotonic() - started
    assert hung.accepted == 1
    assert not result.online
    assert result.status is None
    assert result.reason is not None and "0.5 s" in result.reason
    assert 0.45 <= elapsed < 1.5


async def test_hung_servers_do_not_add_up() -> None:
    timeout = 0.5
    async with hung_server() as hung, http_server() as good:
        # 5 hung servers on one listener (each check opens its own connection), 5 good ones.
        settings = load_settings(
            {
                "PORACLE_HEALTH_TIMEOUT": str(timeout),
                **{f"PORACLE_SERVER_{n}_HOST": "127.0.0.1" for n in range(1, 11)},
                **{f"PORACLE_SERVER_{n}_API": f"{hung.url}/{n}" for n in range(1, 6)},
                **{f"PORACLE_SERVER_{n}_API": f"{good.url}/{n}" for n in range(6, 11)},
            }
        )
        async with HealthChecker(settings.health_timeout) as checker:
            started = time.monotonic()
            results = await checker.check_all(settings.servers)
            elapsed = time.monotonic() - started
    assert hung.accepted == 5
    assert [r.online for r in results] == [False] * 5 + [True] * 5
    assert [r.server for r in results] == [f"Server {n}" for n in range(1, 11)]  # order kept
    assert elapsed < 1.8 * timeout, f"{elapsed:.2f} s: the checks ran one after another"


async def test_a_redirect_is_online_and_not_followed() -> None:
    async with http_server() as target:
        redirect = status(302, Location=f"{target.url}/elsewhere")
        async with http_server({"/health": redirect}) as http, HealthChecker(timeout=2) as checker:
            (server,) = servers(http.url)
            result = await checker.check(server)
    assert result.online
    assert result.status == 302
    assert target.requests == []


async def test_a_redirect_to_a_dead_server_is_still_online() -> None:
    redirect = status(301, Location=f"http://127.0.0.1:{refused_port()}/health")
    async with http_server({"/health": redirect}) as http, HealthChecker(timeout=2) as checker:
        (server,) = servers(http.url)
        result = await checker.check(server)
    assert (result.online, result.status) == (True, 301)


async def test_result_carries_an_aware_utc_checked_at() -> None:
    async with http_server() as http, HealthChecker(timeout=2) as checker:
        (up, down) = servers(http.url, f"http://127.0.0.1:{refused_port()}")
        before = datetime.now(UTC)
        results = await checker.check_all([up, down])
        after = datetime.now(UTC)
    for result in results:
        assert result.checked_at.tzinfo is not None
        assert result.checked_at.utcoffset() == timedelta(0)
        assert before <= result.checked_at <= after


async def test_a_server_that_goes_away_is_seen_as_offline_by_the_same_checker() -> None:
    async with HealthChecker(timeout=1) as checker:
        async with http_server() as http:
            (server,) = servers(http.url)
            assert (await checker.check(server)).online
        result = await checker.check(server)
    assert not result.online
    assert result.reason == "connection refused"


async def test_check_each_starts_every_check_at_once_and_yields_the_fastest_first() -> None:
    async with (
        http_server({"/health": delayed(0.3)}) as slow,
        http_server() as fast,
        hung_server() as hung,
        HealthChecker(timeout=1) as checker,
    ):
        configured = servers(slow.url, hung.url, fast.url)
        stream = checker.check_each(configured)
        deadline = time.monotonic() + 5
        while not (fast.requests and slow.requests and hung.accepted):  # no result asked for yet: checks run
            assert time.monotonic() < deadline, "the checks did not start before their results were asked for"
            await asyncio.sleep(0.01)
        order = [(result.server, result.online) async for result in stream]
    assert order == [("Server 3", True), ("Server 1", True), ("Server 2", False)]


async def test_closing_check_each_early_cancels_the_checks_still_running() -> None:
    async with http_server() as fast, hung_server() as hung, HealthChecker(timeout=30) as checker:
        stream = checker.check_each(servers(fast.url, hung.url))
        first = await anext(stream)
        (still_running,) = [t for t in asyncio.all_tasks() if "HealthChecker.check" in repr(t.get_coro())]
        await stream.aclose()
        await asyncio.wait([still_running], timeout=5)
    assert first.server == "Server 1"
    assert still_running.cancelled()  # not left waiting out its 30 s
